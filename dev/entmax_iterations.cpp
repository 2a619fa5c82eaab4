/*
 entmax_iterations.cpp: how many passes over a row the threshold solvers need, on the CPU.

   build: g++ -O2 -std=c++17 -Wall -Wextra -I. dev/entmax_iterations.cpp -o build/entmax_iterations -lm
   run:   ./build/entmax_iterations [--rows 100] [--seed 1234] [--tol 1e-6] [--n 1024,8192,65536]
                                    [--alpha 1.25,1.5,2] [--max-iter 60] [--halley-only]
          ./build/entmax_iterations stop [--rows 300] [--seed 1234] [--alpha 1.1,1.25,1.5,1.75,2] (see below)

 For every (n, alpha) cell: `rows` fresh rows of n N(0,1) fp32 scores (fixed seed), the exact p* from the float64
 reference (test/entmax_exact.h: sort-based for alpha 1.5 and 2, float64 bisection otherwise), then the number
 of iterations until max_j |p_j - p*_j| <= tol for
   (a) Halley-bisection: entmax_tau_init + entmax_tau_step from llmc/entmax.h, i.e. what the kernels run.
       After k iterations p = [z - tau_k]_+^a with the tau of the k-th update (no extra evaluation, no
       renormalization): exactly the output of a kernel run with k iterations.
   (b) plain bisection on the same bracket, as the entmax library's entmax_bisect does: halve the step, probe
       tau_m = lo + step, move lo to tau_m when f(tau_m) >= 0; the output is p at the last probe, either raw or
       divided by its sum (entmax_bisect's default ensure_sum_one=True).
 One iteration = one pass over the row (one evaluation of the sums / of f) for every method. All solver
 arithmetic is fp32 with kernel-style sums: 128 strided fp32 partial sums (one per "thread"), then merged.
 0 means the bracket midpoint is already within tol; a row that never gets there within --max-iter counts as
 max-iter + 1 and is reported. Prints a markdown table (mean and max over the rows of each cell).
 --halley-only skips (b): the mode for measuring the K that fixed-iteration kernels need (the max column).

 stop mode: ./build/entmax_iterations stop [--rows 300] [--seed 1234] [--alpha 1.1,1.25,1.5,1.75,2]
 The stopping rule of the GPU tau solver (attn_tau_kernel): niter passes, then more while some row of the tile has
 |f(tau_k)| > tol_cont, f(tau) = sum_j [(alpha-1)(s_j - max s) - tau]_+^(1/(alpha-1)) - 1 evaluated before the
 update. Stopping at |f(tau_k)| <= tol_cont is safe if the update then gives |f(tau_k+1)| <= 1e-3, so we measure
   worst = min |f(tau_k)| over all (row, k >= 0) with |f(tau_k+1)| > 1e-3   (tol_cont must stay below it)
 and the same over k >= niter - 1 only: the kernel stops after pass P >= niter, having seen f(tau_P-1), so with its
 default niter (entmax_default_niter in llmc/entmax.h: 2 for alpha 1.5, 3 otherwise) only those k matter.
 tau_0 is the kernel's start (kernel_start below): the lower bound from the maxima of the 16 key classes j mod 16
 (entmax_lower_bound_step), and for alpha = 1.5 in flat rows entmax15_tau_guess (from the fp32 mean and variance
 of the row) clamped into [bound, hi].
 over rows of n N(0, sigma^2) fp32 scores, sigma in {0.02 .. 8} (small sigma = flat rows, as at initialisation),
 n in {2 .. 4096}, `rows` rows per (sigma, n), the same rows for every alpha. Also the passes a row needs: the first
 k with |f(tau_k)| <= 1e-3 (k updates, then the output pass at tau_k). Plain fp32 sequential sums, 12 evaluations.
 And the kernel's second way to stop at alpha = 1.5 (entmax_may_stop: a near row whose quadratic model puts
 |f(tau_k+1)| close to 0): how many (row, k >= niter - 1) it stops that tol_cont would not, and the largest
 |f(tau_k+1)| among them (must stay <= 1e-3).
*/
#include "llmc/entmax.h"
#include "test/entmax_exact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <string>
#include <vector>
#include <chrono>

#define N_PARTIAL 128

// the start of attn_tau_kernel: the lower bound from the maxima of the key classes j mod 16
// (entmax_lower_bound_step), and for alpha = 1.5 in flat rows entmax15_tau_guess (fp32 moments of the scores)
// clamped into [bound, hi]
static EntmaxTau kernel_start(const Entmax& e, const std::vector<float>& s, float s_max) {
    const int n = (int)s.size();
    EntmaxTau t = entmax_tau_init(e.alpha, 0.0f, n);
    float cmax[ENTMAX_LB_CLASSES];
    for (int i = 0; i < ENTMAX_LB_CLASSES; i++) cmax[i] = -INFINITY;
    for (int j = 0; j < n; j++) cmax[j % ENTMAX_LB_CLASSES] = std::max(cmax[j % ENTMAX_LB_CLASSES], s[j]);
    float lb = t.lo;
    for (int it = 0; it < ENTMAX_LB_STEPS; it++) {
        EntmaxSums sb = entmax_sums_zero();
        for (int i = 0; i < ENTMAX_LB_CLASSES; i++) entmax_sums_add(e.kind, e.a, e.am1 * (cmax[i] - s_max) - lb, &sb);
        lb = entmax_lower_bound_step(e.a, lb, sb);
    }
    t.lo = std::min(lb, t.hi);
    t.tau = t.lo;
    if (e.kind == ENTMAX_15) {
        float m1 = 0.0f, m2 = 0.0f, mu, var, g;
        for (float v : s) { m1 += v; m2 = fmaf(v, v, m2); }
        entmax_moments(m1, m2, (float)n, e.am1, s_max, &mu, &var);
        if (entmax15_tau_guess(mu, var, n, t.hi, &g)) t.tau = std::max(g, t.lo);
    }
    return t;
}

// the kernel-style fp32 sums at tau: N_PARTIAL strided partial sums, then merged
static EntmaxSums kernel_sums(const Entmax& e, const std::vector<float>& s, float s_max, float tau) {
    EntmaxSums part[N_PARTIAL];
    for (int i = 0; i < N_PARTIAL; i++) part[i] = entmax_sums_zero();
    for (size_t j = 0; j < s.size(); j++) entmax_sums_add(e.kind, e.a, e.am1 * (s[j] - s_max) - tau, &part[j % N_PARTIAL]);
    EntmaxSums tot = entmax_sums_zero();
    for (int i = 0; i < N_PARTIAL; i++) entmax_sums_merge(&tot, part[i]);
    return tot;
}

// max |p(tau) - p*|, p in fp32 as a kernel computes it; `scale` multiplies p (1, or 1/sum for ensure_sum_one)
static double max_err(const Entmax& e, const std::vector<float>& s, float s_max, float tau, float scale,
                      const std::vector<double>& p_exact) {
    double err = 0.0;
    for (size_t j = 0; j < s.size(); j++) {
        float p = entmax_p(e.kind, e.a, e.am1 * (s[j] - s_max) - tau) * scale;
        err = std::max(err, fabs((double)p - p_exact[j]));
    }
    return err;
}

struct Cell { std::vector<int> halley, bisect_raw, bisect_norm; };

static std::vector<double> parse_list(const char* arg) {
    std::vector<double> v;
    std::string s(arg);
    size_t pos = 0;
    while (pos <= s.size()) {
        size_t comma = s.find(',', pos);
        std::string item = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        char* end;
        double d = strtod(item.c_str(), &end);
        if (item.empty() || *end) { fprintf(stderr, "error: bad number '%s' in list '%s'\n", item.c_str(), arg); exit(1); }
        v.push_back(d);
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    return v;
}

static void summarize(const std::vector<int>& v, int cap, double* mean, int* mx, int* missed) {
    long sum = 0;
    *mx = 0;
    *missed = 0;
    for (int k : v) { sum += k; *mx = std::max(*mx, k); if (k > cap) (*missed)++; }
    *mean = v.empty() ? 0.0 : (double)sum / (double)v.size();
}

// ----------------------------------------------------------------------------------------------------------
// stop mode: the continuation threshold tol_cont of the GPU tau solver (see the comment at the top)

#define STOP_EVALS 12      // evaluations of f per row: tau_0 .. tau_11
#define STOP_TOL 1e-3f     // |f| the solver must reach (the kernel's "near" test)

static const float stop_sigmas[] = {0.02f, 0.05f, 0.1f, 0.2f, 0.3f, 0.5f, 1.0f, 2.0f, 4.0f, 8.0f};
static const int stop_ns[] = {2, 8, 64, 512, 1024, 4096};
#define STOP_NS ((int)(sizeof stop_ns / sizeof stop_ns[0]))
#define STOP_SIGMAS ((int)(sizeof stop_sigmas / sizeof stop_sigmas[0]))

struct StopResult {
    float worst = INFINITY;             // min |f(tau_k)| with |f(tau_k+1)| > STOP_TOL
    float worst_next = 0.0f;            // that |f(tau_k+1)|
    float worst_sigma = 0.0f;
    int worst_n = 0, worst_k = -1;
    float worst_late = INFINITY;        // the same min over k >= niter - 1
    int passes[STOP_SIGMAS][STOP_NS];   // max over the rows of the first k with |f(tau_k)| <= STOP_TOL
    int missed = 0;                     // rows that never got there in STOP_EVALS evaluations
    // the kernel's other way to stop (entmax_may_stop, alpha = 1.5): (row, k >= niter - 1) with |f(tau_k)| >
    // tol_cont where the quadratic model lets the row stop; the largest |f(tau_k+1)| there
    long model_stops = 0, model_rows = 0;
    float model_worst = 0.0f;
};

static void stop_alpha(float alpha, int rows, unsigned long long seed, StopResult* res) {
    Entmax e = entmax_make(alpha);
    int niter = entmax_default_niter(alpha);
    const float tol_cont = entmax_tol_cont(alpha);
    TestRng rng(seed); // reseeded per alpha: every alpha sees the same rows
    for (int si = 0; si < STOP_SIGMAS; si++) {
        float sigma = stop_sigmas[si];
        for (int ni = 0; ni < STOP_NS; ni++) {
            int n = stop_ns[ni];
            std::vector<float> s(n);
            res->passes[si][ni] = 0;
            for (int r = 0; r < rows; r++) {
                for (float& v : s) v = (float)(sigma * rng.normal());
                float m = s[0];
                for (float v : s) m = std::max(m, v);
                EntmaxTau t = kernel_start(e, s, m);
                float fprev = NAN;
                int need = STOP_EVALS; // "not reached"
                bool model_pending = false, model_row = false;
                for (int it = 0; it < STOP_EVALS; it++) {
                    // f(tau_it) = sum_j [am1 (s_j - m) - tau_it]_+^a - 1, then the update tau_it -> tau_it+1
                    EntmaxSums sums = entmax_sums_zero();
                    for (int j = 0; j < n; j++) entmax_sums_add(e.kind, e.a, e.am1 * (s[j] - m) - t.tau, &sums);
                    float f = sums.s0 - 1.0f;
                    if (it >= 1 && fabsf(f) > STOP_TOL && fabsf(fprev) < res->worst) {
                        res->worst = fabsf(fprev);
                        res->worst_next = fabsf(f);
                        res->worst_sigma = sigma;
                        res->worst_n = n;
                        res->worst_k = it - 1;
                    }
                    if (it >= niter && fabsf(f) > STOP_TOL) res->worst_late = std::min(res->worst_late, fabsf(fprev));
                    if (need == STOP_EVALS && fabsf(f) <= STOP_TOL) need = it;
                    if (model_pending) { res->model_worst = std::max(res->model_worst, fabsf(f)); model_pending = false; }
                    fprev = f;
                    const float tau_it = t.tau;
                    entmax_tau_step(e.kind, e.a, &t, sums);
                    if (it >= niter - 1 && fabsf(f) > tol_cont && entmax_may_stop(e.kind, f, sums, t.tau - tau_it, tol_cont)) {
                        res->model_stops++;
                        model_pending = model_row = true;
                    }
                }
                res->model_rows += model_row;
                if (need == STOP_EVALS) res->missed++;
                res->passes[si][ni] = std::max(res->passes[si][ni], need);
            }
        }
    }
}

static int run_stop(int rows, unsigned long long seed, const std::vector<double>& alphas) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<StopResult> res(alphas.size());
    for (size_t ai = 0; ai < alphas.size(); ai++) stop_alpha((float)alphas[ai], rows, seed, &res[ai]);

    printf("stopping rule of the GPU tau solver: rows of n N(0, sigma^2) fp32 scores, %d rows per (sigma, n), "
           "seed %llu, the same rows for every alpha; f(tau) = sum_j [(alpha-1)(s_j - max s) - tau]_+^(1/(alpha-1)) - 1, "
           "tau_0 = the kernel start (lower bound from the 16 class maxima; alpha 1.5: entmax15_tau_guess where it applies), tau_k+1 = entmax_tau_step(tau_k), %d evaluations per row\n\n",
           rows, seed, STOP_EVALS);
    printf("passes: the first k with |f(tau_k)| <= %g (k updates, then the output pass at tau_k), max over the rows;\n"
           "each cell lists n =", (double)STOP_TOL);
    for (int ni = 0; ni < STOP_NS; ni++) printf(" %d", stop_ns[ni]);
    printf("; '-' = not reached in %d evaluations\n\n", STOP_EVALS);
    printf("| sigma |");
    for (double a : alphas) printf(" alpha %g |", a);
    printf("\n|---:|");
    for (size_t ai = 0; ai < alphas.size(); ai++) printf("---|");
    printf("\n");
    for (int si = 0; si < STOP_SIGMAS; si++) {
        printf("| %g |", (double)stop_sigmas[si]);
        for (size_t ai = 0; ai < alphas.size(); ai++) {
            for (int ni = 0; ni < STOP_NS; ni++) {
                int k = res[ai].passes[si][ni];
                if (k >= STOP_EVALS) printf(" -");
                else printf(" %d", k);
            }
            printf(" |");
        }
        printf("\n");
    }

    printf("\nworst: the smallest |f(tau_k)| (before the update) with |f(tau_k+1)| > %g after it; a stopping threshold\n"
           "tol_cont on |f(tau_k)| must stay below it. next: that |f(tau_k+1)|; sigma, n, k: where it happened;\n"
           "k >= niter-1: the same minimum over the k at which the kernel (default niter) can stop; rows not reached:\n"
           "rows with |f| > %g after all %d evaluations\n\n", (double)STOP_TOL, (double)STOP_TOL, STOP_EVALS);
    printf("| alpha | worst \\|f(tau_k)\\| | next \\|f(tau_k+1)\\| | sigma | n | k | niter | worst, k >= niter-1 "
           "| rows not reached |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t ai = 0; ai < alphas.size(); ai++) {
        const StopResult& r = res[ai];
        char late[32];
        if (r.worst_late < INFINITY) snprintf(late, sizeof late, "%.4g", (double)r.worst_late);
        else snprintf(late, sizeof late, "none");
        int niter = entmax_default_niter((float)alphas[ai]);
        if (r.worst_k < 0) printf("| %g | none | | | | | %d | %s | %d |\n", alphas[ai], niter, late, r.missed);
        else printf("| %g | %.4g | %.4g | %g | %d | %d | %d | %s | %d |\n", alphas[ai], (double)r.worst,
                    (double)r.worst_next, (double)r.worst_sigma, r.worst_n, r.worst_k, niter, late, r.missed);
    }
    printf("\nthe quadratic model's stops (entmax_may_stop: alpha = 1.5, |f(tau_k)| in (tol_cont, %g] and the model's "
           "|f(tau_k+1)| <= %g, k >= niter - 1): how often, and the largest |f(tau_k+1)| that followed (must be <= %g)\n\n"
           "| alpha | tol_cont | (row, k) stops | rows | worst next \\|f\\| |\n|---:|---:|---:|---:|---:|\n",
           (double)ENTMAX15_STOP_NEAR, (double)ENTMAX15_STOP_PRED, (double)STOP_TOL);
    for (size_t ai = 0; ai < alphas.size(); ai++)
        printf("| %g | %g | %ld | %ld | %.3g |\n", alphas[ai], (double)entmax_tol_cont((float)alphas[ai]),
               res[ai].model_stops, res[ai].model_rows, (double)res[ai].model_worst);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printf("\n(%.1f s)\n", secs);
    return 0;
}

int main(int argc, char** argv) {
    int rows = 100, max_iter = 60;
    unsigned long long seed = 1234;
    double tol = 1e-6;
    bool halley_only = false;
    std::vector<double> ns = {1024, 8192, 65536}, alphas = {1.25, 1.5, 2.0};
    // `stop` as the first argument selects the stop mode: only --rows, --seed and --alpha apply there
    bool stop = argc > 1 && !strcmp(argv[1], "stop"), rows_set = false, alpha_set = false, other_set = false;
    for (int i = stop ? 2 : 1; i < argc; i++) {
        bool has = i + 1 < argc;
        if (!strcmp(argv[i], "--rows") && has) { rows = atoi(argv[++i]); rows_set = true; }
        else if (!strcmp(argv[i], "--seed") && has) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--tol") && has) { tol = atof(argv[++i]); other_set = true; }
        else if (!strcmp(argv[i], "--max-iter") && has) { max_iter = atoi(argv[++i]); other_set = true; }
        else if (!strcmp(argv[i], "--n") && has) { ns = parse_list(argv[++i]); other_set = true; }
        else if (!strcmp(argv[i], "--alpha") && has) { alphas = parse_list(argv[++i]); alpha_set = true; }
        else if (!strcmp(argv[i], "--halley-only")) { halley_only = true; other_set = true; }
        else {
            fprintf(stderr, "error: bad argument '%s'; usage: %s [--rows N] [--seed S] [--tol T] [--n a,b,..] "
                    "[--alpha a,b,..] [--max-iter K] [--halley-only]\n"
                    "       or: %s stop [--rows N] [--seed S] [--alpha a,b,..]\n", argv[i], argv[0], argv[0]);
            return 1;
        }
    }
    if (stop && other_set) { fprintf(stderr, "error: stop mode takes only --rows, --seed and --alpha\n"); return 1; }
    if (stop && !rows_set) rows = 300;
    if (stop && !alpha_set) alphas = {1.1, 1.25, 1.5, 1.75, 2.0};
    if (rows < 1 || max_iter < 1 || !(tol > 0.0)) { fprintf(stderr, "error: --rows, --max-iter and --tol must be > 0\n"); return 1; }
    for (double a : alphas)
        if (!entmax_alpha_is_valid((float)a) || a == 1.0) { fprintf(stderr, "error: alpha %g is not in (1, 2]\n", a); return 1; }
    if (stop) return run_stop(rows, seed, alphas);
    for (double n : ns)
        if (n < 1 || n > 1 << 24) { fprintf(stderr, "error: n %g is not in [1, 2^24]\n", n); return 1; }

    auto t0 = std::chrono::steady_clock::now();
    TestRng rng(seed);
    printf("rows of N(0,1) fp32 scores, %d rows per cell, seed %llu; iterations until max|p - p*| <= %g "
           "(mean / max over the rows)\n\n", rows, seed, tol);
    if (halley_only) {
        printf("| n | alpha | Halley-bisection (ours) |\n");
        printf("|---:|---:|---:|\n");
    } else {
        printf("| n | alpha | Halley-bisection (ours) | bisection, raw p | bisection, p / sum p |\n");
        printf("|---:|---:|---:|---:|---:|\n");
    }
    for (double nd : ns) {
        int n = (int)nd;
        for (double ad : alphas) {
            float alpha = (float)ad;
            Entmax e = entmax_make(alpha);
            Cell c;
            for (int r = 0; r < rows; r++) {
                std::vector<float> s(n);
                for (float& v : s) v = (float)rng.normal();
                ExactRow ex = exact_entmax_f(s.data(), n, (double)alpha);
                int n_valid;
                float s_max = entmax_row_max(s.data(), n, &n_valid);

                // (a) Halley-bisection, exactly the kernels' fixed-iteration form
                EntmaxTau t = entmax_tau_init(alpha, 0.0f, n_valid);
                int k = 0;
                while (k <= max_iter && max_err(e, s, s_max, t.tau, 1.0f, ex.p) > tol) {
                    entmax_tau_step(e.kind, e.a, &t, kernel_sums(e, s, s_max, t.tau));
                    k++;
                }
                c.halley.push_back(k);
                if (halley_only) continue;

                // (b) entmax_bisect: step halves, probe lo + step, move lo when f >= 0; output p at the probe
                EntmaxTau b = entmax_tau_init(alpha, 0.0f, n_valid);
                float lo = b.lo, step = b.hi - b.lo;
                int k_raw = -1, k_norm = -1;
                for (int it = 1; it <= max_iter && (k_raw < 0 || k_norm < 0); it++) {
                    step *= 0.5f;
                    float tau_m = lo + step;
                    EntmaxSums sm = kernel_sums(e, s, s_max, tau_m);
                    if (k_raw < 0 && max_err(e, s, s_max, tau_m, 1.0f, ex.p) <= tol) k_raw = it;
                    if (k_norm < 0 && sm.s0 > 0.0f && max_err(e, s, s_max, tau_m, 1.0f / sm.s0, ex.p) <= tol) k_norm = it;
                    if (sm.s0 - 1.0f >= 0.0f) lo = tau_m;
                }
                c.bisect_raw.push_back(k_raw < 0 ? max_iter + 1 : k_raw);
                c.bisect_norm.push_back(k_norm < 0 ? max_iter + 1 : k_norm);
            }
            std::string cols[3];
            const std::vector<int>* vs[3] = {&c.halley, &c.bisect_raw, &c.bisect_norm};
            for (int m = 0; m < (halley_only ? 1 : 3); m++) {
                double mean;
                int mx, missed;
                summarize(*vs[m], max_iter, &mean, &mx, &missed);
                char buf[96];
                if (missed) snprintf(buf, sizeof buf, "%.2f / %d (%d rows > %d)", mean, mx, missed, max_iter);
                else snprintf(buf, sizeof buf, "%.2f / %d", mean, mx);
                cols[m] = buf;
            }
            if (halley_only) printf("| %d | %g | %s |\n", n, ad, cols[0].c_str());
            else printf("| %d | %g | %s | %s | %s |\n", n, ad, cols[0].c_str(), cols[1].c_str(), cols[2].c_str());
            fflush(stdout);
        }
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    printf("\n(%.1f s)\n", secs);
    return 0;
}
