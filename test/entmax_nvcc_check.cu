/*
 entmax_nvcc_check.cu: compile-only check that llmc/entmax.h builds under nvcc, in device code (where the row
 functions take the Kahan-compensated float accumulator) and in host code of a .cu file (double accumulator).

   nvcc -arch=sm_90 -std=c++17 -c test/entmax_nvcc_check.cu -o build/entmax_nvcc_check.o

 Nothing runs it; the kernels are the smallest uses of every public function.
*/
#include "../llmc/entmax.h"

// one thread per row: the whole-row functions, as a simple kernel would use them
__global__ void entmax_rows_kernel(const float* s, float* p, const float* dp, float* ds, float* tau_out, int rows,
                                   int n, float alpha) {
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows || !entmax_alpha_is_valid(alpha)) return;
    Entmax e = entmax_make(alpha);
    tau_out[r] = entmax_row_forward(&e, s + (size_t)r * n, p + (size_t)r * n, n);
    entmax_row_backward(&e, p + (size_t)r * n, dp + (size_t)r * n, ds + (size_t)r * n, n, 0);
    int n_valid, iters;
    float s_max = entmax_row_max(s + (size_t)r * n, n, &n_valid);
    float tau = entmax_row_tau(&e, s + (size_t)r * n, n, s_max, n_valid, 4, 0.0f, &iters);
    EntmaxSums sums = entmax_row_sums(&e, s + (size_t)r * n, n, s_max, tau);
    tau_out[r] += 0.0f * (sums.s0 + (float)iters + entmax_u_from_p(&e, p[(size_t)r * n]));
}

// the kernel-style pieces: bracket init, per-element sums, merge, Halley-bisection step, p and u
__global__ void entmax_pieces_kernel(const float* z, float* p, float* u, int n, float alpha, int k_iters) {
    Entmax e = entmax_make(alpha);
    EntmaxTau t = entmax_tau_init(e.alpha, 0.0f, n);
    for (int it = 0; it < k_iters; it++) {
        EntmaxSums part = entmax_sums_zero();
        for (int j = threadIdx.x; j < n; j += blockDim.x) entmax_sums_add(e.kind, e.a, z[j] - t.tau, &part);
        EntmaxSums tot = entmax_sums_zero();
        entmax_sums_merge(&tot, part); // (a real kernel reduces `part` across the block here)
        entmax_tau_step(e.kind, e.a, &t, tot);
    }
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float corr;
        float x = entmax_row_x(&e, z[j], 0.0f, t.tau, &corr);
        p[j] = entmax_p(e.kind, e.a, x) * corr;
        u[j] = entmax_u(e.kind, e.a, x);
        float t0, t1, t2;
        entmax_terms(e.kind, e.a, x > 0.0f ? x : 1.0f, &t0, &t1, &t2);
        u[j] += 0.0f * (t0 + t1 + t2) + 0.0f * (float)entmax_kind_of(alpha);
    }
}

// and the same header from host code of a .cu file
float entmax_nvcc_host_check(const float* s, float* p, int n) {
    Entmax e = entmax_make(1.5f);
    return entmax_row_forward(&e, s, p, n);
}
