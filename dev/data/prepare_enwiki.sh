#!/usr/bin/env bash
# Builds enwiki2015 shards under data/enwiki/ (not committed; about 52 MB) with build/tokenize:
#   data/enwiki/enwiki_val_000000.bin        all of enwiki2015/val.jsonl   (472 docs, ~1.03M tokens)
#   data/enwiki/enwiki_train_%06d.bin        train.jsonl.xz, 1e7 tokens per shard, numbered from 1 (~25M tokens)
# Each document (the "text" field of a jsonl line) is prefixed with EOT 50256.
# Inputs: ${SHARED_DATA:-<repo>/../shared/data}/{gpt2,enwiki2015}. Needs xz. Optional: SHARD_SIZE (default 1e7).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SHARED_DATA="${SHARED_DATA:-$REPO/../shared/data}"
SHARD_SIZE="${SHARD_SIZE:-1e7}"
cd "$REPO"
TOOL=build/tokenize
make --no-print-directory -s "$TOOL"   # (re)builds the tokenizer tool when its sources changed
for f in "$SHARED_DATA/enwiki2015/val.jsonl" "$SHARED_DATA/enwiki2015/train.jsonl.xz"; do
    [ -f "$f" ] || { echo "error: $f not found (set SHARED_DATA)" >&2; exit 1; }
done
command -v xz >/dev/null || { echo "error: xz is not installed (apt-get install xz-utils)" >&2; exit 1; }
mkdir -p data/enwiki
rm -f data/enwiki/enwiki_val_*.bin data/enwiki/enwiki_train_*.bin   # no stale shards from an earlier run
"$TOOL" --gpt2-dir "$SHARED_DATA/gpt2" --shards "$SHARED_DATA/enwiki2015/val.jsonl" --format jsonl \
    --split val --shard-size 2000000000 --out data/enwiki/enwiki
xz -dc "$SHARED_DATA/enwiki2015/train.jsonl.xz" | \
    "$TOOL" --gpt2-dir "$SHARED_DATA/gpt2" --shards - --format jsonl --split train --shard-size "$SHARD_SIZE" \
    --out data/enwiki/enwiki
