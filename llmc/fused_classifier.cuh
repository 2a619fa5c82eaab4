/*
 fused_classifier.cuh: softmax + cross-entropy loss + dlogits in one kernel, in place over the bf16 logits.

 For each row (b,t) of logits (N rows of Vp columns; only the first V are real tokens):
   M = max_j<V logit_j,  S = sum_j<V exp(logit_j - M)
   losses[row] += log S + M - logit[target]           (+= : losses accumulate over micro-steps)
   logits[row, j] <- dloss * (exp(logit_j - M) / S - [j == target])   for j < V,  0 for V <= j < Vp
 dloss = 1 / (B*T*grad_accum) (the mean over every token of the optimizer step). No (N,V) fp32 buffer
 and no probabilities are ever stored: the row is read twice (the second read hits L2: one block owns one
 row of Vp*2 bytes) and written once. Rows are taken in reverse block order: the last rows of the logits
 matmul are the most likely to still sit in L2.
 A target < 0 marks a position to ignore: no loss, dlogits = 0.
 WRITE_DLOGITS = false (evaluation) only accumulates the losses and leaves the logits untouched.
 Every reduction has a fixed order (block_max / block_sum), so the losses are bit-identical run to run.
*/
#pragma once

#include "cuda_common.cuh"

#define CLS_THREADS 1024

template <bool WRITE_DLOGITS>
__global__ void __launch_bounds__(CLS_THREADS)
fused_classifier_kernel(floatX* logits, float* __restrict__ losses, const int* __restrict__ targets, float dloss, int N, int V, int Vp) {
    __shared__ float scratch[32];
    const int row = N - 1 - blockIdx.x;
    floatX* x = logits + (size_t)row * Vp;
    const int target = targets[row];
    // read the target logit before any thread can reach pass 2 and overwrite it (the block syncs in between)
    const float x_target = (threadIdx.x == 0 && target >= 0) ? (float)x[target] : 0.0f;

    // pass 1: per-thread online max / sum over its own columns
    float m = -INFINITY, s = 0.0f;
    for (int i = threadIdx.x * x128::size; i < V; i += blockDim.x * x128::size) {
        x128 v = load128(x + i);
        float lm = -INFINITY;
#pragma unroll
        for (int k = 0; k < x128::size; k++) if (i + k < V) lm = fmaxf(lm, (float)v[k]);
        float nm = fmaxf(m, lm);
        float acc = s * __expf(m - nm); // m = -inf and nm finite: exp(-inf) = 0
#pragma unroll
        for (int k = 0; k < x128::size; k++) if (i + k < V) acc += __expf((float)v[k] - nm);
        s = acc;
        m = nm;
    }
    const float M = block_max(m, scratch);
    const float S = block_sum(m == -INFINITY ? 0.0f : s * __expf(m - M), scratch);
    if (threadIdx.x == 0 && target >= 0) losses[row] += __logf(S) + M - x_target;
    if (!WRITE_DLOGITS) return;

    // pass 2: dlogits in place (this thread only rewrites columns it read itself)
    const float inv_S = 1.0f / S;
    for (int i = threadIdx.x * x128::size; i < Vp; i += blockDim.x * x128::size) {
        x128 v = load128cs(x + i);
        x128 d;
#pragma unroll
        for (int k = 0; k < x128::size; k++) {
            int j = i + k;
            float p = __expf((float)v[k] - M) * inv_S;
            float g = (p - (j == target ? 1.0f : 0.0f)) * dloss;
            d[k] = (floatX)((j < V && target >= 0) ? g : 0.0f);
        }
        store128cs(x + i, d);
    }
}

// ----------------------------------------------------------------------------------------------------------
// launcher

static inline void fused_classifier(floatX* logits, float* losses, const int* targets, float dloss, int N, int V, int Vp,
                                    bool write_dlogits, cudaStream_t stream) {
    if (Vp % x128::size != 0) fail("fused_classifier: padded vocab %d must be a multiple of %d", Vp, x128::size);
    if (V > Vp) fail("fused_classifier: V = %d > Vp = %d", V, Vp);
    if (write_dlogits) fused_classifier_kernel<true><<<N, CLS_THREADS, 0, stream>>>(logits, losses, targets, dloss, N, V, Vp);
    else fused_classifier_kernel<false><<<N, CLS_THREADS, 0, stream>>>(logits, losses, targets, dloss, N, V, Vp);
    cudaCheckLast();
}
