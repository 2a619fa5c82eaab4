#!/usr/bin/env bash
# Builds the committed Tiny Shakespeare data the trainers default to, with build/tokenize:
#   data/gpt2_tokenizer.bin                          (llm.c tokenizer file, v2, 50257 tokens, EOT 50256)
#   data/tinyshakespeare/tiny_shakespeare_val.bin    (first 32768 tokens)
#   data/tinyshakespeare/tiny_shakespeare_train.bin  (the other 305260 tokens)
# exactly as llm.c's dev/data/tinyshakespeare.py: the text is split on "\n\n", every piece is prefixed with EOT
# and keeps its "\n\n" (except the last piece), the first 32768 tokens are val.
# Inputs: ${SHARED_DATA:-<repo>/../shared/data}/{gpt2,tinyshakespeare}. Run from anywhere.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SHARED_DATA="${SHARED_DATA:-$REPO/../shared/data}"
cd "$REPO"
TOOL=build/tokenize
make --no-print-directory -s "$TOOL"   # (re)builds the tokenizer tool when its sources changed
INPUT="$SHARED_DATA/tinyshakespeare/input.txt"
[ -f "$INPUT" ] || { echo "error: $INPUT not found (set SHARED_DATA)" >&2; exit 1; }
mkdir -p data/tinyshakespeare
"$TOOL" --gpt2-dir "$SHARED_DATA/gpt2" --write-tokenizer data/gpt2_tokenizer.bin
"$TOOL" --gpt2-dir "$SHARED_DATA/gpt2" --shards "$INPUT" --format txt --docs paragraphs --val-tokens 32768 \
    --out data/tinyshakespeare/tiny_shakespeare
