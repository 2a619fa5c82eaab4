/*
 trainer_attention_naive.cuh: a SIMPLE, correct, deterministic causal alpha-entmax / softmax attention for
 bring-up and tests of train_gpt2.cu while llmc/attention.cuh (the flash kernels) is being written.
 Not fast: one warp per query row (forward, dq) or key row (dk, dv), scores kept in shared memory, O(T^2 HS)
 with plain fp32 FMAs. Uses llmc/entmax.h for the threshold (same Halley-bisection as the CPU reference,
 run to fp32 resolution) and the backward weights.

 Interface (the one train_gpt2.cu's attention adapter expects):
   qkv   (B, T, 3, NH, HS) bf16, packed as the qkv matmul writes it
   out   (B, T, NH, HS) bf16
   stats (B, NH, T, 2) fp32: [0] = the row's max score, [1] = tau (entmax) or log-sum-exp shift (softmax)
   naive_attention_forward(out, stats, qkv, alpha, B, T, NH, HS, nonzero_count (may be NULL), stream)
   naive_attention_backward(dqkv, dout, qkv, stats, delta_scratch (B*NH*T floats), alpha, B, T, NH, HS, stream)
 nonzero_count (device uint64) receives += the number of p > 0 causal cells (integer atomics: deterministic).

 -DNAIVE_ATTENTION_STUB (timing only, WRONG results): the forward copies V to the output and the backward
 writes dV = dout, dQ = dK = 0, at memory speed, so a whole-trainer run measures everything but attention.
*/
#pragma once

#include "../../llmc/cuda_common.cuh"
#include "../../llmc/entmax.h"

#define NAIVE_ATT_WARPS 4
#define NAIVE_ATT_MAX_HS 256

__device__ __forceinline__ float naive_dot_(const floatX* a, const float* b_smem, int HS) {
    float s = 0.0f;
    for (int d = 0; d < HS; d += 8) {
        x128 x = load128(a + d);
#pragma unroll
        for (int k = 0; k < 8; k++) s += (float)x[k] * b_smem[d + k];
    }
    return s;
}

// p for one score given the row stats
__device__ __forceinline__ float naive_p_(const Entmax& e, float s, float smax, float tau) {
    if (e.kind == ENTMAX_SOFTMAX) return __expf(s - smax - tau);
    return entmax_p(e.kind, e.a, e.am1 * (s - smax) - tau);
}
__device__ __forceinline__ float naive_u_(const Entmax& e, float s, float smax, float tau) {
    if (e.kind == ENTMAX_SOFTMAX) return __expf(s - smax - tau);
    return entmax_u(e.kind, e.a, e.am1 * (s - smax) - tau);
}

// one warp per (b, h, t)
__global__ void naive_attention_forward_kernel(floatX* out, float* stats, const floatX* qkv, float alpha, int B, int T,
                                               int NH, int HS, unsigned long long* nonzero_count) {
    extern __shared__ float na_smem[];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int row = blockIdx.x * NAIVE_ATT_WARPS + w;
    if (row >= B * NH * T) return;
    const int t = row % T, h = (row / T) % NH, b = row / (T * NH);
    float* s = na_smem + (size_t)w * (T + HS);
    float* q = s + T;
    const int C = NH * HS;
    const float scale = rsqrtf((float)HS);
    const Entmax e = entmax_make(alpha);
    const floatX* qrow = qkv + ((size_t)b * T + t) * 3 * C + h * HS;
    for (int d = lane; d < HS; d += 32) q[d] = (float)qrow[d];
    __syncwarp();
    float m = -INFINITY;
    for (int j = lane; j <= t; j += 32) {
        const floatX* krow = qkv + ((size_t)b * T + j) * 3 * C + C + h * HS;
        float v = naive_dot_(krow, q, HS) * scale;
        s[j] = v;
        m = fmaxf(m, v);
    }
    m = warp_max(m);
    __syncwarp();
    float tau;
    if (e.kind == ENTMAX_SOFTMAX) {
        float sum = 0.0f;
        for (int j = lane; j <= t; j += 32) sum += __expf(s[j] - m);
        tau = __logf(warp_sum(sum));
    } else {
        EntmaxTau tt = entmax_tau_init(alpha, 0.0f, t + 1);
        for (int it = 0; it < ENTMAX_REF_MAX_ITER; it++) {
            EntmaxSums sums = entmax_sums_zero();
            for (int j = lane; j <= t; j += 32) entmax_sums_add(e.kind, e.a, e.am1 * (s[j] - m) - tt.tau, &sums);
            sums.s0 = warp_sum(sums.s0); sums.s1 = warp_sum(sums.s1); sums.s2 = warp_sum(sums.s2);
            float f = sums.s0 - 1.0f;
            if (fabsf(f) <= ENTMAX_REF_TOL || tt.hi - tt.lo <= 1.2e-7f * fmaxf(1.0f, fabsf(tt.tau))) break;
            entmax_tau_step(e.kind, e.a, &tt, sums);
        }
        tau = tt.tau;
    }
    // p in place, nonzeros
    unsigned int nz = 0;
    for (int j = lane; j <= t; j += 32) {
        float p = naive_p_(e, s[j], m, tau);
        s[j] = p;
        nz += p > 0.0f;
    }
    __syncwarp();
    if (nonzero_count != NULL) {
        unsigned int tot = __reduce_add_sync(0xffffffffu, nz);
        if (lane == 0) atomicAdd(nonzero_count, (unsigned long long)tot);
    }
    floatX* orow = out + ((size_t)b * T + t) * C + h * HS;
    for (int d = lane; d < HS; d += 32) {
        float acc = 0.0f;
        for (int j = 0; j <= t; j++) {
            float p = s[j];
            if (p != 0.0f) acc += p * (float)qkv[((size_t)b * T + j) * 3 * C + 2 * C + h * HS + d];
        }
        orow[d] = (floatX)acc;
    }
    if (lane == 0) {
        float* st = stats + (((size_t)b * NH + h) * T + t) * 2;
        st[0] = m;
        st[1] = tau;
    }
}

// backward 1: one warp per query row: delta_t = sum u dp / sum u, dq_t = scale sum_j ds_j k_j
__global__ void naive_attention_backward_q_kernel(floatX* dqkv, float* delta, const floatX* dout, const floatX* qkv,
                                                  const float* stats, float alpha, int B, int T, int NH, int HS) {
    extern __shared__ float na_smem[];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int row = blockIdx.x * NAIVE_ATT_WARPS + w;
    if (row >= B * NH * T) return;
    const int t = row % T, h = (row / T) % NH, b = row / (T * NH);
    float* ds = na_smem + (size_t)w * (T + 2 * HS);
    float* q = ds + T;
    float* g = q + HS;
    const int C = NH * HS;
    const float scale = rsqrtf((float)HS);
    const Entmax e = entmax_make(alpha);
    const float* st = stats + (((size_t)b * NH + h) * T + t) * 2;
    const float m = st[0], tau = st[1];
    for (int d = lane; d < HS; d += 32) {
        q[d] = (float)qkv[((size_t)b * T + t) * 3 * C + h * HS + d];
        g[d] = (float)dout[((size_t)b * T + t) * C + h * HS + d];
    }
    __syncwarp();
    float su = 0.0f, sudp = 0.0f;
    for (int j = lane; j <= t; j += 32) {
        const floatX* base = qkv + ((size_t)b * T + j) * 3 * C + h * HS;
        float sc = naive_dot_(base + C, q, HS) * scale;
        float u = naive_u_(e, sc, m, tau);
        float dp = u != 0.0f ? naive_dot_(base + 2 * C, g, HS) : 0.0f;
        ds[j] = dp; // dp for now, ds after delta is known
        su += u; sudp += u * dp;
    }
    su = warp_sum(su); sudp = warp_sum(sudp);
    const float dl = su > 0.0f ? sudp / su : 0.0f;
    __syncwarp();
    for (int j = lane; j <= t; j += 32) {
        const floatX* base = qkv + ((size_t)b * T + j) * 3 * C + h * HS;
        float sc = naive_dot_(base + C, q, HS) * scale;
        float u = naive_u_(e, sc, m, tau);
        ds[j] = u * (ds[j] - dl);
    }
    __syncwarp();
    for (int d = lane; d < HS; d += 32) {
        float acc = 0.0f;
        for (int j = 0; j <= t; j++) {
            float x = ds[j];
            if (x != 0.0f) acc += x * (float)qkv[((size_t)b * T + j) * 3 * C + C + h * HS + d];
        }
        dqkv[((size_t)b * T + t) * 3 * C + h * HS + d] = (floatX)(acc * scale);
    }
    if (lane == 0) delta[((size_t)b * NH + h) * T + t] = dl;
}

// backward 2: one warp per key row j: dk_j = scale sum_t ds_tj q_t, dv_j = sum_t p_tj dout_t
__global__ void naive_attention_backward_kv_kernel(floatX* dqkv, const float* delta, const floatX* dout, const floatX* qkv,
                                                   const float* stats, float alpha, int B, int T, int NH, int HS) {
    extern __shared__ float na_smem[];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int row = blockIdx.x * NAIVE_ATT_WARPS + w;
    if (row >= B * NH * T) return;
    const int j = row % T, h = (row / T) % NH, b = row / (T * NH);
    float* pp = na_smem + (size_t)w * (2 * T + 2 * HS);
    float* ds = pp + T;
    float* k = ds + T;
    float* v = k + HS;
    const int C = NH * HS;
    const float scale = rsqrtf((float)HS);
    const Entmax e = entmax_make(alpha);
    for (int d = lane; d < HS; d += 32) {
        k[d] = (float)qkv[((size_t)b * T + j) * 3 * C + C + h * HS + d];
        v[d] = (float)qkv[((size_t)b * T + j) * 3 * C + 2 * C + h * HS + d];
    }
    __syncwarp();
    for (int t = j + lane; t < T; t += 32) {
        const float* st = stats + (((size_t)b * NH + h) * T + t) * 2;
        float sc = naive_dot_(qkv + ((size_t)b * T + t) * 3 * C + h * HS, k, HS) * scale;
        float p = naive_p_(e, sc, st[0], st[1]);
        float u = naive_u_(e, sc, st[0], st[1]);
        float dp = u != 0.0f ? naive_dot_(dout + ((size_t)b * T + t) * C + h * HS, v, HS) : 0.0f;
        pp[t] = p;
        ds[t] = u * (dp - delta[((size_t)b * NH + h) * T + t]);
    }
    __syncwarp();
    for (int d = lane; d < HS; d += 32) {
        float ak = 0.0f, av = 0.0f;
        for (int t = j; t < T; t++) {
            float x = ds[t], p = pp[t];
            if (x != 0.0f) ak += x * (float)qkv[((size_t)b * T + t) * 3 * C + h * HS + d];
            if (p != 0.0f) av += p * (float)dout[((size_t)b * T + t) * C + h * HS + d];
        }
        dqkv[((size_t)b * T + j) * 3 * C + C + h * HS + d] = (floatX)(ak * scale);
        dqkv[((size_t)b * T + j) * 3 * C + 2 * C + h * HS + d] = (floatX)av;
    }
}

static inline void naive_attention_check_(int HS) {
    if (HS % 8 != 0 || HS > NAIVE_ATT_MAX_HS) fail("naive attention: head size %d must be a multiple of 8 and <= %d", HS, NAIVE_ATT_MAX_HS);
}

static inline void naive_set_smem_(const void* fn, size_t smem) {
    if (smem > 48 * 1024) cudaCheck(cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
}

__global__ void stub_attention_kernel(floatX* dst, const floatX* src, int N, int C, int dst_stride, int src_stride, int dst_off, int src_off, int zero_qk) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; // one x128 of one token's C channels
    int per = C / 8;
    if (i >= (size_t)N * per) return;
    size_t tok = i / per, c = (i % per) * 8;
    store128(dst + tok * dst_stride + dst_off + c, load128(src + tok * src_stride + src_off + c));
    if (zero_qk) { store128(dst + tok * dst_stride + c, x128::zeros()); store128(dst + tok * dst_stride + C + c, x128::zeros()); }
}

static inline void naive_attention_forward(floatX* out, float* stats, const floatX* qkv, float alpha, int B, int T, int NH, int HS,
                                           unsigned long long* nonzero_count, cudaStream_t stream) {
#ifdef NAIVE_ATTENTION_STUB
    { int C = NH * HS, N = B * T; stub_attention_kernel<<<ceil_div(N * (C / 8), 256), 256, 0, stream>>>(out, qkv, N, C, C, 3 * C, 0, 2 * C, 0); cudaCheckLast(); return; }
#endif
    naive_attention_check_(HS);
    size_t smem = (size_t)NAIVE_ATT_WARPS * (T + HS) * sizeof(float);
    naive_set_smem_((const void*)naive_attention_forward_kernel, smem);
    int rows = B * NH * T;
    naive_attention_forward_kernel<<<ceil_div(rows, NAIVE_ATT_WARPS), NAIVE_ATT_WARPS * 32, smem, stream>>>(out, stats, qkv, alpha, B, T, NH, HS, nonzero_count);
    cudaCheckLast();
}

static inline void naive_attention_backward(floatX* dqkv, const floatX* dout, const floatX* qkv, const float* stats, float* delta,
                                            float alpha, int B, int T, int NH, int HS, cudaStream_t stream) {
#ifdef NAIVE_ATTENTION_STUB
    { int C = NH * HS, N = B * T; stub_attention_kernel<<<ceil_div(N * (C / 8), 256), 256, 0, stream>>>(dqkv, dout, N, C, 3 * C, C, 2 * C, 0, 1); cudaCheckLast(); return; }
#endif
    naive_attention_check_(HS);
    int rows = B * NH * T;
    size_t smem1 = (size_t)NAIVE_ATT_WARPS * (T + 2 * HS) * sizeof(float);
    naive_set_smem_((const void*)naive_attention_backward_q_kernel, smem1);
    naive_attention_backward_q_kernel<<<ceil_div(rows, NAIVE_ATT_WARPS), NAIVE_ATT_WARPS * 32, smem1, stream>>>(dqkv, delta, dout, qkv, stats, alpha, B, T, NH, HS);
    cudaCheckLast();
    size_t smem2 = (size_t)NAIVE_ATT_WARPS * (2 * T + 2 * HS) * sizeof(float);
    naive_set_smem_((const void*)naive_attention_backward_kv_kernel, smem2);
    naive_attention_backward_kv_kernel<<<ceil_div(rows, NAIVE_ATT_WARPS), NAIVE_ATT_WARPS * 32, smem2, stream>>>(dqkv, delta, dout, qkv, stats, alpha, B, T, NH, HS);
    cudaCheckLast();
}
