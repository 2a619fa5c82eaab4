/*
 gelu.cuh: GPT-2's tanh-approximate GELU, forward and backward, elementwise over bf16 with fp32 math.

   gelu(x)  = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
   gelu'(x) = 0.5 (1 + tanh(u)) + 0.5 x (1 - tanh(u)^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)

 Each thread moves 16 bytes (8 values). n must be a multiple of 8 (B*T*4C always is, C % 8 == 0 is checked
 when the model is built). The trainer normally fuses the forward GELU into the fc matmul epilogue
 (matmul.cuh) and uses these kernels for recompute (-r 1/2) and where the epilogue is off.
*/
#pragma once

#include "cuda_common.cuh"

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_CUBE 0.044715f

__device__ __forceinline__ float gelu_tanh_f(float x) {
    float u = GELU_SCALE * (x + GELU_CUBE * x * x * x);
    return 0.5f * x * (1.0f + tanhf(u));
}

__device__ __forceinline__ float gelu_tanh_grad_f(float x) {
    float u = GELU_SCALE * (x + GELU_CUBE * x * x * x);
    float th = tanhf(u);
    float du = GELU_SCALE * (1.0f + 3.0f * GELU_CUBE * x * x);
    return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
}

__global__ void gelu_forward_kernel(floatX* out, const floatX* inp, size_t n) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * x128::size;
    if (i >= n) return;
    x128 x = load128cs(inp + i);
    x128 y;
#pragma unroll
    for (int k = 0; k < x128::size; k++) y[k] = (floatX)gelu_tanh_f((float)x[k]);
    store128(out + i, y);
}

// dinout holds d(gelu output) on entry and d(gelu input) on exit; inp is the pre-GELU activation
__global__ void gelu_backward_inplace_kernel(floatX* dinout, const floatX* inp, size_t n) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * x128::size;
    if (i >= n) return;
    x128 d = load128cs(dinout + i);
    x128 x = load128cs(inp + i);
    x128 r;
#pragma unroll
    for (int k = 0; k < x128::size; k++) r[k] = (floatX)(gelu_tanh_grad_f((float)x[k]) * (float)d[k]);
    store128(dinout + i, r);
}

// ----------------------------------------------------------------------------------------------------------
// launchers

static inline void gelu_forward(floatX* out, const floatX* inp, size_t n, cudaStream_t stream) {
    if (n % x128::size != 0) fail("gelu_forward: n = %zu is not a multiple of %d", n, x128::size);
    const int block = 256;
    size_t grid = ceil_div_sz(n / x128::size, block);
    gelu_forward_kernel<<<(unsigned)grid, block, 0, stream>>>(out, inp, n);
    cudaCheckLast();
}

static inline void gelu_backward_inplace(floatX* dinout, const floatX* inp, size_t n, cudaStream_t stream) {
    if (n % x128::size != 0) fail("gelu_backward: n = %zu is not a multiple of %d", n, x128::size);
    const int block = 256;
    size_t grid = ceil_div_sz(n / x128::size, block);
    gelu_backward_inplace_kernel<<<(unsigned)grid, block, 0, stream>>>(dinout, inp, n);
    cudaCheckLast();
}
