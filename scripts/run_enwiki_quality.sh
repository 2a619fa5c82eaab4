#!/usr/bin/env bash
# The quality comparison at our scale: GPT-2 124M (d12) from scratch on the enwiki shards, the same data and the
# same tokens for softmax, alpha = 1.5 and alpha annealed 1.01 -> 1.5, then one PNG with the curves.
#   bash scripts/run_enwiki_quality.sh [steps]      (default 1530 steps x 65,536 tokens = 100.3M tokens)
# Needs: bash dev/data/prepare_enwiki.sh ; a GPU; matplotlib for the plot.
set -u
cd "$(dirname "$0")/.."
steps=${1:-1530}
make train_gpt2cu || exit 1
[ -f data/enwiki/enwiki_val_000000.bin ] || bash dev/data/prepare_enwiki.sh || exit 1
common="-i enwiki -e d12 -b 64 -t 1024 -d 65536 -x $steps -l 0.0006 -u 100 -q 0.0 -c 0.1 -v 100 -m 16 -s 0 -r 0"
./train_gpt2cu $common -A 1   -o log_enwiki_softmax
./train_gpt2cu $common -A 1.5 -o log_enwiki_entmax15
./train_gpt2cu $common -A 1.5 -A0 1.01 -An $((steps / 4)) -o log_enwiki_annealed
python3 scripts/plot_logs.py -o enwiki_d12_quality.png --smooth 20 softmax=log_enwiki_softmax/main.log \
  "alpha=1.5"=log_enwiki_entmax15/main.log "alpha 1.01->1.5"=log_enwiki_annealed/main.log
