/*
 Kernels for the alpha-entmax attention forward pass (layout (B, T, H, D), bf16 in, causal).

 Compile:  make -C dev/cuda attention_forward    (or: nvcc -O3 -arch=sm_90 -std=c++17 -I../.. attention_forward.cu)
 Run:      ./attention_forward [version] [alpha] [T]        (no version: all of them)

 version 1: materialised reference on the GPU: S = QK^T/sqrt(D) written out (B*H*T*T floats), one thread per
            row runs entmax.h's entmax_row_forward (converged tau), then O = P V
 version 2: flash, bisection: one thread per query row, fp32, K/V streamed through shared memory tiles;
            1 pass for the row max, 25 bisection passes on f(tau) = sum [z - tau]_+^a - 1, 1 output pass
 version 3: flash, Halley-bisection: as 2 with entmax_tau_step (default iterations: 3 for alpha = 1.5, else 5)
 version 4: tensor cores (mma.sync + ldmatrix + cp.async), one kernel for all passes, dead 64x64 tiles skipped in
            the output pass (attention_forward_impl(..., split = 0) of llmc/attention.cuh)
 version 5: what llmc/attention.cuh does: a register-light tau kernel (2 CTAs/SM) + the output kernel
 Every version is checked against the entmax.h CPU reference on a small shape (B=1, T=257, H=2), then timed
 at B*T = 8192 tokens... (B = 8192/T), H = 12, D = 64.
*/
#include "attention_common.cuh"

// ---------------------------------------------------------------------------------------------------------
// version 1: materialised

__global__ void scores_kernel(float* S, const bf16* q, const bf16* k, int B, int T, int H, int D, int causal) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    long long total = (long long)B * H * T * T;
    if (idx >= total) return;
    int j = idx % T, i = (idx / T) % T, bh = idx / ((long long)T * T), b = bh / H, h = bh % H;
    if (causal && j > i) { S[idx] = -INFINITY; return; }
    const bf16* qi = q + ((long long)(b * T + i) * H + h) * D;
    const bf16* kj = k + ((long long)(b * T + j) * H + h) * D;
    float acc = 0.0f;
    for (int d = 0; d < D; d++) acc += __bfloat162float(qi[d]) * __bfloat162float(kj[d]);
    S[idx] = acc / sqrtf((float)D);
}

__global__ void rows_entmax_kernel(float* P, const float* S, long long rows, int T, float alpha) {
    long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    Entmax e = entmax_make(alpha);
    entmax_row_forward(&e, S + r * T, P + r * T, T);
}

__global__ void pv_kernel(bf16* o, const float* P, const bf16* v, int B, int T, int H, int D) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)B * T * H * D) return;
    int d = idx % D, h = (idx / D) % H, i = (idx / ((long long)D * H)) % T, b = idx / ((long long)D * H * T);
    const float* prow = P + ((long long)(b * H + h) * T + i) * T;
    float acc = 0.0f;
    for (int j = 0; j < T; j++)
        if (prow[j] != 0.0f) acc += prow[j] * __bfloat162float(v[((long long)(b * T + j) * H + h) * D + d]);
    o[idx] = __float2bfloat16(acc);
}

// ---------------------------------------------------------------------------------------------------------
// versions 2, 3: scalar flash (one thread per query row, 64 rows per block, 64-key tiles in shared memory)

template <int D, bool HALLEY>
__global__ void flash_scalar_kernel(bf16* o, const bf16* q, const bf16* k, const bf16* v, int B, int T, int H,
                                    float alpha, int niter) {
    __shared__ float sk[64][D + 1], sv[64][D + 1];
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const int i = blockIdx.x * 64 + threadIdx.x;
    const bool valid = i < T;
    const Entmax e = entmax_make(alpha);
    const float scale = 1.0f / sqrtf((float)D);
    float qr[D], acc[D];
    for (int d = 0; d < D; d++) qr[d] = valid ? __bfloat162float(q[((long long)(b * T + i) * H + h) * D + d]) * scale : 0.0f;
    const int kend = min(T, blockIdx.x * 64 + 64); // causal
    float m = -INFINITY;
    EntmaxTau t;
    float sp = 0.0f;
    for (int pass = 0; pass < niter + 2; pass++) {
        const bool out = pass == niter + 1;
        EntmaxSums sums = entmax_sums_zero();
        if (out) for (int d = 0; d < D; d++) acc[d] = 0.0f;
        for (int k0 = 0; k0 < kend; k0 += 64) {
            __syncthreads();
            for (int x = threadIdx.x; x < 64 * D; x += 64) {
                int r = x / D, d = x % D, j = k0 + r;
                sk[r][d] = j < T ? __bfloat162float(k[((long long)(b * T + j) * H + h) * D + d]) : 0.0f;
                if (out) sv[r][d] = j < T ? __bfloat162float(v[((long long)(b * T + j) * H + h) * D + d]) : 0.0f;
            }
            __syncthreads();
            for (int r = 0; r < 64; r++) {
                int j = k0 + r;
                if (j > i || j >= T) break;
                float s = 0.0f;
                for (int d = 0; d < D; d++) s += qr[d] * sk[r][d];
                if (pass == 0) { m = fmaxf(m, s); continue; }
                float x = e.am1 * (s - m) - t.tau; // z - tau, max-shifted
                if (!out) { entmax_sums_add(e.kind, e.a, x, &sums); continue; }
                float pr = entmax_p(e.kind, e.a, x);
                if (pr > 0.0f) { sp += pr; for (int d = 0; d < D; d++) acc[d] += pr * sv[r][d]; }
            }
        }
        if (pass == 0) t = entmax_tau_init(alpha, 0.0f, valid ? i + 1 : 1);
        else if (!out) {
            if (HALLEY) entmax_tau_step(e.kind, e.a, &t, sums);
            else { // bisection: keep the sign of f at tau in the bracket, then halve it
                float f = sums.s0 - 1.0f;
                if (f > 0.0f) t.lo = t.tau; else if (f < 0.0f) t.hi = t.tau;
                t.tau = 0.5f * (t.lo + t.hi);
            }
        }
    }
    if (valid)
        for (int d = 0; d < D; d++) o[((long long)(b * T + i) * H + h) * D + d] = __float2bfloat16(acc[d] / sp);
}

// ---------------------------------------------------------------------------------------------------------

struct Problem {
    int B, T, H, D;
    float alpha;
    bf16 *q, *k, *v, *o, *o2;
    float *stat, *S, *P;
    uint32_t* mask;
};

static void run_version(int version, Problem& pb) {
    int B = pb.B, T = pb.T, H = pb.H, D = pb.D;
    if (version == 1) {
        long long n = (long long)B * H * T * T;
        scores_kernel<<<(unsigned)((n + 255) / 256), 256>>>(pb.S, pb.q, pb.k, B, T, H, D, 1);
        rows_entmax_kernel<<<(unsigned)(((long long)B * H * T + 127) / 128), 128>>>(pb.P, pb.S, (long long)B * H * T, T, pb.alpha);
        long long no = (long long)B * T * H * D;
        pv_kernel<<<(unsigned)((no + 255) / 256), 256>>>(pb.o, pb.P, pb.v, B, T, H, D);
    } else if (version == 2 || version == 3) {
        dim3 grid((T + 63) / 64, B * H);
        int niter = version == 2 ? 25 : entmax_kind_of(pb.alpha) == ENTMAX_15 ? 3 : 5; // fixed: no continuation here
        if (version == 2) flash_scalar_kernel<64, false><<<grid, 64>>>(pb.o, pb.q, pb.k, pb.v, B, T, H, pb.alpha, niter);
        else flash_scalar_kernel<64, true><<<grid, 64>>>(pb.o, pb.q, pb.k, pb.v, B, T, H, pb.alpha, niter);
    } else {
        AttnArgs a;
        memset(&a, 0, sizeof(a));
        a.B = B; a.T = T; a.H = H; a.D = D; a.alpha = pb.alpha; a.causal = 1;
        a.q = bthd(pb.q, T, H, D); a.k = bthd(pb.k, T, H, D); a.v = bthd(pb.v, T, H, D);
        a.o = bthd(pb.o, T, H, D); a.o2 = bthd(pb.o2, T, H, D);
        a.stat = pb.stat; a.mask = pb.mask;
        attnCheck(attention_forward_impl(&a, 0, version == 5 ? 1 : 0));
    }
    cudaCheck(cudaGetLastError());
}

static Problem make_problem(int B, int T, int H, int D, float alpha, bool materialise, unsigned long long seed,
                            std::vector<float>* hq = nullptr, std::vector<float>* hk = nullptr,
                            std::vector<float>* hv = nullptr) {
    Problem pb;
    memset(&pb, 0, sizeof(pb));
    pb.B = B; pb.T = T; pb.H = H; pb.D = D; pb.alpha = alpha;
    size_t n = (size_t)B * T * H * D;
    std::vector<float> q(n), k(n), v(n);
    fill_randn(q, seed); fill_randn(k, seed + 1); fill_randn(v, seed + 2);
    pb.q = to_device_bf16(q); pb.k = to_device_bf16(k); pb.v = to_device_bf16(v);
    cudaCheck(cudaMalloc(&pb.o, n * sizeof(bf16)));
    cudaCheck(cudaMalloc(&pb.o2, n * sizeof(bf16)));
    cudaCheck(cudaMalloc(&pb.stat, (size_t)B * H * T * sizeof(float)));
    size_t mw = attention_mask_words(B, H, T);
    if (mw) cudaCheck(cudaMalloc(&pb.mask, mw * sizeof(uint32_t)));
    if (materialise) {
        cudaCheck(cudaMalloc(&pb.S, (size_t)B * H * T * T * sizeof(float)));
        cudaCheck(cudaMalloc(&pb.P, (size_t)B * H * T * T * sizeof(float)));
    }
    if (hq) { *hq = q; *hk = k; *hv = v; }
    return pb;
}

static void free_problem(Problem& pb) {
    cudaFree(pb.q); cudaFree(pb.k); cudaFree(pb.v); cudaFree(pb.o); cudaFree(pb.o2); cudaFree(pb.stat);
    if (pb.mask) cudaFree(pb.mask);
    if (pb.S) { cudaFree(pb.S); cudaFree(pb.P); }
}

int main(int argc, char** argv) {
    int only = argc > 1 ? atoi(argv[1]) : 0;
    float alpha = argc > 2 ? (float)atof(argv[2]) : 1.5f;
    int Tbig = argc > 3 ? atoi(argv[3]) : 1024;
    if (alpha <= 1.0f || alpha > 2.0f) { fprintf(stderr, "error: alpha must be in (1, 2] here (softmax: see llmc)\n"); return 1; }
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, 0));
    printf("device %s, alpha %.3f\n", prop.name, alpha);
    int fails = 0;
    // correctness on a small shape vs the entmax.h CPU reference
    {
        int B = 1, T = 257, H = 2, D = 64;
        std::vector<float> q, k, v;
        Problem pb = make_problem(B, T, H, D, alpha, true, 7, &q, &k, &v);
        size_t n = (size_t)B * T * H * D;
        std::vector<float> ref(n);
        attention_reference_cpu(B, T, H, D, alpha, 1, q.data(), k.data(), v.data(), nullptr, ref.data(), nullptr, nullptr, nullptr);
        for (int ver = 1; ver <= 5; ver++) {
            if (only && ver != only) continue;
            cudaCheck(cudaMemset(pb.o, 0xff, n * sizeof(bf16))); // poison: NaN bf16
            run_version(ver, pb);
            cudaCheck(cudaDeviceSynchronize());
            printf("version %d, B=%d T=%d H=%d D=%d vs CPU reference:\n", ver, B, T, H, D);
            compare("o", from_device_bf16(pb.o, n), ref, 5e-3, &fails);
        }
        free_problem(pb);
    }
    // timing
    {
        int T = Tbig, B = std::max(1, 8192 / T), H = 12, D = 64;
        Problem pb = make_problem(B, T, H, D, alpha, only == 0 || only == 1, 11);
        double flops = 2.0 * B * H * (double)T * T * D; // causal fwd: half of 4 B H T^2 D
        printf("timing B=%d T=%d H=%d D=%d causal (median of 15):\n", B, T, H, D);
        for (int ver = 1; ver <= 5; ver++) {
            if (only && ver != only) continue;
            float ms = time_median_ms([&]() { run_version(ver, pb); }, 2, ver <= 3 ? 3 : 15);
            printf("  version %d: %8.3f ms  %7.1f TFLOP/s\n", ver, ms, flops / ms / 1e9);
        }
        free_problem(pb);
    }
    printf(fails ? "FAILED (%d)\n" : "all versions OK\n", fails);
    return fails ? 1 : 0;
}
