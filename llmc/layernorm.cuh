/*
 layernorm.cuh: LayerNorm forward, fused residual-add + LayerNorm forward, and LayerNorm backward with a
 deterministic dweight/dbias reduction. bf16 storage, fp32 math, eps = 1e-5 (GPT-2).

 Layout: N rows (N = B*T) of C channels, row-major. C must be a multiple of 8 (16-byte vectors).

 Forward: one warp per row. The warp copies its row into shared memory (bf16) while summing it, computes the
 mean, then the variance as a second pass over the shared copy (two-pass: no cancellation), then writes
   out = (x - mean) * rstd * weight + bias,   mean and rstd (fp32, per row) saved for the backward.
 Fused residual: x = bf16(a + b) is written to `residual` and normalized in the same kernel, so the residual
 stream is read once. The LayerNorm sees the bf16-ROUNDED sum, exactly what the backward later reads.

 Backward (dinp is ADDED to, like every residual-stream gradient; dweight, dbias are ADDED to):
   norm = (x - mean) * rstd,  dnorm = dout * weight
   dinp   += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm))
   dweight += sum_rows dout * norm,   dbias += sum_rows dout
 Determinism without atomics: a fixed persistent grid; warp w of block b owns a fixed set of rows
 (row = (b * warps + w) + k * gridDim.x * warps) and accumulates its dweight/dbias in its own slice of shared
 memory (each lane owns fixed channels). At the end each block sums its warps in warp order and writes one
 fp32 partial row to `scratch`; a second small kernel adds the partials in block order and updates the bf16
 parameters. The grid depends only on the GPU's SM count, so results are bit-identical run to run.
*/
#pragma once

#include "cuda_common.cuh"

#define LN_EPS 1e-5f
#define LN_WARPS 8 // rows per block in the forward, warps per block in the backward

// ----------------------------------------------------------------------------------------------------------
// forward

// FUSED: x = a + b (written to residual) else x = a
template <bool FUSED>
__global__ void __launch_bounds__(LN_WARPS * 32)
layernorm_forward_kernel(floatX* __restrict__ out, float* __restrict__ mean, float* __restrict__ rstd,
                         floatX* __restrict__ residual, const floatX* __restrict__ a, const floatX* __restrict__ b,
                         const floatX* __restrict__ weight, const floatX* __restrict__ bias, int N, int C) {
    extern __shared__ __align__(16) unsigned char ln_smem[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int row = blockIdx.x * LN_WARPS + warp;
    if (row >= N) return;
    floatX* xs = reinterpret_cast<floatX*>(ln_smem) + (size_t)warp * C;
    const size_t off = (size_t)row * C;

    float sum = 0.0f;
    for (int i = lane * x128::size; i < C; i += 32 * x128::size) {
        x128 x = load128(a + off + i);
        if (FUSED) {
            x128 y = load128cs(b + off + i); // the branch output is read once
#pragma unroll
            for (int k = 0; k < x128::size; k++) x[k] = (floatX)((float)x[k] + (float)y[k]);
            store128(residual + off + i, x);
        }
#pragma unroll
        for (int k = 0; k < x128::size; k++) sum += (float)x[k];
        store128(xs + i, x);
    }
    const float m = warp_sum(sum) / C;
    float var = 0.0f;
    for (int i = lane * x128::size; i < C; i += 32 * x128::size) {
        x128 x = load128(xs + i);
#pragma unroll
        for (int k = 0; k < x128::size; k++) { float d = (float)x[k] - m; var += d * d; }
    }
    const float s = rsqrtf(warp_sum(var) / C + LN_EPS);
    for (int i = lane * x128::size; i < C; i += 32 * x128::size) {
        x128 x = load128(xs + i);
        x128 w = load128(weight + i);
        x128 bb = load128(bias + i);
        x128 o;
#pragma unroll
        for (int k = 0; k < x128::size; k++) o[k] = (floatX)(((float)x[k] - m) * s * (float)w[k] + (float)bb[k]);
        store128(out + off + i, o);
    }
    if (lane == 0) {
        if (mean != NULL) mean[row] = m;
        if (rstd != NULL) rstd[row] = s;
    }
}

// ----------------------------------------------------------------------------------------------------------
// backward

__global__ void __launch_bounds__(LN_WARPS * 32)
layernorm_backward_kernel(floatX* __restrict__ dinp, float* __restrict__ partials, const floatX* __restrict__ dout,
                          const floatX* __restrict__ inp, const floatX* __restrict__ weight,
                          const float* __restrict__ mean, const float* __restrict__ rstd, int N, int C) {
    extern __shared__ __align__(16) unsigned char ln_smem[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float* acc_w = reinterpret_cast<float*>(ln_smem) + (size_t)warp * 2 * C; // this warp's dweight slice
    float* acc_b = acc_w + C;                                                // and dbias slice
    for (int i = lane; i < 2 * C; i += 32) acc_w[i] = 0.0f;
    __syncwarp();

    for (int row = blockIdx.x * LN_WARPS + warp; row < N; row += gridDim.x * LN_WARPS) {
        const size_t off = (size_t)row * C;
        const float m = mean[row], s = rstd[row];
        float sum_dn = 0.0f, sum_dn_n = 0.0f;
        for (int i = lane * x128::size; i < C; i += 32 * x128::size) {
            x128 d = load128(dout + off + i);
            x128 x = load128(inp + off + i);
            x128 w = load128(weight + i);
#pragma unroll
            for (int k = 0; k < x128::size; k++) {
                float n = ((float)x[k] - m) * s;
                float dn = (float)d[k] * (float)w[k];
                sum_dn += dn;
                sum_dn_n += dn * n;
            }
        }
        const float mean_dn = warp_sum(sum_dn) / C;
        const float mean_dn_n = warp_sum(sum_dn_n) / C;
        for (int i = lane * x128::size; i < C; i += 32 * x128::size) {
            x128 d = load128cs(dout + off + i);
            x128 x = load128cs(inp + off + i);
            x128 w = load128(weight + i);
            x128 g = load128(dinp + off + i);
            f128 aw0 = load128(acc_w + i), aw1 = load128(acc_w + i + 4);
            f128 ab0 = load128(acc_b + i), ab1 = load128(acc_b + i + 4);
#pragma unroll
            for (int k = 0; k < x128::size; k++) {
                float n = ((float)x[k] - m) * s;
                float dk = (float)d[k];
                float dn = dk * (float)w[k];
                g[k] = (floatX)((float)g[k] + s * (dn - mean_dn - n * mean_dn_n));
                if (k < 4) { aw0[k] += dk * n; ab0[k] += dk; }
                else { aw1[k - 4] += dk * n; ab1[k - 4] += dk; }
            }
            store128(dinp + off + i, g);
            store128(acc_w + i, aw0); store128(acc_w + i + 4, aw1);
            store128(acc_b + i, ab0); store128(acc_b + i + 4, ab1);
        }
    }
    __syncthreads();
    // block partial: sum the warps' slices in warp order
    float* part = partials + (size_t)blockIdx.x * 2 * C;
    const float* base = reinterpret_cast<const float*>(ln_smem);
    for (int i = threadIdx.x; i < 2 * C; i += blockDim.x) {
        float t = 0.0f;
#pragma unroll
        for (int w = 0; w < LN_WARPS; w++) t += base[(size_t)w * 2 * C + i];
        part[i] = t;
    }
}

// sums nblocks partial rows of 2C floats in block order; dweight[c] += ..., dbias[c] += ...
__global__ void layernorm_backward_reduce_kernel(floatX* dweight, floatX* dbias, const float* partials, int nblocks, int C) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= 2 * C) return;
    float t = 0.0f;
    for (int b = 0; b < nblocks; b++) t += partials[(size_t)b * 2 * C + i];
    if (i < C) dweight[i] = (floatX)((float)dweight[i] + t);
    else dbias[i - C] = (floatX)((float)dbias[i - C] + t);
}

// ----------------------------------------------------------------------------------------------------------
// launchers

static inline void layernorm_check_c_(int C, const char* who) {
    if (C % x128::size != 0) fail("%s: C = %d must be a multiple of %d", who, C, x128::size);
}

static inline size_t layernorm_forward_smem_(int C) { return (size_t)LN_WARPS * C * sizeof(floatX); }

template <bool FUSED>
static inline void layernorm_forward_launch_(floatX* out, float* mean, float* rstd, floatX* residual, const floatX* a,
                                             const floatX* b, const floatX* weight, const floatX* bias, int N, int C,
                                             cudaStream_t stream) {
    layernorm_check_c_(C, "layernorm_forward");
    size_t smem = layernorm_forward_smem_(C);
    static size_t smem_set = 48 * 1024; // per instantiation: the opt-in limit raised so far
    if (smem > smem_set) {
        if (smem > device_info()->max_smem_optin) fail("layernorm_forward: C = %d is too large for shared memory", C);
        cudaCheck(cudaFuncSetAttribute(layernorm_forward_kernel<FUSED>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        smem_set = smem;
    }
    layernorm_forward_kernel<FUSED><<<ceil_div(N, LN_WARPS), LN_WARPS * 32, smem, stream>>>(out, mean, rstd, residual, a, b,
                                                                                          weight, bias, N, C);
    cudaCheckLast();
}

// out = LN(inp); mean / rstd may be NULL (recompute)
static inline void layernorm_forward(floatX* out, float* mean, float* rstd, const floatX* inp, const floatX* weight,
                                     const floatX* bias, int N, int C, cudaStream_t stream) {
    layernorm_forward_launch_<false>(out, mean, rstd, NULL, inp, NULL, weight, bias, N, C, stream);
}

// residual = a + b; out = LN(residual)
static inline void fused_residual_layernorm_forward(floatX* residual, floatX* out, float* mean, float* rstd, const floatX* a,
                                                    const floatX* b, const floatX* weight, const floatX* bias, int N,
                                                    int C, cudaStream_t stream) {
    layernorm_forward_launch_<true>(out, mean, rstd, residual, a, b, weight, bias, N, C, stream);
}

// grid of the backward: persistent, a function of the GPU only
static inline int layernorm_backward_grid_(int N) {
    const DeviceInfo* d = device_info();
    int per_sm = d->max_threads_per_sm / (LN_WARPS * 32);
    if (per_sm > 4) per_sm = 4; // shared memory: 4 x 8 warps x 2C floats fits for C <= 1728
    if (per_sm < 1) per_sm = 1;
    int g = d->num_sms * per_sm;
    int need = ceil_div(N, LN_WARPS);
    return g < need ? g : need;
}

// floats of scratch the backward needs (the caller allocates once)
static inline size_t layernorm_backward_scratch_floats(int C) {
    const DeviceInfo* d = device_info();
    return (size_t)d->num_sms * 4 * 2 * C;
}

static inline void layernorm_backward(floatX* dinp, floatX* dweight, floatX* dbias, float* scratch, const floatX* dout,
                                      const floatX* inp, const floatX* weight, const float* mean, const float* rstd, int N,
                                      int C, cudaStream_t stream) {
    layernorm_check_c_(C, "layernorm_backward");
    int grid = layernorm_backward_grid_(N);
    size_t smem = (size_t)LN_WARPS * 2 * C * sizeof(float);
    static size_t smem_set = 48 * 1024;
    if (smem > smem_set) {
        if (smem > device_info()->max_smem_optin) fail("layernorm_backward: C = %d is too large for shared memory", C);
        cudaCheck(cudaFuncSetAttribute(layernorm_backward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        smem_set = smem;
    }
    layernorm_backward_kernel<<<grid, LN_WARPS * 32, smem, stream>>>(dinp, scratch, dout, inp, weight, mean, rstd, N, C);
    cudaCheckLast();
    layernorm_backward_reduce_kernel<<<ceil_div(2 * C, 256), 256, 0, stream>>>(dweight, dbias, scratch, grid, C);
    cudaCheckLast();
}
