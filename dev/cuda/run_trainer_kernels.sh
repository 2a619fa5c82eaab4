#!/bin/sh
# Runs the trainer-kernel tests (built by dev/cuda/trainer_kernels.mk into build/), keeps each log, and
# prints a compact table of every RESULT line last. Logs go to $OUT (device tool) or build/.
# Exit status: 0 when every test passed.
LOGDIR=${OUT:-build}
mkdir -p "$LOGDIR"
status=0
for t in gelu layernorm encoder fused_classifier adamw global_norm matmul; do
    if [ ! -x build/dev_$t ]; then echo "missing build/dev_$t"; status=1; continue; fi
    ./build/dev_$t > "$LOGDIR/dev_$t.log" 2>&1 || status=1
    tail -1 "$LOGDIR/dev_$t.log"
done
echo "================ trainer kernels ================"
grep -h '^RESULT' "$LOGDIR"/dev_*.log | sed 's/^RESULT //'
grep -h -i 'error' "$LOGDIR"/dev_*.log
exit $status
