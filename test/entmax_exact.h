/*
 entmax_exact.h: an INDEPENDENT float64 reference for alpha-entmax, used only by tests and dev tools.
 It shares no code with llmc/entmax.h on purpose: it is what llmc/entmax.h is checked against.

 Conventions are the same as llmc/entmax.h: scores s (-inf = masked), z = (alpha-1)(s - s_max), so z_max = 0,
 p_j = [z_j - tau]_+^(1/(alpha-1)), sum p = 1; alpha = 1 is softmax. Everything here is double.

   alpha = 1    softmax
   alpha = 1.5  sort + closed form on sorted prefixes (the smaller root of sum_{j<=k} (z_j - tau)^2 = 1)
   alpha = 2    sort + closed form (sparsemax: tau = (sum_{j<=k} z_j - 1) / k)
   otherwise    bisection on tau to a bracket of 1e-13, then Newton polish inside the final bracket
 `exact_solve_bisect` is also usable for 1.5 and 2, as a cross-check of the sorted forms.

 The alpha passed in should be the float value the fp32 code sees, converted to double ((double)1.01f, not 1.01),
 so that both sides solve the same problem: then am1 = alpha - 1 is the same number in fp32 and in double.
*/
#pragma once

#include <math.h>
#include <stdint.h>
#include <algorithm>
#include <functional>
#include <random>
#include <vector>

// random numbers for the tests and tools: mt19937_64 is fully specified by the C++ standard and Box-Muller is
// written out here, so a seed gives the same rows on any platform (std::normal_distribution would not)
struct TestRng {
    std::mt19937_64 g;
    explicit TestRng(uint64_t seed) : g(seed) {}
    double uni() { return (double)(g() >> 11) * (1.0 / 9007199254740992.0); } // [0, 1)
    double normal() {
        double u1 = uni(), u2 = uni();
        return sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
    }
    int range(int lo, int hi) { return lo + (int)(uni() * (double)(hi - lo + 1)); } // [lo, hi]
    double log_uniform(double lo, double hi) { return exp(log(lo) + uni() * (log(hi) - log(lo))); }
};

// result of one exact solve over a row of length n
struct ExactRow {
    double alpha = 1.0;
    double am1 = 0.0;       // alpha - 1
    double a = 0.0;         // 1/(alpha-1)
    double s_max = 0.0;     // row maximum over unmasked entries
    double tau = 0.0;       // threshold in shifted z-space (softmax: log sum exp(s - s_max))
    int n_valid = 0;        // unmasked entries
    int support = 0;        // entries with p > 0
    std::vector<double> z;  // (alpha-1)(s - s_max); -inf for masked entries (softmax: s - s_max)
    std::vector<double> p;  // probabilities
};

// x^e for x > 0 (x <= 0 gives 0)
static inline double exact_pos_pow(double x, double e) { return x > 0.0 ? pow(x, e) : 0.0; }

// f(tau) = sum [z - tau]_+^a - 1 over finite z
static inline double exact_f(const std::vector<double>& z, double a, double tau) {
    double acc = 0.0;
    for (double zj : z) if (zj > tau) acc += pow(zj - tau, a);
    return acc - 1.0;
}

// fill alpha/am1/a/s_max/n_valid/z of r from the scores; returns false if every entry is masked
static inline bool exact_prepare(ExactRow& r, const double* s, int n, double alpha) {
    r.alpha = alpha;
    r.am1 = alpha - 1.0;
    r.a = alpha > 1.0 ? 1.0 / r.am1 : 0.0;
    r.n_valid = 0;
    r.s_max = -INFINITY;
    for (int j = 0; j < n; j++) if (s[j] > -INFINITY) { r.n_valid++; r.s_max = std::max(r.s_max, s[j]); }
    r.z.assign(n, -INFINITY);
    r.p.assign(n, 0.0);
    r.support = 0;
    r.tau = 0.0;
    if (r.n_valid == 0) return false;
    double scale = alpha > 1.0 ? r.am1 : 1.0;
    for (int j = 0; j < n; j++) if (s[j] > -INFINITY) r.z[j] = scale * (s[j] - r.s_max);
    return true;
}

// p from tau (alpha > 1)
static inline void exact_finish(ExactRow& r) {
    r.support = 0;
    for (size_t j = 0; j < r.z.size(); j++) {
        double x = r.z[j] - r.tau;
        r.p[j] = exact_pos_pow(x, r.a);
        if (r.p[j] > 0.0) r.support++;
    }
}

// finite z values sorted descending
static inline std::vector<double> exact_sorted_desc(const std::vector<double>& z) {
    std::vector<double> v;
    v.reserve(z.size());
    for (double zj : z) if (zj > -INFINITY) v.push_back(zj);
    std::sort(v.begin(), v.end(), std::greater<double>());
    return v;
}

// alpha = 1.5, z-space with a = 2. For a prefix of k largest entries with mean m and centered sum of squares q,
// sum_{j<=k} (z_j - tau)^2 = q + k (m - tau)^2 = 1 has the smaller root tau_k = m - sqrt((1 - q)/k).
// The support is the largest k with tau_k <= z_(k) (the condition holds exactly for k = 1..K).
static inline double exact_tau_entmax15(const std::vector<double>& z) {
    std::vector<double> v = exact_sorted_desc(z);
    double mean = 0.0, q = 0.0, tau = v[0] - 1.0;
    for (size_t k = 1; k <= v.size(); k++) {
        double d = v[k - 1] - mean; // Welford: no cancellation between sum z^2 and k m^2
        mean += d / (double)k;
        q += d * (v[k - 1] - mean);
        double tk = mean - sqrt(std::max((1.0 - q) / (double)k, 0.0));
        if (tk <= v[k - 1]) tau = tk; else break;
    }
    return tau;
}

// alpha = 2 (sparsemax): support = largest k with 1 + k z_(k) > sum_{j<=k} z_(j); tau = (sum_{j<=K} z_(j) - 1)/K
static inline double exact_tau_sparsemax(const std::vector<double>& z) {
    std::vector<double> v = exact_sorted_desc(z);
    double c = 0.0, tau = v[0] - 1.0;
    for (size_t k = 1; k <= v.size(); k++) {
        c += v[k - 1];
        if (1.0 + (double)k * v[k - 1] > c) tau = (c - 1.0) / (double)k; else break;
    }
    return tau;
}

// Any 1 < alpha <= 2: bisection on [z_max - 1, z_max - n^(1-alpha)] = [-1, -n^(1-alpha)] (f(lo) >= 0 >= f(hi))
// down to a bracket of 1e-13, then up to 4 Newton steps kept only while they stay inside the final bracket.
// The polish matters for finite differences at small score scales, where tau is ~1e-3 and 1e-13 is coarse.
// Entries with z <= lo can never be in the support again, so they are dropped whenever lo moves (speed only).
static inline double exact_tau_bisect(const std::vector<double>& z, double a, int n_valid, double alpha) {
    double lo = -1.0, hi = -pow((double)n_valid, 1.0 - alpha);
    if (hi < lo) hi = lo;
    std::vector<double> act;
    for (double zj : z) if (zj > lo) act.push_back(zj);
    while (hi - lo > 1e-13) {
        double mid = 0.5 * (lo + hi);
        if (exact_f(act, a, mid) >= 0.0) {
            lo = mid;
            size_t k = 0;
            for (double zj : act) if (zj > lo) act[k++] = zj;
            act.resize(k);
        } else {
            hi = mid;
        }
    }
    double tau = 0.5 * (lo + hi);
    for (int it = 0; it < 4; it++) {
        double f = 0.0, fp = 0.0;
        for (double zj : act) if (zj > tau) { double x = zj - tau; double u = pow(x, a - 1.0); f += u * x; fp -= a * u; }
        f -= 1.0;
        if (f == 0.0 || fp == 0.0) break;
        double t2 = tau - f / fp;
        if (!(t2 >= lo && t2 <= hi) || t2 == tau) break;
        tau = t2;
    }
    return tau;
}

// method: 0 = the default (sorted form for 1.5 and 2, bisection otherwise), 1 = force bisection
static inline ExactRow exact_entmax(const double* s, int n, double alpha, int method = 0) {
    ExactRow r;
    if (!exact_prepare(r, s, n, alpha)) return r;
    if (alpha == 1.0) { // softmax
        double sum = 0.0;
        for (int j = 0; j < n; j++) { r.p[j] = r.z[j] > -INFINITY ? exp(r.z[j]) : 0.0; sum += r.p[j]; }
        for (int j = 0; j < n; j++) r.p[j] /= sum;
        r.tau = log(sum);
        r.support = r.n_valid;
        return r;
    }
    if (method == 0 && alpha == 1.5) r.tau = exact_tau_entmax15(r.z);
    else if (method == 0 && alpha == 2.0) r.tau = exact_tau_sparsemax(r.z);
    else r.tau = exact_tau_bisect(r.z, r.a, r.n_valid, alpha);
    exact_finish(r);
    return r;
}

static inline ExactRow exact_entmax_f(const float* s, int n, double alpha, int method = 0) {
    std::vector<double> d(s, s + n);
    return exact_entmax(d.data(), n, alpha, method);
}

// analytic vector-Jacobian product ds = J^T dp, J = dp/ds (unscaled scores):
// u_j = x_j^(a-1) on the support (softmax: u = p), ds_j = u_j (dp_j - sum u dp / sum u)
static inline std::vector<double> exact_backward(const ExactRow& r, const double* dp) {
    size_t n = r.z.size();
    std::vector<double> u(n, 0.0), ds(n, 0.0);
    double su = 0.0, sudp = 0.0;
    for (size_t j = 0; j < n; j++) {
        if (r.alpha == 1.0) u[j] = r.p[j];
        else u[j] = r.p[j] > 0.0 ? exact_pos_pow(r.z[j] - r.tau, r.a - 1.0) : 0.0;
        su += u[j];
        sudp += u[j] * dp[j];
    }
    double delta = su > 0.0 ? sudp / su : 0.0;
    for (size_t j = 0; j < n; j++) ds[j] = u[j] * (dp[j] - delta);
    return ds;
}
