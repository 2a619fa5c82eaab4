/*
 Test of llmc/gelu.cuh: tanh GELU forward and in-place backward against an fp64 CPU reference.

 nvcc -O3 --use_fast_math -std=c++17 -arch=sm_90 dev/cuda/gelu.cu -o build/dev_gelu && ./build/dev_gelu

 Only one version: elementwise, 16-byte loads/stores, one x128 per thread. It is memory bound; the bound is
 bytes / copy bandwidth (forward: read n + write n bf16; backward: read 2n + write n).
*/
#include "trainer_kernels_common.cuh"
#include "../../llmc/gelu.cuh"

static double gelu_ref(double x) { return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }
static double gelu_grad_ref(double x) {
    double u = 0.7978845608028654 * (x + 0.044715 * x * x * x), th = tanh(u);
    return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x);
}

int main() {
    const char* T = "gelu";
    test_seed(1);
    // validation at B=8,T=1024,4C=3072
    size_t n = (size_t)8 * 1024 * 3072;
    std::vector<float> x = rand_vec(n, 4.0f), d = rand_vec(n, 1.0f);
    round_vec_bf16(x); round_vec_bf16(d);
    floatX* dx = to_device_bf16(x);
    floatX* dd = to_device_bf16(d);
    floatX* dy = (floatX*)cudaMallocOrFail(n * 2, "y");
    poison_bf16(dy, n);
    gelu_forward(dy, dx, n, 0);
    std::vector<float> y = from_device_bf16(dy, n), yref(n), gref(n);
    for (size_t i = 0; i < n; i++) { yref[i] = (float)gelu_ref(x[i]); gref[i] = (float)(gelu_grad_ref(x[i]) * d[i]); }
    check(T, "forward", y, yref, 5e-3, 1e-2, 8e-3);
    gelu_backward_inplace(dd, dx, n, 0);
    std::vector<float> g = from_device_bf16(dd, n);
    check(T, "backward (in place)", g, gref, 5e-3, 1e-2, 8e-3);
    cudaFree(dx); cudaFree(dd); cudaFree(dy);

    // timing at B=64,T=1024,4C=3072
    size_t N = (size_t)64 * 1024 * 3072;
    floatX* bx = device_uniform_bf16(N, 3.0f, 31);
    floatX* bd = device_uniform_bf16(N, 1.0f, 32);
    floatX* bd0 = device_uniform_bf16(N, 1.0f, 33);
    floatX* by = (floatX*)cudaMallocOrFail(N * 2, "y");
    float ms = bench_ms(20, [&] { gelu_forward(by, bx, N, 0); });
    report_time(T, "forward B64 T1024 4C3072", ms, 2.0 * N * 2);
    ms = bench_ms_setup(20, [&] { cudaCheck(cudaMemcpyAsync(bd, bd0, N * 2, cudaMemcpyDeviceToDevice, 0)); },
                        [&] { gelu_backward_inplace(bd, bx, N, 0); });
    report_time(T, "backward B64 T1024 4C3072", ms, 3.0 * N * 2);
    return finish(T);
}
