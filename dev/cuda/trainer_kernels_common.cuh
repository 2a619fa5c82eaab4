/*
 trainer_kernels_common.cuh: helpers for the dev/cuda tests of the trainer's non-attention kernels
 (encoder, layernorm, matmul, gelu, fused_classifier, adamw, global_norm). Host-only test scaffolding:
 random data, bf16 conversion, validation against an fp32/fp64 CPU reference, L2-flushed event timing.

 Every test prints lines starting with "RESULT" (one per checked or timed thing), so a runner can grep a
 compact table out of the logs:
   RESULT <test> <what> rel_l2=<..> max_abs=<..> bad=<n> PASS|FAIL
   RESULT <test> <what> ms=<median> GB/s=<..> [TFLOP/s=<..>]
*/
#pragma once

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <vector>
#include <algorithm>
#include "../../llmc/cuda_common.cuh"

static int g_failures = 0;

// ----------------------------------------------------------------------------------------------------------
// random numbers (host): a small xorshift so tests do not depend on libc rand()

static uint64_t g_test_rng = 0x853c49e6748fea9bull;
static inline void test_seed(uint64_t s) { g_test_rng = s * 0x9E3779B97F4A7C15ull + 1; }
static inline uint32_t test_u32() {
    g_test_rng ^= g_test_rng >> 12; g_test_rng ^= g_test_rng << 25; g_test_rng ^= g_test_rng >> 27;
    return (uint32_t)((g_test_rng * 0x2545F4914F6CDD1Dull) >> 32);
}
static inline float test_uniform() { return (test_u32() >> 8) * (1.0f / 16777216.0f); } // [0,1)
static inline float test_sym() { return 2.0f * test_uniform() - 1.0f; }                  // [-1,1)
static inline float test_normal() {
    float u1 = test_uniform() + 1e-7f, u2 = test_uniform();
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

static std::vector<float> rand_vec(size_t n, float scale = 1.0f) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) v[i] = scale * test_sym();
    return v;
}

// bf16 round-to-nearest-even on the host (so the CPU reference sees exactly what the GPU reads)
static inline float bf16_round(float x) {
    uint32_t u; memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) return x;
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    float r; memcpy(&r, &u, 4);
    return r;
}
static inline uint16_t f2bf_bits(float x) {
    float r = bf16_round(x); uint32_t u; memcpy(&u, &r, 4); return (uint16_t)(u >> 16);
}
static inline float bf_bits2f(uint16_t b) { uint32_t u = (uint32_t)b << 16; float f; memcpy(&f, &u, 4); return f; }

static void round_vec_bf16(std::vector<float>& v) { for (auto& x : v) x = bf16_round(x); }

// device buffers
static floatX* to_device_bf16(const std::vector<float>& v) {
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); i++) h[i] = f2bf_bits(v[i]);
    floatX* d = (floatX*)cudaMallocOrFail(v.size() * 2, "test buffer");
    cudaCheck(cudaMemcpy(d, h.data(), v.size() * 2, cudaMemcpyHostToDevice));
    return d;
}
static float* to_device_f32(const std::vector<float>& v) {
    float* d = (float*)cudaMallocOrFail(v.size() * 4, "test buffer");
    cudaCheck(cudaMemcpy(d, v.data(), v.size() * 4, cudaMemcpyHostToDevice));
    return d;
}
static std::vector<float> from_device_bf16(const floatX* d, size_t n) {
    std::vector<uint16_t> h(n);
    cudaCheck(cudaMemcpy(h.data(), d, n * 2, cudaMemcpyDeviceToHost));
    std::vector<float> v(n);
    for (size_t i = 0; i < n; i++) v[i] = bf_bits2f(h[i]);
    return v;
}
static std::vector<float> from_device_f32(const float* d, size_t n) {
    std::vector<float> v(n);
    cudaCheck(cudaMemcpy(v.data(), d, n * 4, cudaMemcpyDeviceToHost));
    return v;
}
static std::vector<uint16_t> bits_from_device(const floatX* d, size_t n) {
    std::vector<uint16_t> h(n);
    cudaCheck(cudaMemcpy(h.data(), d, n * 2, cudaMemcpyDeviceToHost));
    return h;
}
// device-side uniform [-scale, scale) fill for big timing buffers (no host round trip)
__global__ void fill_uniform_bf16_kernel(floatX* d, size_t n, float scale, uint32_t seed) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = hash_idx_seed((uint32_t)i ^ (uint32_t)(i >> 32) * 0x9e3779b9u, seed);
        d[i] = (floatX)(scale * ((h >> 8) * (2.0f / 16777216.0f) - 1.0f));
    }
}
static floatX* device_uniform_bf16(size_t n, float scale, uint32_t seed) {
    floatX* d = (floatX*)cudaMallocOrFail(n * 2, "test buffer");
    fill_uniform_bf16_kernel<<<1024, 256>>>(d, n, scale, seed);
    cudaCheck(cudaGetLastError());
    return d;
}

// fill a device bf16 buffer with NaN bit patterns so unwritten outputs are caught by validation
static void poison_bf16(floatX* d, size_t n) { cudaCheck(cudaMemset(d, 0xff, n * 2)); }
static void poison_f32(float* d, size_t n) { cudaCheck(cudaMemset(d, 0xff, n * 4)); }

// ----------------------------------------------------------------------------------------------------------
// validation: rel_l2 = ||out - ref|| / ||ref||; "bad" counts elements with |out-ref| > atol + rtol*|ref|
// (NaN counts as bad). Passes when rel_l2 <= max_rel_l2 and bad == 0.

static bool check(const char* test, const char* what, const std::vector<float>& out, const std::vector<float>& ref,
                  double max_rel_l2, double atol, double rtol) {
    double num = 0, den = 0, max_abs = 0;
    size_t bad = 0, first_bad = (size_t)-1;
    for (size_t i = 0; i < ref.size(); i++) {
        double o = out[i], r = ref[i], d = fabs(o - r);
        if (!(d == d)) { bad++; if (first_bad == (size_t)-1) first_bad = i; num = INFINITY; continue; }
        num += d * d; den += r * r;
        if (d > max_abs) max_abs = d;
        if (d > atol + rtol * fabs(r)) { bad++; if (first_bad == (size_t)-1) first_bad = i; }
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    bool ok = rel <= max_rel_l2 && bad == 0;
    printf("RESULT %-16s %-34s rel_l2=%.3e max_abs=%.3e bad=%zu/%zu %s\n", test, what, rel, max_abs, bad, ref.size(),
           ok ? "PASS" : "FAIL");
    if (!ok && first_bad != (size_t)-1)
        printf("       first bad at %zu: gpu %.6g ref %.6g\n", first_bad, out[first_bad], ref[first_bad]);
    if (!ok) g_failures++;
    return ok;
}

static bool check_true(const char* test, const char* what, bool cond, const char* detail) {
    printf("RESULT %-16s %-34s %s %s\n", test, what, detail, cond ? "PASS" : "FAIL");
    if (!cond) g_failures++;
    return cond;
}

// ----------------------------------------------------------------------------------------------------------
// timing: median of `reps` runs, each preceded by an L2 flush (a memset of 2x L2 that the timed region
// excludes); the callable enqueues work on stream 0

static void* g_flush_buf = NULL;
static size_t g_flush_bytes = 0;

// `setup` runs before each timed run, outside the timed region (e.g. restore an in-place buffer)
template <class S, class F>
static float bench_ms_setup(int reps, S&& setup, F&& fn) {
    if (g_flush_buf == NULL) {
        g_flush_bytes = 2 * device_info()->l2_bytes;
        g_flush_buf = cudaMallocOrFail(g_flush_bytes, "L2 flush buffer");
    }
    setup();
    fn(); // warm-up (module load, handles, caches of descriptors)
    cudaCheck(cudaDeviceSynchronize());
    cudaEvent_t a, b;
    cudaCheck(cudaEventCreate(&a));
    cudaCheck(cudaEventCreate(&b));
    std::vector<float> t(reps);
    for (int r = 0; r < reps; r++) {
        setup();
        cudaCheck(cudaMemsetAsync(g_flush_buf, r & 0xff, g_flush_bytes, 0));
        cudaCheck(cudaEventRecord(a, 0));
        fn();
        cudaCheck(cudaEventRecord(b, 0));
        cudaCheck(cudaEventSynchronize(b));
        cudaCheck(cudaEventElapsedTime(&t[r], a, b));
    }
    cudaCheck(cudaEventDestroy(a));
    cudaCheck(cudaEventDestroy(b));
    std::sort(t.begin(), t.end());
    return t[reps / 2];
}

template <class F>
static float bench_ms(int reps, F&& fn) { return bench_ms_setup(reps, [] {}, fn); }

static void report_time(const char* test, const char* what, float ms, double bytes, double flops = 0) {
    printf("RESULT %-16s %-34s ms=%.4f GB/s=%.0f", test, what, ms, bytes / (ms * 1e-3) / 1e9);
    if (flops > 0) printf(" TFLOP/s=%.1f", flops / (ms * 1e-3) / 1e12);
    printf("\n");
}

static int finish(const char* test) {
    printf("%s: %s (%d failures)\n", test, g_failures == 0 ? "ALL OK" : "FAILED", g_failures);
    return g_failures == 0 ? 0 : 1;
}
