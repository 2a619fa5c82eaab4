/*
 Test of llmc/global_norm.cuh: deterministic global gradient norm and clip factor vs an fp64 CPU reference,
 bitwise repeatability, a ragged size (n % 8 != 0), timing over 124,475,904 bf16 gradients.

 nvcc -O3 --use_fast_math -std=c++17 -arch=sm_90 dev/cuda/global_norm.cu -o build/dev_global_norm && ./build/dev_global_norm

 Memory bound: reads 2 bytes per parameter.
*/
#include "trainer_kernels_common.cuh"
#include "../../llmc/global_norm.cuh"

int main() {
    const char* T = "global_norm";
    test_seed(6);
    size_t N = 124475904;
    std::vector<float> g = rand_vec(N, 1e-3f);
    round_vec_bf16(g);
    floatX* dg = to_device_bf16(g);
    float* partials = (float*)cudaMallocOrFail(global_norm_num_partials() * 4, "partials");
    float* out = (float*)cudaMallocOrFail(8, "out");
    char buf[200];
    for (size_t n : {N, N - 5}) {
        double sq = 0; for (size_t i = 0; i < n; i++) sq += (double)g[i] * g[i];
        double norm = sqrt(sq);
        global_norm(out, partials, dg, n, 1.0f, 0);
        std::vector<float> o = from_device_f32(out, 2);
        global_norm(out, partials, dg, n, 1.0f, 0);
        std::vector<float> o2 = from_device_f32(out, 2);
        double want_scale = norm > 1.0 ? 1.0 / norm : 1.0;
        snprintf(buf, sizeof buf, "n=%zu norm gpu %.7g ref %.7g rel %.1e scale %.6g/%.6g repeat=%d", n, o[0], norm,
                 fabs(o[0] - norm) / norm, o[1], want_scale, (int)(o == o2));
        check_true(T, "norm + clip scale", fabs(o[0] - norm) / norm < 1e-5 && fabs(o[1] - want_scale) / want_scale < 1e-5 && o == o2, buf);
    }
    // clip actually active: scale the grads up
    std::vector<float> big(g.begin(), g.begin() + 1000000);
    for (auto& x : big) x *= 1000.0f;
    round_vec_bf16(big);
    floatX* db = to_device_bf16(big);
    double sq = 0; for (float x : big) sq += (double)x * x;
    global_norm(out, partials, db, big.size(), 1.0f, 0);
    std::vector<float> o = from_device_f32(out, 2);
    snprintf(buf, sizeof buf, "norm %.6g scale %.6g want %.6g", o[0], o[1], 1.0 / sqrt(sq));
    check_true(T, "clip scale when norm > 1", fabs(o[1] * sqrt(sq) - 1.0) < 1e-5, buf);

    float ms = bench_ms(20, [&] { global_norm(out, partials, dg, N, 1.0f, 0); });
    report_time(T, "124M bf16 grads", ms, 2.0 * N);
    return finish(T);
}
