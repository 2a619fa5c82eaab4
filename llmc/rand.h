/*
 rand.h: Mersenne Twister mt19937 and the normal-distribution fill that PyTorch's CPU generator uses, so
 that `-e dN` starts from the same weights as llm.c (which matches torch.manual_seed(42) + normal_).

   uniform float32 in [0,1): (next_u32 & (2^24-1)) / 2^24
   uniform float64 in [0,1): (next_u64 & (2^53-1)) / 2^53, next_u64 = (u32 << 32) | u32
   normal fill of n >= 16 floats: fill with uniform floats, then Box-Muller on blocks of 16,
     pairing element j with j+8:  r = sqrt(-2 ln(1 - u_j)), th = 2 pi u_{j+8}
     out_j = r cos(th), out_{j+8} = r sin(th); a ragged tail recomputes the last 16 with fresh uniforms.
   n < 16: element-wise Box-Muller in double, caching the second value.
 The state is a plain struct so it can be saved in the training state file for bit-exact resume.
*/
#pragma once

#include <stdint.h>
#include <math.h>

#define MT_N 624
#define MT_M 397

typedef struct {
    uint32_t state[MT_N];
    uint32_t left;       // values left before the next twist
    uint32_t next;       // index of the next value
    int has_cached_normal;
    double cached_normal;
} mt19937;

static inline void mt_seed(mt19937* r, uint32_t seed) {
    r->state[0] = seed;
    for (uint32_t i = 1; i < MT_N; i++) r->state[i] = 1812433253u * (r->state[i - 1] ^ (r->state[i - 1] >> 30)) + i;
    r->left = 1;
    r->next = 0;
    r->has_cached_normal = 0;
    r->cached_normal = 0.0;
}

static inline void mt_twist(mt19937* r) {
    for (uint32_t i = 0; i < MT_N; i++) {
        uint32_t y = (r->state[i] & 0x80000000u) | (r->state[(i + 1) % MT_N] & 0x7fffffffu);
        uint32_t v = r->state[(i + MT_M) % MT_N] ^ (y >> 1);
        if (y & 1u) v ^= 0x9908b0dfu;
        r->state[i] = v;
    }
    r->left = MT_N;
    r->next = 0;
}

static inline uint32_t mt_u32(mt19937* r) {
    if (--r->left == 0) mt_twist(r);
    uint32_t y = r->state[r->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

static inline uint64_t mt_u64(mt19937* r) {
    uint64_t hi = mt_u32(r), lo = mt_u32(r);
    return (hi << 32) | lo;
}

static inline float mt_uniform_f32(mt19937* r) { return (float)(mt_u32(r) & ((1u << 24) - 1)) * (1.0f / (float)(1u << 24)); }
static inline double mt_uniform_f64(mt19937* r) { return (double)(mt_u64(r) & ((1ull << 53) - 1)) * (1.0 / (double)(1ull << 53)); }

// uniform integer in [0, n) (n > 0); used for shuffling, not for weights
static inline uint32_t mt_below(mt19937* r, uint32_t n) {
    // rejection sampling removes the modulo bias
    uint32_t limit = UINT32_MAX - UINT32_MAX % n;
    uint32_t x;
    do { x = mt_u32(r); } while (x >= limit);
    return x % n;
}

static inline void mt_normal_block16(float* x, float mean, float std) {
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - x[j];
        float u2 = x[j + 8];
        float radius = sqrtf(-2.0f * logf(u1));
        float theta = 2.0f * (float)M_PI * u2;
        x[j] = radius * cosf(theta) * std + mean;
        x[j + 8] = radius * sinf(theta) * std + mean;
    }
}

// fill x[0..n) with N(mean, std^2) exactly as torch's CPU normal_ does
static inline void mt_normal_fill(mt19937* r, float* x, size_t n, float mean, float std) {
    if (n >= 16) {
        for (size_t i = 0; i < n; i++) x[i] = mt_uniform_f32(r);
        for (size_t i = 0; i + 16 <= n; i += 16) mt_normal_block16(x + i, mean, std);
        if (n % 16 != 0) {
            float* tail = x + n - 16;
            for (int i = 0; i < 16; i++) tail[i] = mt_uniform_f32(r);
            mt_normal_block16(tail, mean, std);
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (r->has_cached_normal) {
            r->has_cached_normal = 0;
            x[i] = (float)(r->cached_normal * std + mean);
            continue;
        }
        double u1 = mt_uniform_f64(r), u2 = mt_uniform_f64(r);
        double radius = sqrt(-2.0 * log1p(-u2));
        double theta = 2.0 * M_PI * u1;
        r->cached_normal = radius * sin(theta);
        r->has_cached_normal = 1;
        x[i] = (float)(radius * cos(theta) * std + mean);
    }
}

// Fisher-Yates shuffle of 0..n-1
static inline void mt_permutation(mt19937* r, int* perm, int n) {
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)mt_below(r, (uint32_t)(i + 1));
        int t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}

// xorshift* generator for sampling text (seeded 1337, as llm.c); uniform float in [0,1)
static inline uint32_t xorshift_u32(uint64_t* state) {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return (uint32_t)((*state * 0x2545F4914F6CDD1Dull) >> 32);
}
static inline float xorshift_f32(uint64_t* state) { return (xorshift_u32(state) >> 8) / 16777216.0f; }
