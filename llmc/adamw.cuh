/*
 adamw.cuh: fused AdamW update (decoupled weight decay, Loshchilov & Hutter) with optional fp32 master weights
 and stochastic rounding of the bf16 parameters.

 Per element, with t = step + 1 (1-based), b1c = 1 - beta1^t, b2c = 1 - beta2^t computed by the caller:
   g  = grad * grad_scale                 grad_scale: the clipping factor, read from DEVICE memory
                                          (global_norm.cuh writes it), so no host sync is needed
   m  = beta1 m + (1 - beta1) g
   v  = beta2 v + (1 - beta2) g^2
   p  = master[i] if master weights are kept, else float(param[i])
   p -= lr * ( (m / b1c) / (sqrt(v / b2c) + eps) + wd * p )
   master[i] = p;  param[i] = stochastic_round_bf16(p)
 wd is passed per tensor: the trainer gives 0 to the 1-D tensors (biases, LayerNorm) and the weight decay to
 the 2-D ones (wte, wpe, qkvw, attprojw, fcw, fcprojw), as llm.c and GPT-2 training do.
 The rounding bits come from hash(element index, seed); the caller draws one seed per tensor per step from a
 saved host RNG state, so a run and its resume produce identical bits.
 Sizes must be multiples of 8 (every GPT-2 tensor is when C % 8 == 0); each thread updates 8 elements.
*/
#pragma once

#include "cuda_common.cuh"

__global__ void adamw_kernel(floatX* __restrict__ params, float* __restrict__ master, const floatX* __restrict__ grads,
                             float* __restrict__ m, float* __restrict__ v, size_t n, float lr, float beta1, float beta2,
                             float b1c, float b2c, float eps, float wd, const float* __restrict__ grad_scale, uint32_t seed) {
    size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * x128::size;
    if (i >= n) return;
    const float scale = grad_scale != NULL ? *grad_scale : 1.0f;
    x128 g = load128cs(grads + i);
    x128 p16 = load128(params + i);
    f128 mv[2] = {load128cs(m + i), load128cs(m + i + 4)};
    f128 vv[2] = {load128cs(v + i), load128cs(v + i + 4)};
    f128 pm[2];
    if (master != NULL) { pm[0] = load128cs(master + i); pm[1] = load128cs(master + i + 4); }
    x128 out;
#pragma unroll
    for (int k = 0; k < x128::size; k++) {
        const int h = k >> 2, e = k & 3;
        float gk = (float)g[k] * scale;
        float mk = beta1 * mv[h][e] + (1.0f - beta1) * gk;
        float vk = beta2 * vv[h][e] + (1.0f - beta2) * gk * gk;
        mv[h][e] = mk;
        vv[h][e] = vk;
        float p = master != NULL ? pm[h][e] : (float)p16[k];
        p -= lr * ((mk / b1c) / (sqrtf(vk / b2c) + eps) + wd * p);
        pm[h][e] = p;
        out[k] = float_to_bf16_stochastic(p, hash_idx_seed((uint32_t)(i + k), seed));
    }
    store128(params + i, out);
    store128cs(m + i, mv[0]); store128cs(m + i + 4, mv[1]);
    store128cs(v + i, vv[0]); store128cs(v + i + 4, vv[1]);
    if (master != NULL) { store128cs(master + i, pm[0]); store128cs(master + i + 4, pm[1]); }
}

__global__ void bf16_to_f32_kernel(float* __restrict__ out, const floatX* __restrict__ in, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = (float)in[i];
}

// ----------------------------------------------------------------------------------------------------------
// launchers

typedef struct {
    float lr, beta1, beta2, eps;
    float b1c, b2c; // 1 - beta^t, t = step + 1
} AdamWStep;

// master may be NULL (-w 0); grad_scale may be NULL (no clipping)
static inline void adamw_update(floatX* params, float* master, const floatX* grads, float* m, float* v, size_t n,
                                const AdamWStep* s, float wd, const float* grad_scale, uint32_t seed, cudaStream_t stream) {
    if (n % x128::size != 0) fail("adamw_update: tensor size %zu is not a multiple of %d", n, x128::size);
    const int block = 256;
    size_t grid = ceil_div_sz(n / x128::size, block);
    adamw_kernel<<<(unsigned)grid, block, 0, stream>>>(params, master, grads, m, v, n, s->lr, s->beta1, s->beta2, s->b1c,
                                                       s->b2c, s->eps, wd, grad_scale, seed);
    cudaCheckLast();
}

// master weights start as an exact copy of the bf16 parameters
static inline void init_master_weights(float* master, const floatX* params, size_t n, cudaStream_t stream) {
    bf16_to_f32_kernel<<<(unsigned)ceil_div_sz(n, 512), 512, 0, stream>>>(master, params, n);
    cudaCheckLast();
}
