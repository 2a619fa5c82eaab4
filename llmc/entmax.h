/*
 entmax.h: the alpha-entmax math. ONE implementation, shared by the CPU reference (train_gpt2.cpp, tests,
 tools) and the CUDA kernels (every function is __host__ __device__ when compiled by nvcc).

 Definitions (AdaSplash's "z-space" convention):
   s_j    scores of one attention row (already multiplied by 1/sqrt(head_dim)), -inf = masked key
   z_j  = (alpha-1) * (s_j - s_max)           we always shift by the row max, so z_max = 0 and x <= 1
   p_j  = [z_j - tau]_+ ^ a,   a = 1/(alpha-1),   tau the unique value with sum_j p_j = 1
 alpha = 1 means softmax everywhere in the project; alpha = 2 is sparsemax; alpha = 1.5 is "entmax15".
 alpha outside [1, 2] is an error (callers check entmax_alpha_is_valid and fail with a message).

 Threshold equation. With x_j = z_j - tau and sums over the support (x_j > 0):
   f(tau)   = sum x^a - 1                   strictly decreasing, convex for 1 < alpha <= 2
   f'(tau)  = -a      * sum x^(a-1)
   f''(tau) =  a(a-1) * sum x^(a-2)
 Bracket (n = number of unmasked keys): tau* in [z_max - 1, z_max - n^(1-alpha)] = [-1, -n^(1-alpha)].
 Halley-bisection (AdaSplash Alg. 1): evaluate the three sums at tau; shrink the bracket with the sign of f;
 take the Halley candidate tau - 2 f f' / (2 f'^2 - f f''); keep it if it lies inside the bracket (+-eps),
 else bisect. alpha = 1.5: p = x^2, u = x, f'' = 2 |support|. alpha = 2: f'' = 0 and Halley is Newton.

 Backward (Jacobian of p wrt the unscaled scores s; the (alpha-1) factors cancel):
   u_j = p_j^(2-alpha) = x_j^(a-1) on the support (softmax: u = p)
   ds_j = u_j * (dp_j - delta),   delta = sum_j u_j dp_j / sum_j u_j
*/
#pragma once

#include <math.h>

#ifdef __CUDACC__
#define ENTMAX_HD __host__ __device__ __forceinline__
#else
#define ENTMAX_HD static inline
#endif

// ----------------------------------------------------------------------------------------------------------
// parameters of one alpha

enum EntmaxKind {
    ENTMAX_SOFTMAX = 0,   // alpha == 1
    ENTMAX_GENERAL = 1,   // 1 < alpha < 2, alpha != 1.5: powers through exp2/log2
    ENTMAX_15 = 2,        // alpha == 1.5: p = x^2, u = x, no transcendentals
    ENTMAX_SPARSEMAX = 3, // alpha == 2:   p = x,   u = 1
};

typedef struct {
    float alpha;
    float am1; // alpha - 1: z = am1 * (s - s_max)
    float a;   // 1/(alpha-1): p = x^a (0 for softmax, unused there)
    int kind;  // EntmaxKind
} Entmax;

// the accepted range is the closed interval [1, 2]; NaN is rejected
ENTMAX_HD int entmax_alpha_is_valid(float alpha) { return alpha >= 1.0f && alpha <= 2.0f; }

ENTMAX_HD int entmax_kind_of(float alpha) {
    if (alpha == 1.0f) return ENTMAX_SOFTMAX;
    if (alpha == 1.5f) return ENTMAX_15;
    if (alpha == 2.0f) return ENTMAX_SPARSEMAX;
    return ENTMAX_GENERAL;
}

ENTMAX_HD Entmax entmax_make(float alpha) {
    Entmax e;
    e.alpha = alpha;
    e.am1 = alpha - 1.0f;
    e.kind = entmax_kind_of(alpha);
    e.a = e.kind == ENTMAX_SOFTMAX ? 0.0f : 1.0f / e.am1;
    return e;
}

// ----------------------------------------------------------------------------------------------------------
// elementwise pieces; `kind` is usually a compile-time constant in kernels, so the switch folds away

// x^e for x > 0
ENTMAX_HD float entmax_pow(float x, float e) { return exp2f(e * log2f(x)); }

// p = [x]_+^a
ENTMAX_HD float entmax_p(int kind, float a, float x) {
    if (!(x > 0.0f)) return 0.0f;
    if (kind == ENTMAX_15) return x * x;
    if (kind == ENTMAX_SPARSEMAX) return x;
    return entmax_pow(x, a);
}

// u = p^(2-alpha) = [x]_+^(a-1): the weight of the backward pass
ENTMAX_HD float entmax_u(int kind, float a, float x) {
    if (!(x > 0.0f)) return 0.0f;
    if (kind == ENTMAX_15) return x;
    if (kind == ENTMAX_SPARSEMAX) return 1.0f;
    return entmax_pow(x, a - 1.0f);
}

// the three sums of the threshold equation, accumulated over the support
typedef struct {
    float s0; // sum x^a      (f + 1)
    float s1; // sum x^(a-1)  (-f' / a)
    float s2; // sum x^(a-2)  (f'' / (a(a-1)))
} EntmaxSums;

ENTMAX_HD EntmaxSums entmax_sums_zero() {
    EntmaxSums s;
    s.s0 = 0.0f; s.s1 = 0.0f; s.s2 = 0.0f;
    return s;
}

// For alpha > 1.5 the exponent a-2 is negative and x^(a-2) is unbounded as x -> 0+. f'' only shapes the
// Halley correction (never the bracket), so we evaluate that one term at max(x, ENTMAX_X2_FLOOR): an element
// that lands within 2^-20 of tau then cannot freeze the iteration with an infinite f''.
#define ENTMAX_X2_FLOOR 9.5367431640625e-07f /* 2^-20 */

ENTMAX_HD void entmax_sums_add(int kind, float a, float x, EntmaxSums* s) {
    if (!(x > 0.0f)) return;
    if (kind == ENTMAX_15) {
        s->s0 += x * x; s->s1 += x; s->s2 += 1.0f;
    } else if (kind == ENTMAX_SPARSEMAX) {
        s->s0 += x; s->s1 += 1.0f; // a(a-1) = 0: f'' vanishes
    } else {
        float u = entmax_pow(x, a - 1.0f);
        s->s0 += u * x;
        s->s1 += u;
        s->s2 += a >= 2.0f ? u / x : entmax_pow(fmaxf(x, ENTMAX_X2_FLOOR), a - 2.0f);
    }
}

ENTMAX_HD void entmax_sums_merge(EntmaxSums* into, EntmaxSums from) {
    into->s0 += from.s0; into->s1 += from.s1; into->s2 += from.s2;
}

// ----------------------------------------------------------------------------------------------------------
// the safeguarded Halley-bisection update of tau

typedef struct {
    float tau; // current estimate
    float lo;  // f(lo) >= 0
    float hi;  // f(hi) <= 0
} EntmaxTau;

// acceptance slack of the Halley candidate around the bracket (AdaSplash v1 uses 1e-6)
#define ENTMAX_BRACKET_EPS 1e-6f

// bracket for a row with n unmasked keys and maximum z_max (0 after the max shift)
ENTMAX_HD EntmaxTau entmax_tau_init(float alpha, float z_max, int n) {
    EntmaxTau t;
    t.lo = z_max - 1.0f;
    // n^(1-alpha) = 2^((1-alpha) log2 n); n = 1 gives hi = lo = z_max - 1 and p = 1 on the single key
    t.hi = z_max - exp2f((1.0f - alpha) * log2f((float)(n < 1 ? 1 : n)));
    t.tau = 0.5f * (t.lo + t.hi);
    return t;
}

// one update from the sums evaluated at t->tau
ENTMAX_HD void entmax_tau_step(int kind, float a, EntmaxTau* t, EntmaxSums s) {
    float f = s.s0 - 1.0f;
    if (f > 0.0f) t->lo = t->tau;
    else if (f < 0.0f) t->hi = t->tau;
    else return; // exact root
    float fp = -a * s.s1;
    float fpp = kind == ENTMAX_SPARSEMAX ? 0.0f : a * (a - 1.0f) * s.s2;
    float cand = t->tau - 2.0f * f * fp / (2.0f * fp * fp - f * fpp);
    // NaN/inf candidates fail both comparisons and fall back to bisection
    if (cand > t->lo - ENTMAX_BRACKET_EPS && cand < t->hi + ENTMAX_BRACKET_EPS) t->tau = cand;
    else t->tau = 0.5f * (t->lo + t->hi);
}

// ----------------------------------------------------------------------------------------------------------
// whole rows (the CPU reference and simple kernels). Scores s are unscaled by (alpha-1), -INFINITY = masked.

// the row maximum and the number of unmasked entries
ENTMAX_HD float entmax_row_max(const float* s, int n, int* n_valid) {
    float m = -INFINITY;
    int cnt = 0;
    for (int j = 0; j < n; j++) {
        if (s[j] > -INFINITY) { cnt++; if (s[j] > m) m = s[j]; }
    }
    *n_valid = cnt;
    return m;
}

ENTMAX_HD EntmaxSums entmax_row_sums(const Entmax* e, const float* s, int n, float s_max, float tau) {
    EntmaxSums sums = entmax_sums_zero();
    for (int j = 0; j < n; j++) entmax_sums_add(e->kind, e->a, e->am1 * (s[j] - s_max) - tau, &sums);
    return sums;
}

// Solve for tau (in the shifted z-space, so tau in [-1, 0)).
// Fixed-iteration form (what the kernels do): tol <= 0, exactly `max_iter` updates.
// Tolerance form: stop as soon as |sum p - 1| <= tol or the bracket has shrunk to float resolution, at most
// max_iter updates. *iters (may be NULL) receives the number of updates made.
ENTMAX_HD float entmax_row_tau(const Entmax* e, const float* s, int n, float s_max, int n_valid,
                               int max_iter, float tol, int* iters) {
    EntmaxTau t = entmax_tau_init(e->alpha, 0.0f, n_valid);
    int it = 0;
    for (; it < max_iter; it++) {
        EntmaxSums sums = entmax_row_sums(e, s, n, s_max, t.tau);
        if (tol > 0.0f) {
            float f = sums.s0 - 1.0f;
            if (fabsf(f) <= tol || t.hi - t.lo <= 1.2e-7f * fmaxf(1.0f, fabsf(t.tau))) break;
        }
        entmax_tau_step(e->kind, e->a, &t, sums);
    }
    if (iters) *iters = it;
    return t.tau;
}

// tolerance and iteration cap used by the CPU reference: converged to fp32 resolution
#define ENTMAX_REF_TOL 1e-7f
#define ENTMAX_REF_MAX_ITER 100

// p = entmax_alpha(s) over one row. Masked entries get p = 0. A row with no unmasked entry gets all zeros.
// Returns tau (shifted z-space; for softmax the log-sum-exp of the row, unused by callers).
ENTMAX_HD float entmax_row_forward(const Entmax* e, const float* s, float* p, int n) {
    int n_valid;
    float s_max = entmax_row_max(s, n, &n_valid);
    if (n_valid == 0) { for (int j = 0; j < n; j++) p[j] = 0.0f; return 0.0f; }
    if (e->kind == ENTMAX_SOFTMAX) {
        float sum = 0.0f;
        for (int j = 0; j < n; j++) { p[j] = s[j] > -INFINITY ? expf(s[j] - s_max) : 0.0f; sum += p[j]; }
        float inv = 1.0f / sum;
        for (int j = 0; j < n; j++) p[j] *= inv;
        return s_max + logf(sum);
    }
    float tau = entmax_row_tau(e, s, n, s_max, n_valid, ENTMAX_REF_MAX_ITER, ENTMAX_REF_TOL, (int*)0);
    for (int j = 0; j < n; j++) p[j] = entmax_p(e->kind, e->a, e->am1 * (s[j] - s_max) - tau);
    return tau;
}

// u = p^(2-alpha) from the probabilities themselves (softmax: u = p)
ENTMAX_HD float entmax_u_from_p(const Entmax* e, float p) {
    if (!(p > 0.0f)) return 0.0f;
    if (e->kind == ENTMAX_SOFTMAX) return p;
    if (e->kind == ENTMAX_15) return sqrtf(p);
    if (e->kind == ENTMAX_SPARSEMAX) return 1.0f;
    return entmax_pow(p, 2.0f - e->alpha);
}

// ds = u * (dp - sum(u dp)/sum(u)); ds is overwritten (accumulate = 0) or added to (accumulate = 1)
ENTMAX_HD void entmax_row_backward(const Entmax* e, const float* p, const float* dp, float* ds, int n, int accumulate) {
    float su = 0.0f, sudp = 0.0f;
    for (int j = 0; j < n; j++) {
        float u = entmax_u_from_p(e, p[j]);
        su += u;
        sudp += u * dp[j];
    }
    float delta = su > 0.0f ? sudp / su : 0.0f;
    for (int j = 0; j < n; j++) {
        float g = entmax_u_from_p(e, p[j]) * (dp[j] - delta);
        ds[j] = accumulate ? ds[j] + g : g;
    }
}
