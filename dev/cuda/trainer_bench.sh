#!/usr/bin/env bash
# Whole-trainer benchmark, GPT-2 124M (d12) from scratch, B=64, T=1024 (65,536 tokens per step), 1 GPU:
# softmax and alpha = 1.5, recompute 1 (llm.c's default) and 0. Prints the average step time, tokens/s,
# MFU and GPU memory in use; TRAIN_PROFILE=1 adds the per-phase device times of each step to the logs.
# Usage: dev/cuda/trainer_bench.sh [logdir] [steps]   (binary: ./train_gpt2cu; data: Tiny Shakespeare)
set -u
LOG=${1:-${OUT:-build}}
STEPS=${2:-20}
mkdir -p "$LOG"
for alpha in 1 1.5; do
    for r in 1 0; do
        f="$LOG/bench_a${alpha}_r$r.txt"
        TRAIN_PROFILE=1 ./train_gpt2cu -e d12 -b 64 -t 1024 -x $STEPS -v $STEPS -m 2 -j data/tinyshakespeare/tiny_shakespeare_train.bin -s 0 -A $alpha -r $r > "$f" 2>&1 || { echo "FAIL alpha $alpha -r $r"; tail -3 "$f"; continue; }
        avg=$(grep '^average' "$f" | sed 's/^average over //')
        nz=$(grep 'attention nonzero' "$f" | tail -1 | sed 's/.*nonzero //')
        prof=$(grep '^profile' "$f" | tail -1 | sed 's/^profile (device ms, first micro-step): //')
        echo "alpha $alpha -r $r: $avg | val nonzero $nz"
        echo "    last step phases (ms): $prof"
    done
done
