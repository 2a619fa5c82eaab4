/*
 Test of llmc/fused_classifier.cuh: softmax + cross-entropy + in-place dlogits against an fp64 CPU reference
 (losses added into existing values, padded columns zeroed, ignored targets, eval mode leaves the logits
 alone), bitwise repeatability, and timing at GPT-2 124M shape (N = 64*1024 rows, Vp = 50304).

 nvcc -O3 --use_fast_math -std=c++17 -arch=sm_90 dev/cuda/fused_classifier.cu -o build/dev_fused_classifier && ./build/dev_fused_classifier

 Memory bound: the floor is one read and one write of N*Vp bf16 (the second read of a row hits L2).
*/
#include "trainer_kernels_common.cuh"
#include "../../llmc/fused_classifier.cuh"

int main() {
    const char* T = "fused_classifier";
    test_seed(4);
    const int V = 50257, Vp = 50304;
    int N = 2048;
    size_t n = (size_t)N * Vp;
    std::vector<float> lg(n);
    for (size_t i = 0; i < n; i++) lg[i] = 2.0f * test_normal();
    for (int r = 0; r < N; r++) for (int j = V; j < Vp; j++) lg[(size_t)r * Vp + j] = 0.0f; // padded (as the matmul makes them: wte rows are 0)
    round_vec_bf16(lg);
    std::vector<int> tgt(N);
    for (int r = 0; r < N; r++) tgt[r] = (int)(test_u32() % V);
    tgt[5] = V - 1; tgt[6] = 0; tgt[7] = -1; // edges + an ignored position
    std::vector<float> loss0 = rand_vec(N, 1.0f);
    const float dloss = 1.0f / 3.0f;

    std::vector<float> loss_ref(N), dl_ref(n);
    for (int r = 0; r < N; r++) {
        const float* x = &lg[(size_t)r * Vp];
        double M = -1e30; for (int j = 0; j < V; j++) M = std::max(M, (double)x[j]);
        double S = 0; for (int j = 0; j < V; j++) S += exp(x[j] - M);
        loss_ref[r] = tgt[r] >= 0 ? (float)(loss0[r] + log(S) + M - x[tgt[r]]) : loss0[r];
        for (int j = 0; j < Vp; j++) {
            double g = j < V && tgt[r] >= 0 ? (exp(x[j] - M) / S - (j == tgt[r] ? 1.0 : 0.0)) * dloss : 0.0;
            dl_ref[(size_t)r * Vp + j] = (float)g;
        }
    }
    floatX* dlg = to_device_bf16(lg);
    float* dlosses = to_device_f32(loss0);
    int* dt = (int*)cudaMallocOrFail(N * 4, "t");
    cudaCheck(cudaMemcpy(dt, tgt.data(), N * 4, cudaMemcpyHostToDevice));

    // eval mode: losses only, logits untouched
    std::vector<uint16_t> before = bits_from_device(dlg, n);
    fused_classifier(dlg, dlosses, dt, dloss, N, V, Vp, false, 0);
    check(T, "eval losses (+=)", from_device_f32(dlosses, N), loss_ref, 1e-5, 1e-4, 1e-5);
    check_true(T, "eval leaves logits unchanged", bits_from_device(dlg, n) == before, "");

    // training mode
    cudaCheck(cudaMemcpy(dlosses, loss0.data(), N * 4, cudaMemcpyHostToDevice));
    fused_classifier(dlg, dlosses, dt, dloss, N, V, Vp, true, 0);
    std::vector<float> l1 = from_device_f32(dlosses, N);
    check(T, "train losses (+=)", l1, loss_ref, 1e-5, 1e-4, 1e-5);
    std::vector<float> dl = from_device_bf16(dlg, n);
    check(T, "train dlogits (in place)", dl, dl_ref, 5e-3, 1e-6, 1e-2);
    double pad = 0; for (int r = 0; r < N; r++) for (int j = V; j < Vp; j++) pad += fabs(dl[(size_t)r * Vp + j]);
    check_true(T, "padded columns are exactly 0", pad == 0.0, "");
    // repeatability
    floatX* dlg2 = to_device_bf16(lg);
    cudaCheck(cudaMemcpy(dlosses, loss0.data(), N * 4, cudaMemcpyHostToDevice));
    fused_classifier(dlg2, dlosses, dt, dloss, N, V, Vp, true, 0);
    check_true(T, "bitwise repeatable", bits_from_device(dlg2, n) == bits_from_device(dlg, n) && from_device_f32(dlosses, N) == l1, "");
    cudaFree(dlg); cudaFree(dlg2);

    // timing at N = 64*1024
    int NB = 64 * 1024;
    size_t nb = (size_t)NB * Vp;
    floatX* src = (floatX*)cudaMallocOrFail(nb * 2, "src");
    floatX* work = (floatX*)cudaMallocOrFail(nb * 2, "work");
    cudaCheck(cudaFree(src));
    src = device_uniform_bf16(nb, 4.0f, 21);
    std::vector<int> tb(NB);
    for (int r = 0; r < NB; r++) tb[r] = (int)(test_u32() % V);
    int* dtb = (int*)cudaMallocOrFail(NB * 4, "t");
    cudaCheck(cudaMemcpy(dtb, tb.data(), NB * 4, cudaMemcpyHostToDevice));
    float* lb = (float*)cudaMallocOrFail(NB * 4, "l");
    cudaCheck(cudaMemset(lb, 0, NB * 4));
    float ms = bench_ms_setup(10, [&] { cudaCheck(cudaMemcpyAsync(work, src, nb * 2, cudaMemcpyDeviceToDevice, 0)); },
                              [&] { fused_classifier(work, lb, dtb, 1.0f / NB, NB, V, Vp, true, 0); });
    report_time(T, "train N65536 Vp50304", ms, 2.0 * nb * 2);
    ms = bench_ms(10, [&] { fused_classifier(src, lb, dtb, 1.0f / NB, NB, V, Vp, false, 0); });
    report_time(T, "eval N65536 Vp50304", ms, 1.0 * nb * 2);
    return finish(T);
}
