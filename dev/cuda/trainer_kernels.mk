# dev/cuda/trainer_kernels.mk: tests of the trainer's non-attention kernels (llmc/{encoder,layernorm,matmul,
# gelu,fused_classifier,adamw,global_norm}.cuh). Included by the top-level Makefile; paths are relative to
# the repository root; binaries go to $(BUILD) (build/ unless BUILD=... is given).
# Build all: make trainer-kernel-tests; run all + table: make run-trainer-kernel-tests
TK_NVCC ?= nvcc
TK_ARCH ?= -arch=sm_90
TK_FLAGS = -O3 --use_fast_math -std=c++17 $(TK_ARCH)
TK_TESTS = gelu layernorm encoder fused_classifier adamw global_norm matmul
BUILD ?= build
TK_BINS = $(addprefix $(BUILD)/dev_,$(TK_TESTS))
TK_COMMON = dev/cuda/trainer_kernels_common.cuh llmc/cuda_common.cuh llmc/utils.h

$(BUILD)/dev_%: dev/cuda/%.cu llmc/%.cuh $(TK_COMMON)
	@mkdir -p $(BUILD)
	$(TK_NVCC) $(TK_FLAGS) $< -lcublasLt -o $@

$(BUILD)/dev_matmul: dev/cuda/matmul.cu llmc/matmul.cuh llmc/gelu.cuh $(TK_COMMON)
	@mkdir -p $(BUILD)
	$(TK_NVCC) $(TK_FLAGS) $< -lcublasLt -o $@

trainer-kernel-tests: $(TK_BINS)

run-trainer-kernel-tests: $(TK_BINS)
	sh dev/cuda/run_trainer_kernels.sh

.PHONY: trainer-kernel-tests run-trainer-kernel-tests
