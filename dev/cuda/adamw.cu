/*
 Test of llmc/adamw.cuh: two fused AdamW steps against an fp64 CPU reference (m, v, fp32 master weights),
 the stochastic rounding of the bf16 parameters (each within one bf16 step of the fp32 value, unbiased on
 average, same seed -> same bits, other seed -> other bits), the -w 0 path (no master copy), the device-side
 clip factor; timing over a GPT-2 124M-sized tensor (124,475,904 parameters).

 nvcc -O3 --use_fast_math -std=c++17 -arch=sm_90 dev/cuda/adamw.cu -o build/dev_adamw && ./build/dev_adamw

 Memory bound: with master weights it reads grad+param (4 B) + m, v, master (12 B) and writes param (2 B) +
 m, v, master (12 B): 30 bytes per parameter.
*/
#include "trainer_kernels_common.cuh"
#include "../../llmc/adamw.cuh"

int main() {
    const char* T = "adamw";
    test_seed(5);
    size_t n = (size_t)4 * 1024 * 1024 + 8 * 37;
    const float lr = 1e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, clip_scale = 0.5f;
    std::vector<float> p0 = rand_vec(n, 0.1f), g1 = rand_vec(n, 1.0f), g2 = rand_vec(n, 1.0f);
    round_vec_bf16(p0); round_vec_bf16(g1); round_vec_bf16(g2);
    // reference: two steps in double, grads scaled by clip_scale
    std::vector<double> rm(n, 0), rv(n, 0), rp(p0.begin(), p0.end());
    for (int t = 1; t <= 2; t++) {
        const std::vector<float>& g = t == 1 ? g1 : g2;
        double b1c = 1 - pow(b1, t), b2c = 1 - pow(b2, t);
        for (size_t i = 0; i < n; i++) {
            double gi = (double)g[i] * clip_scale;
            rm[i] = b1 * rm[i] + (1 - b1) * gi;
            rv[i] = b2 * rv[i] + (1 - b2) * gi * gi;
            rp[i] -= lr * ((rm[i] / b1c) / (sqrt(rv[i] / b2c) + eps) + wd * rp[i]);
        }
    }
    floatX* dp = to_device_bf16(p0);
    floatX* dg = to_device_bf16(g1);
    float* dmaster = (float*)cudaMallocOrFail(n * 4, "master");
    float* dm = (float*)cudaMallocOrFail(n * 4, "m");
    float* dv = (float*)cudaMallocOrFail(n * 4, "v");
    cudaCheck(cudaMemset(dm, 0, n * 4)); cudaCheck(cudaMemset(dv, 0, n * 4));
    float* dscale = to_device_f32(std::vector<float>{clip_scale});
    init_master_weights(dmaster, dp, n, 0);
    for (int t = 1; t <= 2; t++) {
        if (t == 2) cudaCheck(cudaMemcpy(dg, to_device_bf16(g2), n * 2, cudaMemcpyDeviceToDevice));
        AdamWStep s = {lr, b1, b2, eps, (float)(1 - pow(b1, t)), (float)(1 - pow(b2, t))};
        adamw_update(dp, dmaster, dg, dm, dv, n, &s, wd, dscale, 1000u + t, 0);
    }
    std::vector<float> fm(rm.begin(), rm.end()), fv(rv.begin(), rv.end()), fp(rp.begin(), rp.end());
    std::vector<float> master = from_device_f32(dmaster, n);
    check(T, "m after 2 steps", from_device_f32(dm, n), fm, 1e-5, 1e-7, 1e-4);
    check(T, "v after 2 steps", from_device_f32(dv, n), fv, 1e-5, 1e-9, 1e-4);
    check(T, "fp32 master after 2 steps", master, fp, 1e-5, 1e-6, 1e-4);
    // stochastic rounding: every bf16 param is one of the two bf16 neighbours of the master value
    std::vector<float> pb = from_device_bf16(dp, n);
    size_t off = 0; double bias = 0, absdiff = 0;
    for (size_t i = 0; i < n; i++) {
        float lo = bf16_round(master[i]), x = master[i];
        // neighbours: truncation toward zero and one step up in magnitude
        uint32_t u; memcpy(&u, &x, 4); u &= 0xffff0000u; float t0; memcpy(&t0, &u, 4);
        uint32_t u1 = u + 0x10000u; float t1; memcpy(&t1, &u1, 4);
        if (pb[i] != t0 && pb[i] != t1) off++;
        bias += (double)pb[i] - x; absdiff += fabs((double)pb[i] - x);
        (void)lo;
    }
    char buf[160];
    snprintf(buf, sizeof buf, "off=%zu mean(bf16-fp32)/mean|.|=%.3e", off, bias / absdiff);
    check_true(T, "stochastic rounding neighbours+bias", off == 0 && fabs(bias / absdiff) < 0.01, buf);
    // determinism of the rounding: redo step 2's rounding with the same seed from the same state
    {
        floatX* dp2 = to_device_bf16(p0);
        float *m2 = (float*)cudaMallocOrFail(n * 4, "m2"), *v2 = (float*)cudaMallocOrFail(n * 4, "v2"), *ma2 = (float*)cudaMallocOrFail(n * 4, "ma2");
        cudaCheck(cudaMemset(m2, 0, n * 4)); cudaCheck(cudaMemset(v2, 0, n * 4));
        init_master_weights(ma2, dp2, n, 0);
        floatX* dg1 = to_device_bf16(g1);
        floatX* dg2 = to_device_bf16(g2);
        AdamWStep s1 = {lr, b1, b2, eps, (float)(1 - pow(b1, 1)), (float)(1 - pow(b2, 1))};
        AdamWStep s2 = {lr, b1, b2, eps, (float)(1 - pow(b1, 2)), (float)(1 - pow(b2, 2))};
        adamw_update(dp2, ma2, dg1, m2, v2, n, &s1, wd, dscale, 1001u, 0);
        adamw_update(dp2, ma2, dg2, m2, v2, n, &s2, wd, dscale, 1002u, 0);
        bool same = bits_from_device(dp2, n) == bits_from_device(dp, n);
        // another seed at step 2 -> many bits differ
        cudaCheck(cudaMemset(m2, 0, n * 4)); cudaCheck(cudaMemset(v2, 0, n * 4));
        cudaCheck(cudaMemcpy(dp2, to_device_bf16(p0), n * 2, cudaMemcpyDeviceToDevice));
        init_master_weights(ma2, dp2, n, 0);
        adamw_update(dp2, ma2, dg1, m2, v2, n, &s1, wd, dscale, 1001u, 0);
        adamw_update(dp2, ma2, dg2, m2, v2, n, &s2, wd, dscale, 777u, 0);
        std::vector<uint16_t> a = bits_from_device(dp2, n), b = bits_from_device(dp, n);
        size_t diff = 0; for (size_t i = 0; i < n; i++) diff += a[i] != b[i];
        snprintf(buf, sizeof buf, "same_seed_identical=%d other_seed_diff=%.1f%%", (int)same, 100.0 * diff / n);
        check_true(T, "rounding seeds deterministic", same && diff > n / 20, buf);
    }
    // -w 0: parameters read back from bf16 each step; one step from p0
    {
        floatX* dp3 = to_device_bf16(p0);
        float *m3 = (float*)cudaMallocOrFail(n * 4, "m3"), *v3 = (float*)cudaMallocOrFail(n * 4, "v3");
        cudaCheck(cudaMemset(m3, 0, n * 4)); cudaCheck(cudaMemset(v3, 0, n * 4));
        floatX* dg1 = to_device_bf16(g1);
        AdamWStep s1 = {lr, b1, b2, eps, (float)(1 - pow(b1, 1)), (float)(1 - pow(b2, 1))};
        adamw_update(dp3, NULL, dg1, m3, v3, n, &s1, wd, NULL, 5u, 0);
        std::vector<float> ref(n);
        for (size_t i = 0; i < n; i++) {
            double gi = g1[i], m = (1 - b1) * gi, v = (1 - b2) * gi * gi;
            ref[i] = (float)(p0[i] - lr * ((m / (1 - b1)) / (sqrt(v / (1 - b2)) + eps) + wd * p0[i]));
        }
        check(T, "no master (-w 0), 1 step", from_device_bf16(dp3, n), ref, 5e-3, 1e-6, 8e-3);
    }

    // timing over 124,475,904 parameters with master weights
    size_t N = 124475904;
    floatX* P = device_uniform_bf16(N, 0.1f, 41);
    floatX* G = device_uniform_bf16(N, 1.0f, 42);
    float* Mw = (float*)cudaMallocOrFail(N * 4, "M");
    float* Mm = to_device_f32(rand_vec(N, 0.01f));
    std::vector<float> hv = rand_vec(N, 0.01f);
    for (auto& x : hv) x = fabsf(x); // v >= 0
    float* Mv = to_device_f32(hv);
    init_master_weights(Mw, P, N, 0);
    AdamWStep s = {lr, b1, b2, eps, 0.5f, 0.5f};
    float ms = bench_ms(20, [&] { adamw_update(P, Mw, G, Mm, Mv, N, &s, wd, dscale, 9u, 0); });
    report_time(T, "124M params, master weights", ms, 30.0 * N);
    return finish(T);
}
