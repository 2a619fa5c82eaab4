#!/usr/bin/env bash
# Compile check with CUDA 12 (the project must build with CUDA 12.x and 13.x; CI and `make test` use the default
# nvcc, which is 13.x here). Not part of `make test` or CI (it takes minutes). Usage:
#   bash test/nvcc12_check.sh                 NVCC12=/opt/cu12 (default): the pip prefix below
#   NVCC12=/usr/local/cuda-12.9/bin/nvcc bash test/nvcc12_check.sh      a full CUDA 12 toolkit's nvcc
#   ARCHS="90a 80" bash test/nvcc12_check.sh  more archs (default: 90a)
# Builds, through the Makefiles, into build/nvcc12/sm_ARCH/: the trainer (train_gpt2cu), the attention C API
# library (libentmax_attn.so), dev/cuda (attention playground and trainer-kernel tests) and test/entmax_nvcc_check.cu
# (object only); prints one OK/FAIL line per target and arch; exits 1 when one failed, 2 when there is no CUDA 12.
#
# PyPI has no CUDA 12 nvcc driver: the nvidia-cuda-nvcc-cu12 wheel holds only ptxas, libnvvm and the crt headers.
# With NVCC12 a pip prefix, this script therefore assembles a hybrid toolkit in build/nvcc12/toolkit: the nvcc
# driver, cudafe++, cicc, fatbinary and nvlink of the installed CUDA 13 (and its crt/host_runtime.h, which belongs
# to cudafe++'s host stubs), with every other header from CUDA 12.9 (runtime, crt, cuBLAS, CCCL 2.8), ptxas 12.9
# (fed cicc's PTX with its .version lowered to 8.8) and the 12.9 libraries (libcudart_static.a, libcublas.so.12,
# libcublasLt.so.12). That checks the CUDA 12 APIs, headers, PTX assembler and libraries, not cicc 12's front end.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PIP_CMD="pip install --target /opt/cu12 nvidia-cuda-nvcc-cu12==12.9.86 nvidia-cuda-runtime-cu12==12.9.79 nvidia-cuda-cccl-cu12==12.9.27 nvidia-cublas-cu12==12.9.3.13"
NVCC12=${NVCC12:-/opt/cu12}
ARCHS=${ARCHS:-90a}
OUTROOT=build/nvcc12

no_cuda12() {
    echo "no CUDA 12 nvcc: $1" >&2
    echo "install CUDA 12.9 from PyPI:  $PIP_CMD" >&2
    echo "(or point NVCC12 at a CUDA 12 toolkit's bin/nvcc, or at the pip prefix if it is not /opt/cu12)" >&2
    exit 2
}

# hybrid toolkit from the pip prefix $1 (see the top of this file); prints the path of its nvcc
make_hybrid() {
    local W=$1/nvidia T=$ROOT/$OUTROOT/toolkit c13
    for f in cuda_nvcc/bin/ptxas cuda_nvcc/include/crt/host_config.h cuda_runtime/include/cuda_runtime.h \
             cuda_runtime/lib/libcudart_static.a cublas/include/cublasLt.h cublas/lib/libcublasLt.so.12 \
             cuda_cccl/include/cub/cub.cuh; do
        [ -e "$W/$f" ] || no_cuda12 "$W/$f is missing"
    done
    c13=$(command -v nvcc 2>/dev/null) || no_cuda12 "no CUDA 13 nvcc on PATH to drive the CUDA 12.9 pieces"
    c13=$(dirname "$(dirname "$(readlink -f "$c13")")")
    [ -x "$c13/nvvm/bin/cicc" ] && [ -e "$c13/include/crt/host_runtime.h" ] || no_cuda12 "$c13 is not a CUDA toolkit"
    rm -rf "$T"; mkdir -p "$T/bin" "$T/nvvm/bin" "$T/lib" "$T/include/crt"
    for f in nvcc cudafe++ fatbinary nvlink bin2c crt; do ln -s "$c13/bin/$f" "$T/bin/$f"; done
    ln -s "$c13/nvvm/bin/cicc" "$T/nvvm/bin/cicc"; ln -s "$c13/nvvm/libdevice" "$T/nvvm/libdevice"
    for f in "$W"/cuda_nvcc/include/*.h "$W"/cuda_nvcc/include/crt/*; do ln -s "$f" "$T/include/${f#$W/cuda_nvcc/include/}"; done
    ln -sf "$c13/include/crt/host_runtime.h" "$T/include/crt/host_runtime.h"
    for f in libcudart_static.a libcudadevrt.a libculibos.a; do ln -s "$W/cuda_runtime/lib/$f" "$T/lib/$f"; done
    ln -s "$W/cuda_runtime/lib/libcudart.so.12" "$T/lib/libcudart.so"
    ln -s "$W/cublas/lib/libcublas.so.12" "$T/lib/libcublas.so"; ln -s "$W/cublas/lib/libcublasLt.so.12" "$T/lib/libcublasLt.so"
    cat > "$T/bin/ptxas" <<EOF
#!/usr/bin/env bash
# ptxas 12.9 behind cicc 13: cicc writes .version 9.x, which ptxas 12.9 (PTX ISA 8.8) refuses
args=(); tmps=()
for a in "\$@"; do
    if [[ "\$a" == *.ptx ]]; then t=\$(mktemp --suffix=.ptx); tmps+=("\$t")
        sed -E 's/^\\.version 9\\.[0-9]+\$/.version 8.8/' "\$a" > "\$t"; args+=("\$t")
    else args+=("\$a"); fi
done
"$W/cuda_nvcc/bin/ptxas" "\${args[@]}"; rc=\$?
rm -f "\${tmps[@]}"; exit \$rc
EOF
    chmod +x "$T/bin/ptxas"
    cat > "$T/bin/nvcc.profile" <<EOF
TOP              = \$(_HERE_)/..
CICC_PATH        = \$(TOP)/nvvm/bin
NVVMIR_LIBRARY_DIR = \$(TOP)/nvvm/libdevice
LD_LIBRARY_PATH += \$(TOP)/lib:
PATH            += \$(CICC_PATH):\$(_HERE_):
INCLUDES        +=  "-I$W/cuda_runtime/include" "-I\$(TOP)/include" "-I$W/cublas/include" \$(_SPACE_)
SYSTEM_INCLUDES +=  "-isystem" "$W/cuda_cccl/include" \$(_SPACE_)
LIBRARIES        =+ \$(_SPACE_) "-L\$(TOP)/lib"
CUDAFE_FLAGS    +=
PTXAS_FLAGS     +=
EOF
    echo "$T/bin/nvcc"
}

if [ -d "$NVCC12" ]; then
    [ -e "$NVCC12/nvidia/cuda_nvcc" ] || no_cuda12 "$NVCC12 holds no nvidia-cuda-nvcc-cu12 wheel"
    NVCC=$(make_hybrid "$NVCC12") || exit 2
    what="hybrid (CUDA 13 driver/cudafe++/cicc; CUDA 12.9 headers, ptxas, cudart, cuBLAS) from $NVCC12"
    # the headers it takes must be CUDA 12's (CUDART_VERSION 12xxx) and CCCL 2.x's, not those of the CUDA 13 beside it
    printf '#include <cuda_runtime.h>\n#include <cub/version.cuh>\n#if CUDART_VERSION / 1000 != 12 || CUB_MAJOR_VERSION != 2\n#error not CUDA 12 headers\n#endif\n' |
        "$NVCC" -E -x cu - -o /dev/null || { echo "FAIL hybrid toolkit $NVCC: it does not take the CUDA 12 headers"; exit 1; }
elif [ -x "$NVCC12" ]; then
    NVCC=$NVCC12
    what=$("$NVCC" --version | grep -o 'release [0-9.]*')
    case "$what" in "release 12."*) ;; *) no_cuda12 "$NVCC12 is $what";; esac
else
    no_cuda12 "$NVCC12 not found"
fi
echo "nvcc12: $NVCC: $what"

passed=0; failed=0
check() {  # name log command...
    local name=$1 log=$2; shift 2
    local t0=$(date +%s)
    if "$@" > "$log" 2>&1; then
        passed=$((passed+1)); echo "OK   $name ($(( $(date +%s) - t0 )) s)"
    else
        failed=$((failed+1)); echo "FAIL $name ($(( $(date +%s) - t0 )) s); last lines of $log:"; tail -n 20 "$log"
    fi
}
# the trainer: the Makefile's own command (it writes ./train_gpt2cu), sent to the output folder instead
trainer() {
    local cmd
    cmd=$(make -s -n -B NVCC="$NVCC" GPU_COMPUTE_CAPABILITY="$1" train_gpt2cu) || return 1
    [[ "$cmd" == *" -o train_gpt2cu" ]] || { echo "unexpected Makefile command: $cmd"; return 1; }
    echo "${cmd% -o train_gpt2cu} -o $2/train_gpt2cu"
    eval "${cmd% -o train_gpt2cu} -o $2/train_gpt2cu" || return 1
    readelf -d "$2/train_gpt2cu" | grep NEEDED
    readelf -d "$2/train_gpt2cu" | grep -q 'libcublasLt.so.12' || { echo "not linked against libcublasLt.so.12"; return 1; }
}
t_all=$(date +%s)
for arch in $ARCHS; do
    cc=${arch%a}; out=$OUTROOT/sm_$arch; mkdir -p "$out"
    check "sm_$arch train_gpt2.cu (trainer, linked)" "$out/train_gpt2cu.log" trainer "$cc" "$out"
    check "sm_$arch dev/python/entmax_attn_capi.cu (libentmax_attn.so)" "$out/capi.log" \
        make -B NVCC="$NVCC" GPU_COMPUTE_CAPABILITY="$cc" BUILD="$out" "$out/libentmax_attn.so"
    check "sm_$arch dev/cuda attention_{forward,backward}.cu" "$out/attention_dev.log" \
        make -B -C dev/cuda NVCC="$NVCC" ARCH="sm_$arch" BUILD="$ROOT/$out"
    check "sm_$arch dev/cuda trainer-kernel tests (gelu layernorm encoder fused_classifier adamw global_norm matmul)" \
        "$out/trainer_kernels.log" make -B NVCC="$NVCC" GPU_COMPUTE_CAPABILITY="$cc" BUILD="$out" trainer-kernel-tests
    check "sm_$arch test/entmax_nvcc_check.cu (object)" "$out/entmax_nvcc_check.log" \
        "$NVCC" -std=c++17 -O1 -I. -arch="sm_$arch" -c test/entmax_nvcc_check.cu -o "$out/entmax_nvcc_check.o"
done
echo "nvcc12: $passed compiled, $failed failed to compile ($(( $(date +%s) - t_all )) s); logs in $OUTROOT/sm_*/"
[ "$failed" -eq 0 ]
