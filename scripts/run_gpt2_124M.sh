#!/usr/bin/env bash
# GPT-2 124M on FineWeb-10B, llm.c's recipe (10B tokens: 18,865 steps of 524,288 tokens, lr 6e-4, warmup 700,
# cosine to 0, weight decay 0.1), with the attention of your choice:
#   bash scripts/run_gpt2_124M.sh softmax      alpha = 1 (the baseline)
#   bash scripts/run_gpt2_124M.sh entmax15     alpha = 1.5 from the start (the AdaSplash paper's GPT-2 run)
#   bash scripts/run_gpt2_124M.sh annealed     alpha annealed linearly 1.01 -> 1.5 over the first 2,000 steps
# GPUs: NPROC=8 bash scripts/run_gpt2_124M.sh entmax15   (mpirun, one process per GPU, ZeRO-1); default 1.
# Needs the FineWeb shards: python3 dev/data/fineweb.py. The loop relaunches with -y 1 after a crash until the
# last checkpoint exists.
set -u
cd "$(dirname "$0")/.."
mode=${1:-}
case "$mode" in
  softmax)  attention="-A 1" ;;
  entmax15) attention="-A 1.5" ;;
  annealed) attention="-A 1.5 -A0 1.01 -An 2000" ;;
  *) echo "error: usage: bash scripts/run_gpt2_124M.sh softmax|entmax15|annealed" >&2; exit 1 ;;
esac
NPROC=${NPROC:-1}
steps=18865
out="log_gpt2_124M_$mode"
make train_gpt2cu || exit 1
if [ "$NPROC" -gt 1 ]; then launch="mpirun -np $NPROC"; zero="-z 1"; else launch=""; zero="-z 0"; fi
# micro-batch 64 x 1024 tokens per GPU; gradient accumulation makes up 524,288 tokens per step
while [ ! -f "$out/DONE_$(printf %08d $steps)" ]; do
  $launch ./train_gpt2cu -i fineweb -o "$out" -e d12 $attention \
    -b 64 -t 1024 -d 524288 -x $steps -l 0.0006 -u 700 -q 0.0 -c 0.1 -k cosine \
    -v 250 -m 20 -s 20000 -g 144 -h 1 -n 5000 -y 1 -r 0 $zero || sleep 5
done
