#!/usr/bin/env bash
# The CPU trainer learns: for d2, d3, d4 models with softmax (alpha 1) and alpha 1.5 attention, 25 steps on
# Tiny Shakespeare lower the train loss (mean of the last 3 vs the first 3 steps) and the val loss by >= 0.5 nats.
set -u
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
for depth in 2 3 4; do
  for alpha in 1 1.5; do
    dir="$out/d${depth}_a${alpha}"
    if ! ./train_gpt2 -e d$depth -A $alpha -x 25 -b 4 -t 64 -l 1e-3 -v 25 -m 8 -s 0 -o "$dir" > "$dir.txt" 2>&1; then
      echo "FAIL d$depth alpha $alpha: the trainer exited with an error"; tail -n 5 "$dir.txt"; status=1; continue
    fi
    read -r first last vfirst vlast < <(awk -F'[: ]' '
      /trl:/ { n++; loss[n] = $4 }
      /tel:/ { v[++m] = $4 }
      END { printf "%f %f %f %f\n", (loss[1]+loss[2]+loss[3])/3, (loss[n]+loss[n-1]+loss[n-2])/3, v[1], v[m] }' "$dir/main.log")
    verdict=$(awk -v a="$first" -v b="$last" -v c="$vfirst" -v d="$vlast" 'BEGIN { print (b < a - 0.5 && d < c - 0.5) ? "ok" : "FAIL" }')
    echo "$verdict d$depth alpha $alpha: train loss $first -> $last, val loss $vfirst -> $vlast"
    [ "$verdict" = ok ] || status=1
  done
done
exit $status
