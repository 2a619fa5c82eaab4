/*
 global_norm.cuh: the global L2 norm of all gradients and the clipping factor, deterministic.

   stage 1: a FIXED grid (a function of the GPU's SM count only) of blocks; each thread sums g^2 over a fixed
            grid-stride set of 8-element vectors, block_sum combines the block -> partials[block]
   stage 2: one block adds the partials in a fixed order, then
            out[0] = norm = sqrt(sum), out[1] = scale = norm > max_norm ? max_norm / norm : 1
 AdamW reads out[1] on the device. The host reads out[0] together with the loss, once per step.
 A non-finite norm gives scale = 1 and is reported as is (the trainer prints it, the outlier detector can
 skip the step).
 Multi-GPU (later): each rank runs stage 1 over its shard, the partial SUM (before the sqrt) is all-reduced,
 then stage 2; global_norm_squared_partials / global_norm_finish are kept separate for that.
*/
#pragma once

#include "cuda_common.cuh"

#define GNORM_THREADS 512

__global__ void __launch_bounds__(GNORM_THREADS)
global_norm_partials_kernel(float* __restrict__ partials, const floatX* __restrict__ g, size_t n) {
    __shared__ float scratch[32];
    float acc = 0.0f;
    const size_t nvec = n / x128::size;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < nvec; i += (size_t)gridDim.x * blockDim.x) {
        x128 x = load128cs(g + i * x128::size);
#pragma unroll
        for (int k = 0; k < x128::size; k++) { float f = (float)x[k]; acc += f * f; }
    }
    // the ragged tail (n % 8), by block 0 only
    if (blockIdx.x == 0) {
        for (size_t i = nvec * x128::size + threadIdx.x; i < n; i += blockDim.x) { float f = (float)g[i]; acc += f * f; }
    }
    float total = block_sum(acc, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

__global__ void global_norm_finish_kernel(float* out, const float* partials, int nparts, float max_norm) {
    __shared__ float scratch[32];
    float acc = 0.0f;
    for (int i = threadIdx.x; i < nparts; i += blockDim.x) acc += partials[i];
    float sq = block_sum(acc, scratch);
    if (threadIdx.x == 0) {
        float norm = sqrtf(sq);
        out[0] = norm;
        out[1] = (max_norm > 0.0f && norm > max_norm && isfinite(norm)) ? max_norm / norm : 1.0f;
    }
}

// ----------------------------------------------------------------------------------------------------------
// launchers

static inline int global_norm_num_partials() { return device_info()->num_sms * 2; }

static inline void global_norm_squared_partials(float* partials, const floatX* grads, size_t n, cudaStream_t stream) {
    global_norm_partials_kernel<<<global_norm_num_partials(), GNORM_THREADS, 0, stream>>>(partials, grads, n);
    cudaCheckLast();
}

static inline void global_norm_finish(float* norm_and_scale, const float* partials, int nparts, float max_norm, cudaStream_t stream) {
    global_norm_finish_kernel<<<1, 1024, 0, stream>>>(norm_and_scale, partials, nparts, max_norm);
    cudaCheckLast();
}

// norm_and_scale[0] = ||grads||, norm_and_scale[1] = clip factor; partials: global_norm_num_partials() floats
static inline void global_norm(float* norm_and_scale, float* partials, const floatX* grads, size_t n, float max_norm,
                               cudaStream_t stream) {
    global_norm_squared_partials(partials, grads, n, stream);
    global_norm_finish(norm_and_scale, partials, global_norm_num_partials(), max_norm, stream);
}
