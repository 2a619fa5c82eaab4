/*
 attention_common.cuh: helpers shared by dev/cuda/attention_forward.cu and dev/cuda/attention_backward.cu
 (error checks, random bf16 tensors, the entmax.h CPU reference, error and timing helpers).
*/
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include <vector>
#include <algorithm>
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include "llmc/entmax.h"
#include "llmc/attention.cuh"

#define cudaCheck(x)                                                                                         \
    do {                                                                                                     \
        cudaError_t e_ = (x);                                                                                \
        if (e_ != cudaSuccess) {                                                                             \
            fprintf(stderr, "error: CUDA %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__);       \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)

#define attnCheck(x)                                                                                         \
    do {                                                                                                     \
        int c_ = (x);                                                                                        \
        if (c_ != ATTN_OK) {                                                                                 \
            fprintf(stderr, "error: %s at %s:%d\n", attention_strerror(c_), __FILE__, __LINE__);            \
            exit(1);                                                                                         \
        }                                                                                                    \
    } while (0)

typedef __nv_bfloat16 bf16;

// deterministic N(0,1) values (xorshift + Box-Muller), rounded to bf16 on the host
static inline void fill_randn(std::vector<float>& v, unsigned long long seed, float scale = 1.0f) {
    unsigned long long s = seed * 0x9E3779B97F4A7C15ull + 1;
    auto next = [&]() { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return (double)(s >> 11) / 9007199254740992.0; };
    for (size_t i = 0; i < v.size(); i++) {
        double u1 = next() + 1e-12, u2 = next();
        float x = (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2)) * scale;
        v[i] = __bfloat162float(__float2bfloat16(x));
    }
}

static inline bf16* to_device_bf16(const std::vector<float>& v) {
    std::vector<bf16> h(v.size());
    for (size_t i = 0; i < v.size(); i++) h[i] = __float2bfloat16(v[i]);
    bf16* d;
    cudaCheck(cudaMalloc(&d, h.size() * sizeof(bf16)));
    cudaCheck(cudaMemcpy(d, h.data(), h.size() * sizeof(bf16), cudaMemcpyHostToDevice));
    return d;
}

static inline std::vector<float> from_device_bf16(const bf16* d, size_t n) {
    std::vector<bf16> h(n);
    cudaCheck(cudaMemcpy(h.data(), d, n * sizeof(bf16), cudaMemcpyDeviceToHost));
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) v[i] = __bfloat162float(h[i]);
    return v;
}

// (B, T, H, D) contiguous descriptor
static inline AttnTensor bthd(void* p, int T, int H, int D) {
    AttnTensor t;
    t.ptr = p; t.st = (long long)H * D; t.sh = D; t.sb = (long long)T * H * D;
    return t;
}

// CPU reference with entmax.h (float math): layout (B, T, H, D). dout may be NULL (forward only).
static void attention_reference_cpu(int B, int T, int H, int D, float alpha, int causal, const float* q,
                                    const float* k, const float* v, const float* dout, float* o, float* dq,
                                    float* dk, float* dv) {
    Entmax e = entmax_make(alpha);
    float scale = 1.0f / sqrtf((float)D);
    std::vector<float> s(T), p(T), dp(T), ds(T);
    size_t n = (size_t)B * T * H * D;
    if (dout) std::fill(dq, dq + n, 0.0f), std::fill(dk, dk + n, 0.0f), std::fill(dv, dv + n, 0.0f);
    auto idx = [&](int b, int t, int h) { return (((size_t)b * T + t) * H + h) * D; };
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                const float* qi = q + idx(b, i, h);
                for (int j = 0; j < T; j++) {
                    if (causal && j > i) { s[j] = -INFINITY; continue; }
                    const float* kj = k + idx(b, j, h);
                    float acc = 0.0f;
                    for (int d = 0; d < D; d++) acc += qi[d] * kj[d];
                    s[j] = acc * scale;
                }
                entmax_row_forward(&e, s.data(), p.data(), T);
                float* oi = o + idx(b, i, h);
                for (int d = 0; d < D; d++) oi[d] = 0.0f;
                for (int j = 0; j < T; j++)
                    if (p[j] != 0.0f)
                        for (int d = 0; d < D; d++) oi[d] += p[j] * v[idx(b, j, h) + d];
                if (!dout) continue;
                const float* doi = dout + idx(b, i, h);
                for (int j = 0; j < T; j++) {
                    float acc = 0.0f;
                    for (int d = 0; d < D; d++) acc += doi[d] * v[idx(b, j, h) + d];
                    dp[j] = acc;
                    if (p[j] != 0.0f)
                        for (int d = 0; d < D; d++) dv[idx(b, j, h) + d] += p[j] * doi[d];
                }
                entmax_row_backward(&e, p.data(), dp.data(), ds.data(), T, 0);
                for (int j = 0; j < T; j++) {
                    if (ds[j] == 0.0f) continue;
                    for (int d = 0; d < D; d++) {
                        dq[idx(b, i, h) + d] += ds[j] * scale * k[idx(b, j, h) + d];
                        dk[idx(b, j, h) + d] += ds[j] * scale * qi[d];
                    }
                }
            }
}

// ||x - ref|| / ||ref|| and max |x - ref|
static inline void compare(const char* what, const std::vector<float>& x, const std::vector<float>& ref, double tol,
                           int* fails) {
    double num = 0, den = 0, mx = 0;
    bool finite = true;
    for (size_t i = 0; i < x.size(); i++) {
        if (!std::isfinite(x[i])) finite = false;
        double d = (double)x[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
        mx = std::max(mx, fabs(d));
    }
    double rel = sqrt(num / (den > 0 ? den : 1));
    bool ok = finite && rel <= tol;
    if (!ok) (*fails)++;
    printf("  %-4s rel err %.2e  max abs err %.2e  %s\n", what, rel, mx, ok ? "OK" : "FAIL");
}

// median time (ms) of `reps` runs of f() with CUDA events, after `warm` warm-up runs
template <typename F>
static float time_median_ms(F f, int warm = 3, int reps = 15) {
    for (int i = 0; i < warm; i++) f();
    cudaCheck(cudaDeviceSynchronize());
    cudaEvent_t a, b;
    cudaCheck(cudaEventCreate(&a));
    cudaCheck(cudaEventCreate(&b));
    std::vector<float> ts;
    for (int i = 0; i < reps; i++) {
        cudaCheck(cudaEventRecord(a));
        f();
        cudaCheck(cudaEventRecord(b));
        cudaCheck(cudaEventSynchronize(b));
        float ms;
        cudaCheck(cudaEventElapsedTime(&ms, a, b));
        ts.push_back(ms);
    }
    cudaCheck(cudaEventDestroy(a));
    cudaCheck(cudaEventDestroy(b));
    std::sort(ts.begin(), ts.end());
    return ts[ts.size() / 2];
}
