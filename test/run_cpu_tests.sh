#!/usr/bin/env bash
# Runs every CPU test, then the nvcc compile check of every .cu file when $NVCC is set (make test sets it when
# nvcc exists); prints one line per test and the summary line "N passed, M failed[, K skipped]".
cd "$(dirname "$0")/.."
passed=0; failed=0; failed_names=()
run() {
    local name="$1"; shift
    local t0=$(date +%s)
    if "$@" > "build/$name.log" 2>&1; then
        passed=$((passed+1)); echo "PASS $name ($(( $(date +%s) - t0 )) s)"
    else
        failed=$((failed+1)); failed_names+=("$name"); echo "FAIL $name ($(( $(date +%s) - t0 )) s); last lines of build/$name.log:"; tail -n 20 "build/$name.log"
    fi
}
run entmax            build/test_entmax
run gpt2              build/test_gpt2
run tokenizer         python3 test/test_tokenizer.py
run fineweb_writer    python3 test/test_fineweb_writer.py
run bad_input         bash test/test_bad_input.sh
run train_loss_falls  bash test/test_train_loss.sh
run resume            bash test/test_resume.sh
skipped=0
if [ -n "${NVCC:-}" ]; then
    run nvcc_compile_all bash test/nvcc_compile_all.sh "$NVCC" "${GPU_ARCH:-90}"
else
    skipped=1; echo "SKIP nvcc_compile_all (nvcc not found)"
fi
echo "$passed passed, $failed failed$([ $skipped -gt 0 ] && echo ", $skipped skipped")"
[ "$failed" -eq 0 ]
