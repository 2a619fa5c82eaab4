# Makefile: CPU reference trainer, GPU trainer, tools and tests.
#   make train_gpt2        fp32 CPU reference trainer (OpenMP when the compiler has it)
#   make train_gpt2cu      bf16 GPU trainer (nvcc; GPU arch autodetected, override GPU_COMPUTE_CAPABILITY=90)
#   make test              all CPU tests (+ an nvcc compile of every .cu file when nvcc exists)
#   make test-gpu          GPU tests (needs a GPU)

CXX ?= g++
CXXFLAGS ?= -O3 -march=native
CXXFLAGS += -std=c++17 -Wall -Wextra -Wno-unused-function -Wno-unused-parameter -I.
LDLIBS = -lm

# OpenMP, if the compiler supports it (NO_OMP=1 turns it off)
ifneq ($(NO_OMP),1)
  ifeq ($(shell echo 'int main(){return 0;}' | $(CXX) -fopenmp -x c++ - -o /dev/null 2>/dev/null && echo yes),yes)
    CXXFLAGS += -fopenmp
  endif
endif

# ---- CUDA ----------------------------------------------------------------------------------------------------
NVCC ?= $(shell command -v nvcc 2>/dev/null)
# GPU arch: the first GPU's compute capability (nvidia-smi), else 90 (H100) when this machine has no GPU.
# $(shell ...) is used for every probe: llm.c's autodetect silently yields nothing because it lacks it.
ifeq ($(GPU_COMPUTE_CAPABILITY),)
  GPU_COMPUTE_CAPABILITY := $(shell nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '. ')
  ifeq ($(GPU_COMPUTE_CAPABILITY),)
    GPU_COMPUTE_CAPABILITY := 90
  endif
endif
# Hopper (90) builds for sm_90a, the arch-specific target that has wgmma (used by llmc/attention.cuh);
# its code runs only on compute capability 9.0, which is what was detected or asked for.
ifeq ($(GPU_COMPUTE_CAPABILITY),90)
  GPU_SM := 90a
else
  GPU_SM := $(GPU_COMPUTE_CAPABILITY)
endif
NVCC_ARCH = --generate-code arch=compute_$(GPU_SM),code=[compute_$(GPU_SM),sm_$(GPU_SM)]
NVCC_FLAGS = -O3 -std=c++17 -I. $(NVCC_ARCH) --threads=0 -Xcompiler -Wno-unused-function
NVCC_LDLIBS = -lcublas -lcublasLt

BUILD = build
$(BUILD):
	mkdir -p $(BUILD)

.PHONY: all tools test test-deps test-gpu attention-dev clean

all: train_gpt2 tools

train_gpt2: train_gpt2.cpp llmc/*.h
	$(CXX) $(CXXFLAGS) $< -o $@ $(LDLIBS)

train_gpt2cu: train_gpt2.cu llmc/*.h llmc/*.cuh
ifeq ($(NVCC),)
	@echo "error: nvcc not found: install the CUDA toolkit (12.x or 13.x) or put its bin/ on PATH" >&2; exit 1
else
	$(NVCC) $(NVCC_FLAGS) $< $(NVCC_LDLIBS) -ldl -o $@
endif

# ---- tools -------------------------------------------------------------------------------------------------------
tools: $(BUILD)/tokenize $(BUILD)/entmax_iterations

$(BUILD)/tokenize: dev/data/tokenize.cpp llmc/*.h | $(BUILD)
	$(CXX) $(CXXFLAGS) $< -o $@ $(LDLIBS)

$(BUILD)/entmax_iterations: dev/entmax_iterations.cpp llmc/entmax.h test/entmax_exact.h | $(BUILD)
	$(CXX) $(CXXFLAGS) $< -o $@ $(LDLIBS)

# ---- CPU tests ------------------------------------------------------------------------------------------------------
$(BUILD)/test_entmax: test/test_entmax.cpp llmc/entmax.h test/entmax_exact.h | $(BUILD)
	$(CXX) $(CXXFLAGS) $< -o $@ $(LDLIBS)

$(BUILD)/test_gpt2: test/test_gpt2.cpp train_gpt2.cpp llmc/*.h | $(BUILD)
	$(CXX) $(CXXFLAGS) $< -o $@ $(LDLIBS)

CPU_TEST_BINS = $(BUILD)/test_entmax $(BUILD)/test_gpt2 $(BUILD)/tokenize train_gpt2

# all CPU tests, then (when nvcc exists) an nvcc compile of every .cu file: CI machines have nvcc but no GPU
test: test-deps $(CPU_TEST_BINS)
	NVCC="$(NVCC)" GPU_ARCH="$(GPU_SM)" bash test/run_cpu_tests.sh

# the tokenizer tests compare against tiktoken; install it with pip when missing
test-deps:
	@python3 -c "import tiktoken" 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check -r dev/requirements-test.txt

# ---- GPU tests (need a GPU) ---------------------------------------------------------------------------------------
TK_NVCC = $(NVCC)
TK_ARCH = $(NVCC_ARCH)
include dev/cuda/trainer_kernels.mk

# the attention kernels through a C ABI (dev/python/entmax_attention.py loads it with ctypes)
$(BUILD)/libentmax_attn.so: dev/python/entmax_attn_capi.cu llmc/attention.cuh llmc/entmax.h | $(BUILD)
	$(NVCC) $(NVCC_FLAGS) -Xcompiler -fPIC -shared $< -o $@

# the attention kernel playground (dev/cuda/attention_{forward,backward}.cu)
attention-dev:
	$(MAKE) -C dev/cuda NVCC="$(NVCC)" ARCH=sm_$(GPU_SM)

test-gpu: train_gpt2 train_gpt2cu trainer-kernel-tests $(BUILD)/libentmax_attn.so attention-dev
	bash test/run_gpu_tests.sh

clean:
	rm -rf $(BUILD) train_gpt2 train_gpt2cu
