/*
 Test of llmc/matmul.cuh (cuBLASLt linear layers with cached plans, GELU epilogues, bias gradient) against an
 fp64 CPU reference, and timings of every GPT-2 124M matmul at B*T = 65536.

 nvcc -O3 --use_fast_math -std=c++17 -arch=sm_90 dev/cuda/matmul.cu -lcublasLt -o build/dev_matmul && ./build/dev_matmul

 Versions compared:
   GELU   : separate gelu kernel after the bias epilogue   vs  fused GELU_AUX_BIAS / DGELU epilogues
   dbias  : 1 = column-reduction kernel (fixed grid, ordered)  vs  2 = cuBLASLt BGRADB epilogue (fp32 vector)
 Validation covers: forward (+bias), forward with GELU (pre-activation and output), backward dinp (with and
 without GELU backward), dweight accumulated into existing values (beta = 1), dbias accumulated, bitwise
 repeatability of dweight/dbias.
*/
#include "trainer_kernels_common.cuh"
#include "../../llmc/matmul.cuh"

static double gelu_d(double x) { return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }
static double gelu_grad_d(double x) {
    double u = 0.7978845608028654 * (x + 0.044715 * x * x * x), th = tanh(u);
    return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x);
}

int main() {
    const char* T = "matmul";
    test_seed(7);
    matmul_setup();
    const int BT = 256, C = 768, OC = 3072;
    std::vector<float> x = rand_vec((size_t)BT * C, 1.0f), w = rand_vec((size_t)OC * C, 0.05f), b = rand_vec(OC, 0.5f);
    std::vector<float> dy = rand_vec((size_t)BT * OC, 1.0f), dw0 = rand_vec((size_t)OC * C, 0.5f), db0 = rand_vec(OC, 0.5f);
    round_vec_bf16(x); round_vec_bf16(w); round_vec_bf16(b); round_vec_bf16(dy); round_vec_bf16(dw0); round_vec_bf16(db0);
    // reference
    std::vector<float> pre((size_t)BT * OC), act((size_t)BT * OC), dx((size_t)BT * C), dxg((size_t)BT * C), dwr((size_t)OC * C), dbr(OC);
    for (int r = 0; r < BT; r++)
        for (int o = 0; o < OC; o++) {
            double s = b[o];
            for (int c = 0; c < C; c++) s += (double)x[(size_t)r * C + c] * w[(size_t)o * C + c];
            pre[(size_t)r * OC + o] = (float)s;
            act[(size_t)r * OC + o] = (float)gelu_d(s);
        }
    // backward of a layer whose input is x (BT, C) and output dy (BT, OC); for the DGELU check we use the
    // transposed role: dinp (BT, C) *= gelu'(aux) with aux = some (BT, C) tensor (x itself scaled)
    std::vector<float> aux = rand_vec((size_t)BT * C, 3.0f);
    round_vec_bf16(aux);
    for (int r = 0; r < BT; r++)
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int o = 0; o < OC; o++) s += (double)dy[(size_t)r * OC + o] * w[(size_t)o * C + c];
            dx[(size_t)r * C + c] = (float)s;
            dxg[(size_t)r * C + c] = (float)(bf16_round((float)s) * gelu_grad_d(aux[(size_t)r * C + c]));
        }
    for (int o = 0; o < OC; o++) {
        double sb = db0[o];
        for (int r = 0; r < BT; r++) sb += dy[(size_t)r * OC + o];
        dbr[o] = (float)sb;
        for (int c = 0; c < C; c++) {
            double s = dw0[(size_t)o * C + c];
            for (int r = 0; r < BT; r++) s += (double)dy[(size_t)r * OC + o] * x[(size_t)r * C + c];
            dwr[(size_t)o * C + c] = (float)s;
        }
    }
    floatX *dX = to_device_bf16(x), *dW = to_device_bf16(w), *dB = to_device_bf16(b), *dDY = to_device_bf16(dy), *dAUX = to_device_bf16(aux);
    floatX* dOut = (floatX*)cudaMallocOrFail((size_t)BT * OC * 2, "out");
    floatX* dPre = (floatX*)cudaMallocOrFail((size_t)BT * OC * 2, "pre");
    floatX* dDX = (floatX*)cudaMallocOrFail((size_t)BT * C * 2, "dx");

    poison_bf16(dOut, (size_t)BT * OC);
    matmul_forward(dOut, NULL, dX, dW, dB, BT, C, OC, false, 0);
    check(T, "forward + bias", from_device_bf16(dOut, (size_t)BT * OC), pre, 5e-3, 2e-2, 1e-2);
    for (int fuse = 0; fuse < 2; fuse++) {
        poison_bf16(dOut, (size_t)BT * OC); poison_bf16(dPre, (size_t)BT * OC);
        matmul_forward(dOut, dPre, dX, dW, dB, BT, C, OC, fuse != 0, 0);
        check(T, fuse ? "forward GELU fused: pre" : "forward GELU kernel: pre", from_device_bf16(dPre, (size_t)BT * OC), pre, 5e-3, 2e-2, 1e-2);
        check(T, fuse ? "forward GELU fused: out" : "forward GELU kernel: out", from_device_bf16(dOut, (size_t)BT * OC), act, 5e-3, 2e-2, 1e-2);
    }
    for (int mode = 1; mode <= 2; mode++) {
        matmul_set_bias_grad_mode(mode);
        floatX *gW = to_device_bf16(dw0), *gB = to_device_bf16(db0);
        poison_bf16(dDX, (size_t)BT * C);
        matmul_backward(dDX, gW, gB, dDY, dX, dW, NULL, BT, C, OC, false, 0);
        char what[64];
        check(T, "backward dinp", from_device_bf16(dDX, (size_t)BT * C), dx, 5e-3, 2e-2, 1e-2);
        snprintf(what, sizeof what, "backward dweight (+=) bias mode %d", mode);
        check(T, what, from_device_bf16(gW, (size_t)OC * C), dwr, 5e-3, 5e-2, 1e-2);
        snprintf(what, sizeof what, "backward dbias (+=) mode %d", mode);
        check(T, what, from_device_bf16(gB, OC), dbr, 5e-3, 5e-2, 1e-2);
        std::vector<uint16_t> bw = bits_from_device(gW, (size_t)OC * C), bb = bits_from_device(gB, OC);
        cudaCheck(cudaMemcpy(gW, to_device_bf16(dw0), (size_t)OC * C * 2, cudaMemcpyDeviceToDevice));
        cudaCheck(cudaMemcpy(gB, to_device_bf16(db0), OC * 2, cudaMemcpyDeviceToDevice));
        matmul_backward(dDX, gW, gB, dDY, dX, dW, NULL, BT, C, OC, false, 0);
        snprintf(what, sizeof what, "dweight/dbias repeatable mode %d", mode);
        if (mode == 2) printf("bias mode 2 used: %s\n", g_mm.bgradb_type == 1 ? "BGRADB fp32" : g_mm.bgradb_type == 2 ? "BGRADB bf16" : "kernel fallback");
        check_true(T, what, bits_from_device(gW, (size_t)OC * C) == bw && bits_from_device(gB, OC) == bb, "");
    }
    for (int fuse = 0; fuse < 2; fuse++) {
        floatX *gW = to_device_bf16(dw0), *gB = to_device_bf16(db0);
        poison_bf16(dDX, (size_t)BT * C);
        matmul_backward(dDX, gW, gB, dDY, dX, dW, dAUX, BT, C, OC, fuse != 0, 0);
        check(T, fuse ? "backward dinp, DGELU fused" : "backward dinp, GELU bwd kernel", from_device_bf16(dDX, (size_t)BT * C), dxg, 1e-2, 3e-2, 2e-2);
    }

    // ---------------- timings at B*T = 65536, GPT-2 124M shapes
    const int N = 65536, Vp = 50304;
    struct Shape { const char* name; int C, OC; bool gelu; };
    Shape shapes[] = {{"qkv 768->2304", 768, 2304, false}, {"attproj 768->768", 768, 768, false},
                      {"fc 768->3072", 768, 3072, true}, {"fcproj 3072->768", 3072, 768, false},
                      {"lm_head 768->50304", 768, Vp, false}};
    size_t maxin = (size_t)N * 3072, maxout = (size_t)N * Vp;
    floatX* I = device_uniform_bf16(maxin, 1.0f, 11);
    floatX* O = device_uniform_bf16(maxout, 1.0f, 12); // also used as dout
    floatX* P = (floatX*)cudaMallocOrFail((size_t)N * 3072 * 2, "pre");
    floatX* DI = (floatX*)cudaMallocOrFail(maxin * 2, "dinp");
    floatX* Wt = device_uniform_bf16((size_t)Vp * 768, 0.02f, 13);
    floatX* DWt = device_uniform_bf16((size_t)Vp * 768, 0.01f, 14);
    floatX* Bi = device_uniform_bf16(Vp, 0.1f, 15);
    floatX* DBi = device_uniform_bf16(Vp, 0.01f, 16);
    floatX* AUX = device_uniform_bf16((size_t)N * 3072, 2.0f, 17);
    char what[96];
    double total_fwd = 0, total_bwd = 0;
    for (const Shape& s : shapes) {
        double flops = 2.0 * N * s.C * s.OC;
        bool lm = s.OC == Vp;
        const floatX* bias = lm ? NULL : Bi;
        float ms;
        if (s.gelu) {
            float t0 = bench_ms(10, [&] { matmul_forward(O, P, I, Wt, bias, N, s.C, s.OC, false, 0); });
            float t1 = bench_ms(10, [&] { matmul_forward(O, P, I, Wt, bias, N, s.C, s.OC, true, 0); });
            snprintf(what, sizeof what, "fwd %s +gelu kernel", s.name); report_time(T, what, t0, 0, flops);
            snprintf(what, sizeof what, "fwd %s +gelu fused", s.name); report_time(T, what, t1, 0, flops);
            ms = std::min(t0, t1);
        } else {
            ms = bench_ms(10, [&] { matmul_forward(O, NULL, I, Wt, bias, N, s.C, s.OC, false, 0); });
            snprintf(what, sizeof what, "fwd %s", s.name); report_time(T, what, ms, 0, flops);
        }
        total_fwd += ms * (lm ? 1 : 12);
        // backward
        float best = 1e30f;
        for (int mode = 1; mode <= (lm ? 1 : 2); mode++) {
            matmul_set_bias_grad_mode(mode);
            float t = bench_ms(10, [&] { matmul_backward(DI, DWt, lm ? NULL : DBi, O, I, Wt, NULL, N, s.C, s.OC, false, 0); });
            snprintf(what, sizeof what, "bwd %s%s", s.name, lm ? "" : (mode == 1 ? " dbias kernel" : g_mm.bgradb_type == 1 ? " BGRADB fp32" : g_mm.bgradb_type == 2 ? " BGRADB bf16" : " BGRADB n/a->kernel"));
            report_time(T, what, t, 0, 2 * flops);
            best = std::min(best, t);
        }
        if (s.C == 3072) { // fcproj backward: its dinp goes through the GELU backward
            matmul_set_bias_grad_mode(1);
            float t0 = bench_ms(10, [&] { matmul_backward(DI, DWt, DBi, O, I, Wt, AUX, N, s.C, s.OC, false, 0); });
            float t1 = bench_ms(10, [&] { matmul_backward(DI, DWt, DBi, O, I, Wt, AUX, N, s.C, s.OC, true, 0); });
            snprintf(what, sizeof what, "bwd %s +gelu bwd kernel", s.name); report_time(T, what, t0, 0, 2 * flops);
            snprintf(what, sizeof what, "bwd %s +DGELU fused", s.name); report_time(T, what, t1, 0, 2 * flops);
            best = std::min(t0, t1);
        }
        total_bwd += best * (lm ? 1 : 12);
    }
    matmul_set_bias_grad_mode(1);
    // the bias-grad kernel alone on the largest shape
    float tb = bench_ms(10, [&] { bias_grad(DBi, O, N, 3072, 0); });
    report_time(T, "bias_grad kernel alone OC=3072", tb, (double)N * 3072 * 2);
    printf("RESULT %-16s %-34s fwd_ms=%.2f bwd_ms=%.2f (12 layers + lm_head, best variants)\n", T, "d12 B64 T1024 matmul total",
           total_fwd, total_bwd);
    printf("matmul plans cached: %d\n", g_mm.nplans);
    matmul_teardown();
    return finish(T);
}
