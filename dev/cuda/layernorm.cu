/*
 Test of llmc/layernorm.cuh: LayerNorm forward, fused residual + LayerNorm forward, LayerNorm backward
 (dinp added into an existing gradient, dweight/dbias added into existing values), against an fp64 CPU
 reference; bitwise determinism of the backward; timings at GPT-2 124M training shape (N = 64*1024, C = 768).

 nvcc -O3 --use_fast_math -std=c++17 -arch=sm_90 dev/cuda/layernorm.cu -o build/dev_layernorm && ./build/dev_layernorm

 Version notes: forward = one warp per row, row cached in shared memory, two-pass variance; backward =
 persistent grid, per-warp shared-memory accumulators, fixed-order two-stage dweight/dbias reduction.
 Memory bound: forward reads N*C and writes N*C bf16 (fused: reads 2, writes 2); backward reads 3 N*C
 (dout, inp, dinp) and writes N*C.
*/
#include "trainer_kernels_common.cuh"
#include "../../llmc/layernorm.cuh"

static void ln_forward_ref(std::vector<float>& out, std::vector<float>& mean, std::vector<float>& rstd,
                           const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b, int N, int C) {
    for (int r = 0; r < N; r++) {
        const float* xr = &x[(size_t)r * C];
        double m = 0; for (int i = 0; i < C; i++) m += xr[i]; m /= C;
        double v = 0; for (int i = 0; i < C; i++) v += (xr[i] - m) * (xr[i] - m); v /= C;
        double s = 1.0 / sqrt(v + 1e-5);
        for (int i = 0; i < C; i++) out[(size_t)r * C + i] = (float)((xr[i] - m) * s * w[i] + b[i]);
        mean[r] = (float)m; rstd[r] = (float)s;
    }
}

int main() {
    const char* T = "layernorm";
    test_seed(2);
    int C = 768;
    int N = 8 * 1024;
    size_t n = (size_t)N * C;
    std::vector<float> a = rand_vec(n, 2.0f), bres = rand_vec(n, 1.0f), w = rand_vec(C, 1.0f), bias = rand_vec(C, 0.5f);
    for (int r = 0; r < N; r++) for (int i = 0; i < C; i++) a[(size_t)r * C + i] += 0.01f * (r % 97); // row offsets
    for (auto& x : w) x += 1.0f;
    round_vec_bf16(a); round_vec_bf16(bres); round_vec_bf16(w); round_vec_bf16(bias);
    floatX *da = to_device_bf16(a), *db = to_device_bf16(bres), *dw = to_device_bf16(w), *dbias = to_device_bf16(bias);
    floatX* dout = (floatX*)cudaMallocOrFail(n * 2, "out");
    floatX* dres = (floatX*)cudaMallocOrFail(n * 2, "res");
    float *dmean = (float*)cudaMallocOrFail(N * 4, "mean"), *drstd = (float*)cudaMallocOrFail(N * 4, "rstd");

    // ---- forward
    std::vector<float> out_ref(n), mean_ref(N), rstd_ref(N);
    ln_forward_ref(out_ref, mean_ref, rstd_ref, a, w, bias, N, C);
    poison_bf16(dout, n); poison_f32(dmean, N); poison_f32(drstd, N);
    layernorm_forward(dout, dmean, drstd, da, dw, dbias, N, C, 0);
    check(T, "forward out", from_device_bf16(dout, n), out_ref, 5e-3, 2e-2, 1e-2);
    check(T, "forward mean", from_device_f32(dmean, N), mean_ref, 1e-5, 1e-5, 1e-4);
    check(T, "forward rstd", from_device_f32(drstd, N), rstd_ref, 1e-5, 1e-5, 1e-4);

    // ---- fused residual forward: residual = bf16(a + b), then LN of the rounded residual
    std::vector<float> res_ref(n);
    for (size_t i = 0; i < n; i++) res_ref[i] = bf16_round(a[i] + bres[i]);
    ln_forward_ref(out_ref, mean_ref, rstd_ref, res_ref, w, bias, N, C);
    poison_bf16(dout, n); poison_bf16(dres, n);
    fused_residual_layernorm_forward(dres, dout, dmean, drstd, da, db, dw, dbias, N, C, 0);
    check(T, "fused residual", from_device_bf16(dres, n), res_ref, 1e-6, 0, 0);
    check(T, "fused ln out", from_device_bf16(dout, n), out_ref, 5e-3, 2e-2, 1e-2);
    check(T, "fused ln rstd", from_device_f32(drstd, N), rstd_ref, 1e-5, 1e-5, 1e-4);

    // ---- backward, on x = res_ref with its mean/rstd from the GPU forward
    std::vector<float> g = rand_vec(n, 1.0f), dinp0 = rand_vec(n, 0.5f), dw0 = rand_vec(C, 0.5f), db0 = rand_vec(C, 0.5f);
    round_vec_bf16(g); round_vec_bf16(dinp0); round_vec_bf16(dw0); round_vec_bf16(db0);
    std::vector<float> mean_gpu = from_device_f32(dmean, N), rstd_gpu = from_device_f32(drstd, N);
    std::vector<double> dw_acc(C, 0.0), db_acc(C, 0.0);
    std::vector<float> dinp_ref(n);
    for (int r = 0; r < N; r++) {
        double m = mean_ref[r], s = rstd_ref[r];
        const float* xr = &res_ref[(size_t)r * C];
        const float* gr = &g[(size_t)r * C];
        double sdn = 0, sdnn = 0;
        for (int i = 0; i < C; i++) { double nn = (xr[i] - m) * s, dn = gr[i] * w[i]; sdn += dn; sdnn += dn * nn; }
        sdn /= C; sdnn /= C;
        for (int i = 0; i < C; i++) {
            double nn = (xr[i] - m) * s, dn = gr[i] * w[i];
            dinp_ref[(size_t)r * C + i] = (float)(dinp0[(size_t)r * C + i] + s * (dn - sdn - nn * sdnn));
            dw_acc[i] += gr[i] * nn; db_acc[i] += gr[i];
        }
    }
    std::vector<float> dw_ref(C), db_ref(C);
    for (int i = 0; i < C; i++) { dw_ref[i] = (float)(dw0[i] + dw_acc[i]); db_ref[i] = (float)(db0[i] + db_acc[i]); }
    floatX *dg = to_device_bf16(g), *ddinp = to_device_bf16(dinp0), *ddw = to_device_bf16(dw0), *ddb = to_device_bf16(db0);
    float* scratch = (float*)cudaMallocOrFail(layernorm_backward_scratch_floats(C) * 4, "scratch");
    layernorm_backward(ddinp, ddw, ddb, scratch, dg, dres, dw, dmean, drstd, N, C, 0);
    std::vector<float> dinp_gpu = from_device_bf16(ddinp, n);
    check(T, "backward dinp (+=)", dinp_gpu, dinp_ref, 5e-3, 3e-2, 1e-2);
    std::vector<uint16_t> dw_bits = bits_from_device(ddw, C), db_bits = bits_from_device(ddb, C);
    check(T, "backward dweight (+=)", from_device_bf16(ddw, C), dw_ref, 5e-3, 0.5, 1e-2);
    check(T, "backward dbias (+=)", from_device_bf16(ddb, C), db_ref, 5e-3, 0.5, 1e-2);
    // determinism: same inputs again -> same bits
    floatX* ddinp2 = to_device_bf16(dinp0);
    cudaCheck(cudaMemcpy(ddw, to_device_bf16(dw0), C * 2, cudaMemcpyDeviceToDevice));
    cudaCheck(cudaMemcpy(ddb, to_device_bf16(db0), C * 2, cudaMemcpyDeviceToDevice));
    layernorm_backward(ddinp2, ddw, ddb, scratch, dg, dres, dw, dmean, drstd, N, C, 0);
    bool same = bits_from_device(ddw, C) == dw_bits && bits_from_device(ddb, C) == db_bits &&
                bits_from_device(ddinp2, n) == bits_from_device(ddinp, n);
    check_true(T, "backward bitwise repeatable", same, "");

    // ---- timing at N = 64*1024
    int NB = 64 * 1024;
    size_t nb = (size_t)NB * C;
    floatX *ta = device_uniform_bf16(nb, 2.0f, 51), *tb = device_uniform_bf16(nb, 1.0f, 52);
    floatX *to = (floatX*)cudaMallocOrFail(nb * 2, "o"), *tr = (floatX*)cudaMallocOrFail(nb * 2, "r");
    floatX* tg = device_uniform_bf16(nb, 1.0f, 53);
    floatX* tdinp = device_uniform_bf16(nb, 0.1f, 54);
    float *tm = (float*)cudaMallocOrFail(NB * 4, "m"), *ts = (float*)cudaMallocOrFail(NB * 4, "s");
    float ms = bench_ms(20, [&] { layernorm_forward(to, tm, ts, ta, dw, dbias, NB, C, 0); });
    report_time(T, "forward N65536 C768", ms, 2.0 * nb * 2);
    ms = bench_ms(20, [&] { fused_residual_layernorm_forward(tr, to, tm, ts, ta, tb, dw, dbias, NB, C, 0); });
    report_time(T, "fused residual fwd N65536 C768", ms, 4.0 * nb * 2);
    ms = bench_ms(20, [&] { layernorm_backward(tdinp, ddw, ddb, scratch, tg, tr, dw, tm, ts, NB, C, 0); });
    report_time(T, "backward N65536 C768", ms, 4.0 * nb * 2);
    return finish(T);
}
