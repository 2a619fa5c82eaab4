#!/usr/bin/env bash
# GPU tests (make test-gpu): the trainer kernels, the attention kernels, and the GPU trainer against the CPU
# reference. Logs go to $OUT (device tool) or build/gpu_logs. Prints "N passed, M failed" last.
cd "$(dirname "$0")/.."
LOG=${OUT:-build/gpu_logs}
mkdir -p "$LOG"
passed=0; failed=0
run() {
    local name="$1"; shift
    local t0=$(date +%s)
    if "$@" > "$LOG/$name.log" 2>&1; then
        passed=$((passed+1)); echo "PASS $name ($(( $(date +%s) - t0 )) s)"
    else
        failed=$((failed+1)); echo "FAIL $name ($(( $(date +%s) - t0 )) s); last lines of $LOG/$name.log:"; tail -n 25 "$LOG/$name.log"
    fi
    grep -E '^(ok|FAIL|RESULT)' "$LOG/$name.log" | sed 's/^/    /' | tail -n 40
}
run trainer_kernels   env OUT="$LOG" sh dev/cuda/run_trainer_kernels.sh
run attention_dev_fwd build/dev_attention_forward
run attention_dev_bwd build/dev_attention_backward
run attention_check   build/dev_attention_backward check
run attention_memcheck  compute-sanitizer --tool memcheck --error-exitcode 1 build/dev_attention_backward check 1.5
run attention_racecheck compute-sanitizer --tool racecheck --error-exitcode 1 build/dev_attention_backward check 2
run attention_vs_torch  python3 test/test_attention_gpu.py
run gpu_trainer       bash test/test_gpu_trainer.sh "$LOG"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
