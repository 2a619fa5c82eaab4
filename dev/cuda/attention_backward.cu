/*
 Kernels for the alpha-entmax attention backward pass (layout (B, T, H, D), bf16, causal).

 Compile:  make -C dev/cuda attention_backward
 Run:      ./attention_backward [version] [alpha] [T]     (no version: all of them)
           ./attention_backward check [alpha]             small fwd+bwd sweep of llmc/attention.cuh (alpha 1, 1.25,
                                                           1.5, 2; D 64, 128; causal and not; T 1, 77, 200) vs the CPU
                                                           reference: the workload for compute-sanitizer

 version 1: materialised: S, P (entmax_row_forward per row), dP = dO V^T, dS (entmax_row_backward per row), then
            dQ = dS K / sqrt(D), dK = dS^T Q / sqrt(D), dV = P^T dO, one plain kernel each (B*H*T*T floats)
 version 2: flash recomputation with tensor cores (llmc/attention.cuh kernels) without the tile mask: a dq kernel
            (which also writes delta = dO.O2) and a dk/dv kernel, no float atomics (deterministic)
 version 3: as 2, skipping the 64x64 tiles that the forward marked dead (what llmc/attention.cuh does)
 Checked against the entmax.h CPU reference on a small shape, then timed (backward only) at B*T = 8192, H = 12.
*/
#include "attention_common.cuh"

__global__ void bw_scores_kernel(float* S, const bf16* a, const bf16* bm, int B, int T, int H, int D, int causal,
                                 float scale) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)B * H * T * T) return;
    int j = idx % T, i = (idx / T) % T, bh = idx / ((long long)T * T), b = bh / H, h = bh % H;
    if (causal && j > i) { S[idx] = -INFINITY; return; }
    const bf16* ai = a + ((long long)(b * T + i) * H + h) * D;
    const bf16* bj = bm + ((long long)(b * T + j) * H + h) * D;
    float acc = 0.0f;
    for (int d = 0; d < D; d++) acc += __bfloat162float(ai[d]) * __bfloat162float(bj[d]);
    S[idx] = acc * scale;
}

__global__ void bw_rows_kernel(float* P, float* dS, const float* S, const float* dP, long long rows, int T, float alpha) {
    long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    Entmax e = entmax_make(alpha);
    entmax_row_forward(&e, S + r * T, P + r * T, T);
    entmax_row_backward(&e, P + r * T, dP + r * T, dS + r * T, T, 0);
}

// out[b, t, h, d] = scale * sum_u M[bh][t][u] x[b, u, h, d]  (trans: M[bh][u][t])
__global__ void bw_matmul_kernel(bf16* out, const float* M, const bf16* x, int B, int T, int H, int D, float scale,
                                 int trans) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)B * T * H * D) return;
    int d = idx % D, h = (idx / D) % H, t = (idx / ((long long)D * H)) % T, b = idx / ((long long)D * H * T);
    const float* Mb = M + (long long)(b * H + h) * T * T;
    float acc = 0.0f;
    for (int u = 0; u < T; u++) {
        float m = trans ? Mb[(long long)u * T + t] : Mb[(long long)t * T + u];
        if (m != 0.0f) acc += m * __bfloat162float(x[((long long)(b * T + u) * H + h) * D + d]);
    }
    out[idx] = __float2bfloat16(acc * scale);
}

struct BwProblem {
    int B, T, H, D, causal;
    float alpha;
    bf16 *q, *k, *v, *o, *o2, *dout, *dq, *dk, *dv;
    float *stat, *delta, *S, *P, *dP, *dS;
    uint32_t* mask;
};

static AttnArgs args_of(BwProblem& pb, bool use_mask) {
    AttnArgs a;
    memset(&a, 0, sizeof(a));
    int T = pb.T, H = pb.H, D = pb.D;
    a.B = pb.B; a.T = T; a.H = H; a.D = D; a.alpha = pb.alpha; a.causal = pb.causal;
    a.q = bthd(pb.q, T, H, D); a.k = bthd(pb.k, T, H, D); a.v = bthd(pb.v, T, H, D);
    a.o = bthd(pb.o, T, H, D);
    a.o2 = bthd(pb.alpha == 1.0f ? pb.o : pb.o2, T, H, D);
    a.dout = bthd(pb.dout, T, H, D);
    a.dq = bthd(pb.dq, T, H, D); a.dk = bthd(pb.dk, T, H, D); a.dv = bthd(pb.dv, T, H, D);
    a.stat = pb.stat; a.delta = pb.delta; a.mask = use_mask ? pb.mask : nullptr;
    return a;
}

static void forward_llmc(BwProblem& pb) {
    AttnArgs a = args_of(pb, true);
    if (pb.alpha == 1.0f) a.o2.ptr = nullptr;
    attnCheck(attention_forward(&a, 0));
}

static void run_backward(int version, BwProblem& pb) {
    int B = pb.B, T = pb.T, H = pb.H, D = pb.D;
    float scale = 1.0f / sqrtf((float)D);
    if (version == 1) {
        long long n = (long long)B * H * T * T, no = (long long)B * T * H * D;
        unsigned gs = (unsigned)((n + 255) / 256), go = (unsigned)((no + 255) / 256);
        bw_scores_kernel<<<gs, 256>>>(pb.S, pb.q, pb.k, B, T, H, D, pb.causal, scale);
        bw_scores_kernel<<<gs, 256>>>(pb.dP, pb.dout, pb.v, B, T, H, D, 0, 1.0f);
        bw_rows_kernel<<<(unsigned)(((long long)B * H * T + 127) / 128), 128>>>(pb.P, pb.dS, pb.S, pb.dP, (long long)B * H * T, T, pb.alpha);
        bw_matmul_kernel<<<go, 256>>>(pb.dq, pb.dS, pb.k, B, T, H, D, scale, 0);
        bw_matmul_kernel<<<go, 256>>>(pb.dk, pb.dS, pb.q, B, T, H, D, scale, 1);
        bw_matmul_kernel<<<go, 256>>>(pb.dv, pb.P, pb.dout, B, T, H, D, 1.0f, 1);
    } else {
        AttnArgs a = args_of(pb, version == 3);
        attnCheck(attention_backward(&a, 0));
    }
    cudaCheck(cudaGetLastError());
}

static BwProblem make_bw(int B, int T, int H, int D, float alpha, int causal, bool materialise, unsigned long long seed,
                         std::vector<float>* h = nullptr) {
    BwProblem pb;
    memset(&pb, 0, sizeof(pb));
    pb.B = B; pb.T = T; pb.H = H; pb.D = D; pb.alpha = alpha; pb.causal = causal;
    size_t n = (size_t)B * T * H * D;
    std::vector<float> x[4];
    for (int i = 0; i < 4; i++) { x[i].resize(n); fill_randn(x[i], seed + i); }
    pb.q = to_device_bf16(x[0]); pb.k = to_device_bf16(x[1]); pb.v = to_device_bf16(x[2]); pb.dout = to_device_bf16(x[3]);
    bf16** outs[5] = {&pb.o, &pb.o2, &pb.dq, &pb.dk, &pb.dv};
    for (int i = 0; i < 5; i++) cudaCheck(cudaMalloc(outs[i], n * sizeof(bf16)));
    cudaCheck(cudaMalloc(&pb.stat, (size_t)B * H * T * sizeof(float)));
    cudaCheck(cudaMalloc(&pb.delta, (size_t)B * H * T * sizeof(float)));
    size_t mw = attention_mask_words(B, H, T);
    if (mw) cudaCheck(cudaMalloc(&pb.mask, mw * sizeof(uint32_t)));
    if (materialise) {
        size_t nn = (size_t)B * H * T * T * sizeof(float);
        cudaCheck(cudaMalloc(&pb.S, nn)); cudaCheck(cudaMalloc(&pb.P, nn));
        cudaCheck(cudaMalloc(&pb.dP, nn)); cudaCheck(cudaMalloc(&pb.dS, nn));
    }
    if (h) for (int i = 0; i < 4; i++) h[i] = x[i];
    return pb;
}

static void free_bw(BwProblem& pb) {
    void* ps[] = {pb.q, pb.k, pb.v, pb.o, pb.o2, pb.dout, pb.dq, pb.dk, pb.dv, pb.stat, pb.delta, pb.mask, pb.S, pb.P, pb.dP, pb.dS};
    for (void* p : ps) if (p) cudaFree(p);
}

// fwd + bwd of llmc vs the CPU reference on one small configuration
static void check_one(int B, int T, int H, int D, float alpha, int causal, int* fails) {
    std::vector<float> h[4];
    BwProblem pb = make_bw(B, T, H, D, alpha, causal, false, 100 + T + D, h);
    size_t n = (size_t)B * T * H * D;
    std::vector<float> ro(n), rdq(n), rdk(n), rdv(n);
    attention_reference_cpu(B, T, H, D, alpha, causal, h[0].data(), h[1].data(), h[2].data(), h[3].data(), ro.data(),
                            rdq.data(), rdk.data(), rdv.data());
    for (bf16* p : {pb.o, pb.dq, pb.dk, pb.dv}) cudaCheck(cudaMemset(p, 0xff, n * sizeof(bf16))); // NaN poison
    forward_llmc(pb);
    run_backward(3, pb);
    cudaCheck(cudaDeviceSynchronize());
    printf("check alpha=%.2f D=%d causal=%d B=%d T=%d H=%d\n", alpha, D, causal, B, T, H);
    compare("o", from_device_bf16(pb.o, n), ro, 5e-3, fails);
    compare("dq", from_device_bf16(pb.dq, n), rdq, 1e-2, fails);
    compare("dk", from_device_bf16(pb.dk, n), rdk, 1e-2, fails);
    compare("dv", from_device_bf16(pb.dv, n), rdv, 1e-2, fails);
    free_bw(pb);
}

int main(int argc, char** argv) {
    int fails = 0;
    if (argc > 1 && strcmp(argv[1], "check") == 0) {
        float only_alpha = argc > 2 ? (float)atof(argv[2]) : 0.0f; // optional: one alpha (shorter sanitizer runs)
        for (float alpha : {1.0f, 1.25f, 1.5f, 2.0f})
            if (only_alpha == 0.0f || alpha == only_alpha)
            for (int D : {64, 128})
                for (int causal : {1, 0})
                    for (int T : {1, 77, 200}) check_one(1, T, 2, D, alpha, causal, &fails);
        printf(fails ? "FAILED (%d)\n" : "all checks OK\n", fails);
        return fails ? 1 : 0;
    }
    int only = argc > 1 ? atoi(argv[1]) : 0;
    float alpha = argc > 2 ? (float)atof(argv[2]) : 1.5f;
    int Tbig = argc > 3 ? atoi(argv[3]) : 1024;
    if (!entmax_alpha_is_valid(alpha)) { fprintf(stderr, "error: alpha must be in [1, 2]\n"); return 1; }
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, 0));
    printf("device %s, alpha %.3f\n", prop.name, alpha);
    {
        int B = 1, T = 257, H = 2, D = 64;
        std::vector<float> h[4];
        BwProblem pb = make_bw(B, T, H, D, alpha, 1, true, 5, h);
        size_t n = (size_t)B * T * H * D;
        std::vector<float> ro(n), rdq(n), rdk(n), rdv(n);
        attention_reference_cpu(B, T, H, D, alpha, 1, h[0].data(), h[1].data(), h[2].data(), h[3].data(), ro.data(),
                                rdq.data(), rdk.data(), rdv.data());
        forward_llmc(pb);
        for (int ver = 1; ver <= 3; ver++) {
            if (only && ver != only) continue;
            for (bf16* p : {pb.dq, pb.dk, pb.dv}) cudaCheck(cudaMemset(p, 0xff, n * sizeof(bf16)));
            run_backward(ver, pb);
            cudaCheck(cudaDeviceSynchronize());
            printf("version %d, B=%d T=%d H=%d D=%d vs CPU reference:\n", ver, B, T, H, D);
            compare("dq", from_device_bf16(pb.dq, n), rdq, 1e-2, &fails);
            compare("dk", from_device_bf16(pb.dk, n), rdk, 1e-2, &fails);
            compare("dv", from_device_bf16(pb.dv, n), rdv, 1e-2, &fails);
        }
        free_bw(pb);
    }
    {
        int T = Tbig, B = std::max(1, 8192 / T), H = 12, D = 64;
        BwProblem pb = make_bw(B, T, H, D, alpha, 1, only == 0 || only == 1, 9);
        forward_llmc(pb);
        double flops = 2.5 * 2.0 * B * H * (double)T * T * D; // causal bwd = 2.5x the causal fwd
        printf("timing backward B=%d T=%d H=%d D=%d causal (median):\n", B, T, H, D);
        for (int ver = 1; ver <= 3; ver++) {
            if (only && ver != only) continue;
            float ms = time_median_ms([&]() { run_backward(ver, pb); }, 2, ver == 1 ? 3 : 15);
            printf("  version %d: %8.3f ms  %7.1f TFLOP/s\n", ver, ms, flops / ms / 1e9);
        }
        free_bw(pb);
    }
    printf(fails ? "FAILED (%d)\n" : "all versions OK\n", fails);
    return fails ? 1 : 0;
}
