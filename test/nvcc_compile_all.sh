#!/usr/bin/env bash
# Compiles every .cu file of the project with nvcc (object files only: CI machines have nvcc but no GPU).
# Usage: test/nvcc_compile_all.sh NVCC ARCH      e.g. test/nvcc_compile_all.sh nvcc 90
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
echo "nvcc: $passed compiled, $failed failed to compile"
[ $failed -eq 0 ]
