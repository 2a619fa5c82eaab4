#!/usr/bin/env bash
# Compiles every .cu file of the project with nvcc (object files only: CI machines have nvcc but no GPU).
# Usage: test/nvcc_compile_all.sh NVCC ARCH      e.g. test/nvcc_compile_all.sh nvcc 90a
# The attention kernels are compiled once more for sm_80 (A100): there the wgmma code of sm_90a must drop out.
set -u
cd "$(dirname "$0")/.."
NVCC=${1:-nvcc}
ARCH=${2:-90}
mkdir -p build/nvcc_check
passed=0; failed=0
files=$(git ls-files --cached --others --exclude-standard '*.cu' 2>/dev/null || find . -name '*.cu' -not -path './build/*')
for f in $files; do
    obj="build/nvcc_check/$(echo "$f" | tr '/' '_').o"
    if "$NVCC" -std=c++17 -O1 -I. -Idev/cuda -arch=sm_$ARCH --threads=0 -Xcompiler -w -c "$f" -o "$obj" > "$obj.log" 2>&1; then
        passed=$((passed+1)); echo "ok   nvcc $f"
    else
        failed=$((failed+1)); echo "FAIL nvcc $f"; head -n 20 "$obj.log"
    fi
done
if [ "$ARCH" != 80 ]; then
    obj=build/nvcc_check/attention_sm80.o
    if "$NVCC" -std=c++17 -O1 -I. -arch=sm_80 --threads=0 -Xcompiler -w -c dev/python/entmax_attn_capi.cu -o "$obj" > "$obj.log" 2>&1; then
        passed=$((passed+1)); echo "ok   nvcc dev/python/entmax_attn_capi.cu (sm_80)"
    else
        failed=$((failed+1)); echo "FAIL nvcc dev/python/entmax_attn_capi.cu (sm_80)"; head -n 20 "$obj.log"
    fi
fi
echo "nvcc: $passed compiled, $failed failed to compile"
[ $failed -eq 0 ]
