#!/usr/bin/env bash
# Side by side with llm.c on one GPU: GPT-2 124M (d12) from scratch, B = 64, T = 1024, the anchor's settings
# (recompute GELU, fp32 master weights, no ZeRO), llm.c with cuDNN flash attention against this trainer at
# alpha = 1 and alpha = 1.5. Both read the same Tiny Shakespeare shard. For each run: the mean step time over
# steps 2..N from the progress lines, tokens/s, and the peak GPU memory in use as nvidia-smi sees it (sampled
# every 50 ms, context and library workspaces included), next to what each program reports itself.
#
# llm.c is not part of this project: bring a checkout (https://github.com/karpathy/llm.c) and the cudnn-frontend
# headers (the `nvidia-cudnn-frontend` wheel has them under include/); libcudnn comes from the nvidia-cudnn wheel
# that PyTorch installs. Usage (from the repository root, with ./train_gpt2cu built):
#   LLMC_DIR=/path/to/llm.c CUDNN_FRONTEND_INC=/path/to/include dev/bench/llmc_side_by_side.sh [logdir] [steps]
set -u
LOG=${1:-${OUT:-build}/side_by_side}
STEPS=${2:-40}
mkdir -p "$LOG"
LOG=$(cd "$LOG" && pwd)
ROOT=$(pwd)
DATA="$ROOT/data/tinyshakespeare/tiny_shakespeare_train.bin"
[ -x ./train_gpt2cu ] || { echo "error: build ./train_gpt2cu first (make train_gpt2cu)"; exit 1; }
[ -f "$DATA" ] || { echo "error: $DATA missing"; exit 1; }

# peak of nvidia-smi's memory.used (MiB) while "$@" runs
run_peak() {
    local out=$1; shift
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 > "$out.mem" 2>/dev/null &
    local smi=$!
    "$@" > "$out" 2>&1
    local rc=$?
    kill $smi 2>/dev/null; wait $smi 2>/dev/null
    local peak=$(sort -n "$out.mem" | tail -1)
    echo "${peak:-?}"
    return $rc
}

# llm.c: build with cuDNN attention (sm_90, no MPI/NCCL)
if [ -n "${LLMC_DIR:-}" ]; then
    [ -f "$LLMC_DIR/train_gpt2.cu" ] || { echo "error: LLMC_DIR=$LLMC_DIR holds no train_gpt2.cu"; exit 1; }
    [ -f "${CUDNN_FRONTEND_INC:-}/cudnn_frontend.h" ] || { echo "error: set CUDNN_FRONTEND_INC to the cudnn-frontend include dir"; exit 1; }
    # cuDNN headers and library: the CUDA toolkit's if it has them, else the nvidia-cudnn wheel's
    CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
    if [ -f "$CUDA_HOME/include/cudnn.h" ]; then CUDNN_INC="$CUDA_HOME/include"; CUDNN_LIB="$CUDA_HOME/lib64"
    else
        CUDNN_DIR=$(python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2>/dev/null || true)
        CUDNN_INC="$CUDNN_DIR/include"; CUDNN_LIB="$LOG/cudnnlib"
        [ -f "$CUDNN_INC/cudnn.h" ] || { echo "error: no cudnn.h (CUDA toolkit or nvidia-cudnn wheel)"; exit 1; }
        mkdir -p "$CUDNN_LIB"
        ln -sf "$(ls "$CUDNN_DIR"/lib/libcudnn.so.* | head -1)" "$CUDNN_LIB/libcudnn.so"
        export LD_LIBRARY_PATH="$CUDNN_DIR/lib:${LD_LIBRARY_PATH:-}"
    fi
    FLAGS="-O3 -t=0 --use_fast_math -std=c++17 --generate-code arch=compute_90,code=[compute_90,sm_90] -DENABLE_CUDNN -DENABLE_BF16 -Idev"
    ( cd "$LLMC_DIR" && nvcc $FLAGS -I"$CUDNN_FRONTEND_INC" -I"$CUDNN_INC" -c llmc/cudnn_att.cpp -o "$LOG/cudnn_att.o" &&
      nvcc $FLAGS -I"$CUDNN_FRONTEND_INC" -I"$CUDNN_INC" train_gpt2.cu "$LOG/cudnn_att.o" -o "$LOG/llmc_train_gpt2cu" \
        -lcublas -lcublasLt -L"$CUDNN_LIB" -lcudnn -lnvrtc ) \
        > "$LOG/llmc_build.log" 2>&1 || { echo "error: llm.c build failed, see $LOG/llmc_build.log"; tail -20 "$LOG/llmc_build.log"; exit 1; }
    # the anchor's command, with our shard as train and val (llm.c's val loader needs >= B*T+1 tokens)
    peak=$(cd "$LOG" && run_peak "$LOG/llmc.txt" "$LOG/llmc_train_gpt2cu" -i "$DATA" -j "$DATA" -e d12 -b 64 -t 1024 \
        -x $STEPS -v 100000 -s 100000 -h 0)
    # progress lines: "step    2/40 | loss ... | ... (153.12 ms | 34% bf16 MFU | 417000 tok/s)"
    ms=$(grep -E '^step +[0-9]+/' "$LOG/llmc.txt" | awk -F'[(|]' '{for (i = 1; i <= NF; i++) if ($i ~ / ms *$/) {split($i, a, " "); print a[1]}}' |
        awk 'NR > 1 {s += $1; n++} END {if (n) printf "%.2f", s / n}')
    own=$(grep -E '^allocated [0-9]+ MiB|device memory usage' "$LOG/llmc.txt" | paste -sd ';' -)
    echo "llm.c + cuDNN: ${ms:-?} ms/step over steps 2-$STEPS, $(awk -v m="${ms:-0}" 'BEGIN {if (m > 0) printf "%.0f", 65536 / m * 1000}') tok/s; peak GPU memory $peak MiB (nvidia-smi); llm.c says: ${own:-?}"
fi

for alpha in 1 1.5; do
    f="$LOG/ours_a$alpha.txt"
    peak=$(run_peak "$f" ./train_gpt2cu -e d12 -b 64 -t 1024 -x $STEPS -v 0 -i "$DATA" -s 0 -A $alpha) ||
        { echo "FAIL ours alpha $alpha"; tail -3 "$f"; continue; }
    avg=$(grep '^average' "$f" | sed 's/^average over //')
    echo "ours, alpha $alpha: $avg; peak GPU memory $peak MiB (nvidia-smi)"
done
