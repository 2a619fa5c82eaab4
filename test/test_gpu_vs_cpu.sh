#!/usr/bin/env bash
# The GPU trainer matches the CPU reference: for d2 and d4 models and alpha 1 (softmax) and 1.5, both trainers
# start from the same bf16 checkpoint (written by train_gpt2cu, widened exactly by train_gpt2) and train 10 steps
# on the same data: every step's train loss agrees within 1e-2 and its grad norm within 2%.
# Also: two GPU runs are bit-identical (same logged losses and norms, byte-identical final checkpoints).
set -u
cd "$(dirname "$0")/.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
for depth in 2 4; do
  ./train_gpt2cu -e d$depth -x 0 -v 0 -s 0 -n 1 -o "$out/init$depth" > "$out/init$depth.txt" 2>&1 || { echo "FAIL writing the d$depth checkpoint"; tail "$out/init$depth.txt"; exit 1; }
  for alpha in 1 1.5; do
    flags="-e $out/init$depth/model_00000000.bin -A $alpha -x 10 -b 4 -t 64 -l 1e-3 -v 0 -s 0"
    ./train_gpt2 $flags -o "$out/cpu_d${depth}_a$alpha" > "$out/cpu.txt" 2>&1 || { echo "FAIL cpu run"; tail "$out/cpu.txt"; status=1; continue; }
    ./train_gpt2cu $flags -n 10 -o "$out/gpu_d${depth}_a$alpha" > "$out/gpu.txt" 2>&1 || { echo "FAIL gpu run"; tail "$out/gpu.txt"; status=1; continue; }
    ./train_gpt2cu $flags -n 10 -o "$out/gpu2_d${depth}_a$alpha" > "$out/gpu2.txt" 2>&1 || { echo "FAIL second gpu run"; status=1; continue; }
    report=$(paste <(grep trl "$out/cpu_d${depth}_a$alpha/main.log") <(grep trl "$out/gpu_d${depth}_a$alpha/main.log") | awk -F'[: \t]+' '
      { dl = $4 - $12; if (dl < 0) dl = -dl; dn = ($8 - $16) / $8; if (dn < 0) dn = -dn
        if (dl > ml) ml = dl; if (dn > mn) mn = dn; n++ }
      END { printf "%d steps, max |loss diff| %.2e, max grad norm rel diff %.2e, %s\n", n, ml, mn, (n == 10 && ml <= 1e-2 && mn <= 0.02) ? "ok" : "FAIL" }')
    echo "d$depth alpha $alpha: $report"
    case "$report" in *FAIL*) status=1;; esac
    if diff <(grep -E 'trl' "$out/gpu_d${depth}_a$alpha/main.log") <(grep -E 'trl' "$out/gpu2_d${depth}_a$alpha/main.log") > /dev/null &&
       cmp -s "$out/gpu_d${depth}_a$alpha/model_00000010.bin" "$out/gpu2_d${depth}_a$alpha/model_00000010.bin"; then
      echo "d$depth alpha $alpha: two GPU runs bit-identical: ok"
    else
      echo "d$depth alpha $alpha: two GPU runs differ: FAIL"; status=1
    fi
  done
done
exit $status
