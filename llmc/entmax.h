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
 One change to Alg. 1 (see entmax_tau_step): from the left, where Halley's step would exceed twice Newton's,
 we take Newton's. It only triggers for alpha > 1.5 and shortens the tail of the iteration count there.

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

// The fewest theta passes the GPU solver (attn_tau_kernel) makes by default: after them it goes on while a row has
// |f| > tol_cont, which is safe from any pass (the smallest |f(tau_k)| still followed by |f(tau_k+1)| > 1e-3 is
// 0.15 at alpha = 1.5 and >= 0.24 below it, against tol_cont = 0.04; 0.023 at alpha = 1.75 and 0.0093 at alpha = 2,
// against 0.0035; dev/entmax_iterations.cpp stop mode, doc/entmax-iterations.md). So the minimum only needs to
// cover the passes most rows take from the kernel's start (entmax_lower_bound_step, entmax15_tau_guess):
//   alpha = 1.5: 2 (rows of N(0, s^2) scores need at most 2 updates, for every s from 0.02 to 8);
//   any other alpha: 3 (most rows need 2-3 updates; the flattest ones continue to their 4-6).
ENTMAX_HD int entmax_default_niter(float alpha) {
    return entmax_kind_of(alpha) == ENTMAX_15 ? 2 : 3;
}
// tol_cont itself: the smallest |f(tau_k)| followed by |f(tau_k+1)| > 1e-3, over N(0, sigma^2) score rows, sigma
// 0.02..8, n 2..4096, and the k where the kernel may stop (k >= niter - 1), is 0.2 for alpha <= 1.5, 0.030 for 1.75,
// 0.0086 for 2 (`build/entmax_iterations stop`); tol_cont stays well under that, and the output pass check
// (|sum p - 1| <= 1e-3, else the row is solved again) is the safety net
ENTMAX_HD float entmax_tol_cont(float alpha) { return alpha <= 1.5f ? 0.04f : 0.0035f; }

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

// log2 and exp2 of the powers x^e = 2^(e log2 x), x > 0. The host (the CPU reference) uses the accurate library
// functions. The device uses the hardware approximations lg2.approx / ex2.approx (one MUFU instruction each,
// relative error ~2^-22; the power then has a relative error of ~e * 1e-7, <= 1e-5 for e <= 100, i.e. alpha >=
// 1.01): the accurate log2f alone is ~25 instructions, and the powers were most of the general-alpha kernels' time.
ENTMAX_HD float entmax_log2(float x) {
#ifdef __CUDA_ARCH__
    float r;
    asm("lg2.approx.f32 %0, %1;" : "=f"(r) : "f"(x));
    return r;
#else
    return log2f(x);
#endif
}
ENTMAX_HD float entmax_exp2(float y) {
#ifdef __CUDA_ARCH__
    float r;
    asm("ex2.approx.f32 %0, %1;" : "=f"(r) : "f"(y));
    return r;
#else
    return exp2f(y);
#endif
}

// x^e for x > 0
ENTMAX_HD float entmax_pow(float x, float e) { return entmax_exp2(e * entmax_log2(x)); }

// p = [x]_+^a
ENTMAX_HD float entmax_p(int kind, float a, float x) {
    if (!(x > 0.0f)) return 0.0f;
    if (kind == ENTMAX_15) return x * x;
    if (kind == ENTMAX_SPARSEMAX) return x;
    return entmax_pow(x, a - 1.0f) * x; // = u x, as entmax_pu computes it
}

// u = p^(2-alpha) = [x]_+^(a-1): the weight of the backward pass
ENTMAX_HD float entmax_u(int kind, float a, float x) {
    if (!(x > 0.0f)) return 0.0f;
    if (kind == ENTMAX_15) return x;
    if (kind == ENTMAX_SPARSEMAX) return 1.0f;
    return entmax_pow(x, a - 1.0f);
}

// p and u of one element together, equal to entmax_p and entmax_u (off the support a zero may come out as -0)
// with one comparison instead of two for alpha = 1.5 and 2: u = max(x, 0), p = u * u resp. p = max(x, 0),
// u = [x > 0]; fmaxf also maps NaN to 0. Other alpha: one power instead of two, p = u x
ENTMAX_HD void entmax_pu(int kind, float a, float x, float* p, float* u) {
    if (kind == ENTMAX_15) {
        float r = fmaxf(x, 0.0f);
        *u = r; *p = r * r;
    } else if (kind == ENTMAX_SPARSEMAX) {
        float r = fmaxf(x, 0.0f);
        *p = r; *u = r > 0.0f ? 1.0f : 0.0f;
    } else {
        // one power: p = u x (as entmax_p)
        const float r = x > 0.0f ? entmax_pow(x, a - 1.0f) : 0.0f;
        *u = r; *p = r * fmaxf(x, 0.0f);
    }
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
#define ENTMAX_X2_FLOOR_LOG2 (-20.0f)

// the three terms of one element with x > 0: x^a, x^(a-1), x^(a-2) (the last one floored, see above)
ENTMAX_HD void entmax_terms(int kind, float a, float x, float* t0, float* t1, float* t2) {
    if (kind == ENTMAX_15) {
        *t0 = x * x; *t1 = x; *t2 = 1.0f;
    } else if (kind == ENTMAX_SPARSEMAX) {
        *t0 = x; *t1 = 1.0f; *t2 = 0.0f; // a(a-1) = 0: f'' vanishes
    } else {
        // one log2 for the three powers; the floor applies to every a (for a >= 2 it only raises x^(a-2) of an
        // element with x < 2^-20 to 2^(-20 (a-2)), a negligible change of f'')
        const float lx = entmax_log2(x);
        const float u = entmax_exp2((a - 1.0f) * lx);
        *t0 = u * x;
        *t1 = u;
        *t2 = entmax_exp2((a - 2.0f) * fmaxf(lx, ENTMAX_X2_FLOOR_LOG2));
    }
}

ENTMAX_HD void entmax_sums_add(int kind, float a, float x, EntmaxSums* s) {
    if (!(x > 0.0f)) return;
    float t0, t1, t2;
    entmax_terms(kind, a, x, &t0, &t1, &t2);
    s->s0 += t0; s->s1 += t1; s->s2 += t2;
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

// A better first tau than the bracket midpoint for flat rows (alpha = 1.5 only), from the mean mu and variance v
// of the row's z (max-shifted, so mu <= 0). Flat rows (many keys near the max, e.g. every row at initialisation)
// have tau* near the top of the bracket, and Halley from the midpoint needs 4-5 updates there instead of 2-3.
// Model z ~ N(mu, v): f(tau) = n E[(z - tau)_+^2] - 1 = n v G(t) - 1 with t = (mu - tau) / sqrt(v) and
//   G(t) = E[(Z + t)_+^2] = (t^2 + 1) Phi(t) + t phi(t),   G'(t) = 2 (t Phi(t) + phi(t))   (Z ~ N(0, 1)),
// so tau = mu - t sqrt(v) with G(t) = 1 / (n v), solved by Newton on log G from t = sqrt(1 / (n v)), which lies
// right of the root (G(t) >= t^2 by Jensen); 4 steps reach ~1e-6 over the range used. (Not in AdaSplash.)
// Returns 0 (keep the midpoint) where the model is not trusted or would not save a pass: rows that are not flat
// (n v > 128), fewer than 32 keys predicted in the support (rows of N(0, 1) scores, the benchmark's, need 3 passes
// from either start), a maximum more than sqrt(2 ln n) + 3 deviations above the mean (a few keys stand out), or a
// root at or above the bracket's top end (the row is not Gaussian, see below).
// The result is at most hi and only a starting point: the caller raises it to the bracket's lo if below, and the
// safeguarded updates do the rest. Measured: doc/entmax-iterations.md ("Stopping rule").
#define ENTMAX_GUESS_FLAT 128.0f
#define ENTMAX_GUESS_MIN_SUPPORT 32.0f
// The cheap part of the test, on n and v alone: n v <= 128 and n v <= 2 (n / 64)^1.5. The second bound is the
// n v at which the model predicts 32 keys in the support, within 15% for n = 128..1024 (the kernel uses it to stop
// collecting the moments early, without the cost of solving for t)
ENTMAX_HD int entmax15_guess_may_apply(int n, float v) {
    const float nv = (float)n * v, r = (float)n * (1.0f / 64.0f);
    return (float)n >= ENTMAX_GUESS_MIN_SUPPORT && nv <= ENTMAX_GUESS_FLAT && nv <= 2.0f * r * sqrtf(r); // NaN: 0
}
// mu and v for entmax15_tau_guess from fp32 sums of `count` raw scores acc and their squares: z = c acc shifted by
// the row max acc_max (the kernels' max pass, and the host tools that model it)
ENTMAX_HD void entmax_moments(float sum, float sumsq, float count, float c, float acc_max, float* mu, float* v) {
    const float mean = sum / count;
    *mu = c * (mean - acc_max);
    *v = c * c * fmaxf(sumsq / count - mean * mean, 0.0f);
}
// hi: the top end of the row's bracket (entmax_tau_init's hi, -n^(-1/2))
ENTMAX_HD int entmax15_tau_guess(float mu, float v, int n, float hi, float* tau) {
    const float nv = (float)n * v;
    if (!entmax15_guess_may_apply(n, v)) return 0;
    if (nv < 1e-12f) { *tau = fminf(mu - 1.0f / sqrtf((float)n), hi); return 1; } // all z equal: n (mu - tau)^2 = 1
    const float sd = sqrtf(v);
    if (-mu > sd * (sqrtf(2.0f * logf((float)n)) + 3.0f)) return 0;
    const float target = 1.0f / nv, log_target = logf(target);
    float t = sqrtf(target), cdf = 1.0f;
    for (int i = 0; i < 4; i++) {
        cdf = 0.5f * erfcf(-t * 0.70710678f);
        const float pdf = 0.39894228f * expf(-0.5f * t * t);
        const float g = (t * t + 1.0f) * cdf + t * pdf, gp = 2.0f * (t * cdf + pdf);
        t -= (logf(g) - log_target) * g / gp;
    }
    cdf = 0.5f * erfcf(-t * 0.70710678f);
    if (!((float)n * cdf >= ENTMAX_GUESS_MIN_SUPPORT)) return 0;
    const float g = mu - t * sd;
    // a root at or above the bracket's top end (reached only by rows of equal scores, handled above) means
    // the row is not the Gaussian the model assumes (e.g. a cluster of keys near the max above a low bulk, common in
    // a trained model): clamped to the top, such a start needed 4-6 updates from the right where the lower bound
    // needs 2-3 (measured on GPT-2 rows: doc/entmax-iterations.md, "Rows of a model in training")
    if (!(g < hi)) return 0;
    *tau = g;
    return 1;
}

// A lower bound for tau from a few of the row's values, for rows the model above does not cover (peaked rows,
// where tau* lies well inside the bracket). The equation over any subset of the row's keys has fewer terms, so
// its f is smaller and its root lies at or left of tau*; and Newton's method from the left end of the bracket
// (f > 0 there) stays left of that root, since f is convex and decreasing. The kernels use the maxima of the 16
// residue classes of the key index mod 16 (per thread and row, four registers of the max pass: no extra work per
// score): in peaked rows these hold most of the support, and a start at the bound then needs 2 Halley passes
// where the bracket midpoint needed 3 (measured: doc/entmax-iterations.md). (Not in AdaSplash.)
// One Newton step at tau from the subset's sums at tau; ENTMAX_LB_STEPS of them from tau = bracket lo.
#define ENTMAX_LB_CLASSES 16
#define ENTMAX_LB_STEPS 4
ENTMAX_HD float entmax_lower_bound_step(float a, float tau, EntmaxSums s) {
    const float f = s.s0 - 1.0f; // f' = -a s1
    return f > 0.0f && s.s1 > 0.0f ? tau + f / (a * s.s1) : tau;
}

// alpha = 1.5: f at tau + d from the sums at tau. On a fixed support f is the quadratic sum_j (x_j - d)^2 - 1, so
//   f(tau + d) = f - 2 d s1 + d^2 s2        (s1 = sum x, s2 = the support's size)
// is exact as long as no entry crosses the threshold between tau and tau + d (entries that leave the support as
// tau grows make the true f lower, by at most d^2 each; entries that join as tau falls make it higher). The GPU
// solver uses it after an update to see whether the theta it now holds is already good enough to stop
// (entmax_may_stop), without a pass that evaluates f there.
ENTMAX_HD float entmax15_f_after(float f, EntmaxSums s, float d) { return fmaf(d, fmaf(d, s.s2, -2.0f * s.s1), f); }

// The stopping test of the GPU solver (attn_tau_kernel) for one row, after the update tau -> tau + d that the sums
// s at tau (f = s.s0 - 1) gave: stop if |f| <= tol_cont (the next |f| is then <= 1e-3, measured:
// entmax_default_niter), or, at alpha = 1.5, if the row is near (|f| <= ENTMAX15_STOP_NEAR) and the quadratic
// model puts |f(tau + d)| at most ENTMAX15_STOP_PRED (slack for the entries that cross). Rows of N(0, s^2) scores
// with s ~ 0.4 often end the second pass at |f| ~ 0.05-0.12 with |f(tau + d)| ~ 1e-5: the model saves them a third
// pass (the whole CTA's; measured with dev/entmax_iterations.cpp stop, doc/entmax-iterations.md). The output pass
// checks |sum p - 1| <= 1e-3 in any case.
#define ENTMAX15_STOP_NEAR 0.15f
#define ENTMAX15_STOP_PRED 2.5e-4f
ENTMAX_HD int entmax_may_stop(int kind, float f, EntmaxSums s, float d, float tol_cont) {
    if (fabsf(f) <= tol_cont) return 1;
    return kind == ENTMAX_15 && fabsf(f) <= ENTMAX15_STOP_NEAR && fabsf(entmax15_f_after(f, s, d)) <= ENTMAX15_STOP_PRED;
}

// one update from the sums evaluated at t->tau
ENTMAX_HD void entmax_tau_step(int kind, float a, EntmaxTau* t, EntmaxSums s) {
    float f = s.s0 - 1.0f;
    if (f > 0.0f) t->lo = t->tau;
    else if (f < 0.0f) t->hi = t->tau;
    else return; // exact root
    float fp = -a * s.s1;
    float fpp = kind == ENTMAX_SPARSEMAX ? 0.0f : a * (a - 1.0f) * s.s2;
    // Halley's step is Newton's times 1/(1 - f f''/(2 f'^2)), which blows up from the left (f > 0) as
    // f f'' -> 2 f'^2. For alpha > 1.5 one entry just inside the support makes f'' huge (x^(a-2), a < 2) although
    // it leaves the support after a tiny step; the candidate then overshoots far to the right, or flips sign and
    // falls back to bisection (measured: up to 3 wasted updates at alpha = 1.9). So where the factor would exceed 2
    // we take the Newton step: f is convex, so Newton from the left never passes the root. (Not in AdaSplash.)
    float cand = f > 0.0f && f * fpp > fp * fp ? t->tau - f / fp
                                               : t->tau - 2.0f * f * fp / (2.0f * fp * fp - f * fpp);
    // NaN/inf candidates fail both comparisons and fall back to bisection
    if (cand > t->lo - ENTMAX_BRACKET_EPS && cand < t->hi + ENTMAX_BRACKET_EPS) t->tau = cand;
    else t->tau = 0.5f * (t->lo + t->hi);
}

// ----------------------------------------------------------------------------------------------------------
// whole rows (the CPU reference and simple kernels). Scores s are unscaled by (alpha-1), -INFINITY = masked.

// Row accumulator. A plain sequential float sum of n terms has up to ~n * 2^-24 relative rounding (measured
// |sum p - 1| = 5e-5 for alpha = 1.1, n = 65536 N(0,1) scores), more than the accuracy we solve tau to. So the
// row functions accumulate in double on the host (cheap there, and immune to -ffast-math, which would delete a
// Kahan compensation) and with a Kahan-compensated float sum on the device (nvcc never reassociates float adds,
// not even with -use_fast_math). Both are accurate to ~1e-7 for any n. Local use only: the layout differs
// between the host and the device compilation passes, so never pass an EntmaxAcc between them.
#ifdef __CUDA_ARCH__
typedef struct { float sum; float c; } EntmaxAcc;
ENTMAX_HD EntmaxAcc entmax_acc_zero() { EntmaxAcc k; k.sum = 0.0f; k.c = 0.0f; return k; }
ENTMAX_HD void entmax_acc_add(EntmaxAcc* k, float v) {
    float y = v - k->c;
    float t = k->sum + y;
    k->c = (t - k->sum) - y;
    k->sum = t;
}
ENTMAX_HD float entmax_acc_get(EntmaxAcc k) { return k.sum; }
#else
typedef struct { double sum; } EntmaxAcc;
ENTMAX_HD EntmaxAcc entmax_acc_zero() { EntmaxAcc k; k.sum = 0.0; return k; }
ENTMAX_HD void entmax_acc_add(EntmaxAcc* k, float v) { k->sum += (double)v; }
ENTMAX_HD float entmax_acc_get(EntmaxAcc k) { return (float)k.sum; }
#endif

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

// x = am1 * (s_j - s_max) - tau for one row entry, and the factor that corrects x^a for the fp32 rounding of x.
// Why: for alpha near 1, a = 1/(alpha-1) is large and p = x^a turns the 2^-24 relative rounding of x (|x| ~ 1)
// into a * 2^-24 relative error on p: up to 1.5e-5 absolute at alpha = 1.001. The rounding error is recovered
// exactly with one fma (tau + x is exact by Sterbenz when x >= |tau|/2, the only entries that matter when a is
// large), and x^a is multiplied by 1 + a * x_lo / x (first order; |a x_lo / x| <= a * 6e-8). Kind GENERAL
// only (alpha = 1.5 and 2 have a <= 2, where it would change nothing). *corr = 1 otherwise.
ENTMAX_HD float entmax_row_x(const Entmax* e, float s_j, float s_max, float tau, float* corr) {
    float d = s_j - s_max;
    float x = e->am1 * d - tau;
    *corr = 1.0f;
    if (e->kind == ENTMAX_GENERAL && x >= -0.5f * tau) {
        float x_lo = fmaf(e->am1, d, -(tau + x)); // exact (am1 d - tau) - x, to fp32 relative precision
        *corr = 1.0f + e->a * (x_lo / x);
    }
    return x;
}

// the three sums at tau over a whole row, accumulated with EntmaxAcc (the fp32 terms of entmax_terms; the
// first one, p itself, with the correction of entmax_row_x so that it is the very p that entmax_row_forward outputs)
ENTMAX_HD EntmaxSums entmax_row_sums(const Entmax* e, const float* s, int n, float s_max, float tau) {
    EntmaxAcc a0 = entmax_acc_zero(), a1 = entmax_acc_zero(), a2 = entmax_acc_zero();
    for (int j = 0; j < n; j++) {
        float corr;
        float x = entmax_row_x(e, s[j], s_max, tau, &corr);
        if (!(x > 0.0f)) continue;
        float t0, t1, t2;
        entmax_terms(e->kind, e->a, x, &t0, &t1, &t2);
        entmax_acc_add(&a0, t0 * corr); entmax_acc_add(&a1, t1); entmax_acc_add(&a2, t2);
    }
    EntmaxSums sums;
    sums.s0 = entmax_acc_get(a0); sums.s1 = entmax_acc_get(a1); sums.s2 = entmax_acc_get(a2);
    return sums;
}

// the tolerance form stops once the bracket is this narrow relative to |tau| (2 float ulps)
#define ENTMAX_TAU_RES 2.4e-7f

// Solve for tau (in the shifted z-space, so tau in [-1, 0)).
// Fixed-iteration form (what the kernels do): tol <= 0, exactly `max_iter` updates.
// Tolerance form (tol > 0): at most max_iter updates; stop as soon as
//   |sum p - 1| <= tol, or
//   an update leaves tau unchanged (a fixed point: every later update would see the very same sums), or
//   an update returns to the tau evaluated just before (a 2-cycle between two neighbouring floats whose f have
//   opposite signs: the root is between them, to fp32 resolution), or
//   the bracket has shrunk to ENTMAX_TAU_RES * |tau| (tau is then within 2 ulps of the root of the fp32 f).
// Why not |f| <= tol alone: f moves by |f'| * ulp(tau) ~ a * 6e-8 per float step of tau (a = 1/(alpha-1)), so
// for alpha = 1.01 no float tau has |f| <= 1e-7 at all, and Halley (which approaches from one side, leaving
// the far end of the bracket where it started) used to spin to the 100-iteration cap. Rows whose entries are
// all equal (f is then n times one rounded term, so its rounding does not average out) made it cycle between
// two floats 3 ulps apart, also to the cap. The extra rules stop it as soon as tau is as good as fp32 allows:
// at most ~10 updates, mean 1.5-3, on n <= 8192, score scales 1e-3..1e3, 1 < alpha <= 2 (test/test_entmax.cpp).
// *iters (may be NULL) receives the number of updates made.
ENTMAX_HD float entmax_row_tau(const Entmax* e, const float* s, int n, float s_max, int n_valid,
                               int max_iter, float tol, int* iters) {
    EntmaxTau t = entmax_tau_init(e->alpha, 0.0f, n_valid);
    int it = 0;
    float prev2 = 0.0f; // the tau evaluated before the current one (tau < 0 always, so 0 never matches)
    while (it < max_iter) {
        EntmaxSums sums = entmax_row_sums(e, s, n, s_max, t.tau);
        if (tol > 0.0f && fabsf(sums.s0 - 1.0f) <= tol) break;
        float prev = t.tau;
        entmax_tau_step(e->kind, e->a, &t, sums);
        it++;
        if (tol > 0.0f && (t.tau == prev || t.tau == prev2 ||
                           t.hi - t.lo <= ENTMAX_TAU_RES * fmaxf(fabsf(t.lo), fabsf(t.hi)))) break;
        prev2 = prev;
    }
    if (iters) *iters = it;
    return t.tau;
}

// tolerance and iteration cap used by the CPU reference: converged to fp32 resolution
#define ENTMAX_REF_TOL 1e-7f
#define ENTMAX_REF_MAX_ITER 100

// p = entmax_alpha(s) over one row. Masked entries get p = 0. A row with no unmasked entry gets all zeros.
// Returns tau (shifted z-space; for softmax the log-sum-exp of the row, unused by callers).
// The output is divided by its (accurately accumulated) sum, as the entmax library's entmax_bisect does with
// ensure_sum_one. Why: tau is a float, and one float step of tau moves sum p by ~a * 6e-8, so for alpha close
// to 1 (a = 1/(alpha-1) large) even the best float tau misses sum p = 1 by up to ~a * 3e-8 (3e-5 at
// alpha = 1.001). That error is a common factor (1 + a dtau/x) on every p with x near its row maximum, so the
// division removes it; for alpha >= 1.1 it changes p by ~1e-7 relative. The returned tau is the solver's.
ENTMAX_HD float entmax_row_forward(const Entmax* e, const float* s, float* p, int n) {
    int n_valid;
    float s_max = entmax_row_max(s, n, &n_valid);
    if (n_valid == 0) { for (int j = 0; j < n; j++) p[j] = 0.0f; return 0.0f; }
    EntmaxAcc acc = entmax_acc_zero();
    float ret;
    if (e->kind == ENTMAX_SOFTMAX) {
        for (int j = 0; j < n; j++) { p[j] = s[j] > -INFINITY ? expf(s[j] - s_max) : 0.0f; entmax_acc_add(&acc, p[j]); }
        ret = s_max + logf(entmax_acc_get(acc));
    } else {
        ret = entmax_row_tau(e, s, n, s_max, n_valid, ENTMAX_REF_MAX_ITER, ENTMAX_REF_TOL, (int*)0);
        for (int j = 0; j < n; j++) {
            float corr;
            float x = entmax_row_x(e, s[j], s_max, ret, &corr);
            p[j] = entmax_p(e->kind, e->a, x) * corr;
            entmax_acc_add(&acc, p[j]);
        }
    }
    float inv = 1.0f / entmax_acc_get(acc); // >= 1 entry has p > 0: the max has x = -tau >= n^(1-alpha) > 0
    for (int j = 0; j < n; j++) p[j] *= inv;
    return ret;
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
    EntmaxAcc su = entmax_acc_zero(), sudp = entmax_acc_zero();
    for (int j = 0; j < n; j++) {
        float u = entmax_u_from_p(e, p[j]);
        entmax_acc_add(&su, u);
        entmax_acc_add(&sudp, u * dp[j]);
    }
    float su_f = entmax_acc_get(su);
    float delta = su_f > 0.0f ? entmax_acc_get(sudp) / su_f : 0.0f;
    for (int j = 0; j < n; j++) {
        float g = entmax_u_from_p(e, p[j]) * (dp[j] - delta);
        ds[j] = accumulate ? ds[j] + g : g;
    }
}
