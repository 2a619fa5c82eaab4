/*
 Test of llmc/encoder.cuh: wte+wpe forward; deterministic backward (dwpe by a loop over b, dwte by a GPU radix
 sort of the token ids + chunked segment sums + an ordered merge of cut segments) against an fp64 CPU
 reference. The token stream is skewed on purpose (one token is 20% of all positions, a few more are 1-5%,
 the rest uniform) so that long segments crossing many chunks are exercised.

 nvcc -O3 --use_fast_math -std=c++17 -arch=sm_90 dev/cuda/encoder.cu -o build/dev_encoder && ./build/dev_encoder
*/
#include "trainer_kernels_common.cuh"
#include "../../llmc/encoder.cuh"

static std::vector<int> skewed_tokens(int N, int V) {
    std::vector<int> t(N);
    for (int i = 0; i < N; i++) {
        float u = test_uniform();
        if (u < 0.20f) t[i] = 50256 % V;       // "EOT-like" very frequent
        else if (u < 0.25f) t[i] = 13;         // 5%
        else if (u < 0.28f) t[i] = 262;        // 3%
        else if (u < 0.29f) t[i] = V - 1;      // 1%, the last real id
        else t[i] = (int)(test_u32() % V);
    }
    return t;
}

int main() {
    const char* T_ = "encoder";
    test_seed(3);
    const int V = 50257, Vp = 50304, C = 768, maxT = 1024;
    int B = 8, T = 1024, N = B * T;
    std::vector<float> wte = rand_vec((size_t)Vp * C, 1.0f), wpe = rand_vec((size_t)maxT * C, 1.0f);
    round_vec_bf16(wte); round_vec_bf16(wpe);
    std::vector<int> tok = skewed_tokens(N, V);
    floatX *dwte_p = to_device_bf16(wte), *dwpe_p = to_device_bf16(wpe);
    int* dtok = (int*)cudaMallocOrFail(N * 4, "tok");
    cudaCheck(cudaMemcpy(dtok, tok.data(), N * 4, cudaMemcpyHostToDevice));
    floatX* dout = (floatX*)cudaMallocOrFail((size_t)N * C * 2, "out");
    poison_bf16(dout, (size_t)N * C);
    encoder_forward(dout, dtok, dwte_p, dwpe_p, B, T, C, 0);
    std::vector<float> ref((size_t)N * C);
    for (int r = 0; r < N; r++)
        for (int c = 0; c < C; c++) ref[(size_t)r * C + c] = bf16_round(wte[(size_t)tok[r] * C + c] + wpe[(size_t)(r % T) * C + c]);
    check(T_, "forward", from_device_bf16(dout, (size_t)N * C), ref, 1e-6, 0, 0);

    // backward
    std::vector<float> g = rand_vec((size_t)N * C, 1.0f), gwte0 = rand_vec((size_t)Vp * C, 0.5f), gwpe0 = rand_vec((size_t)maxT * C, 0.5f);
    round_vec_bf16(g); round_vec_bf16(gwte0); round_vec_bf16(gwpe0);
    std::vector<double> awte((size_t)Vp * C, 0.0), awpe((size_t)maxT * C, 0.0);
    for (int r = 0; r < N; r++)
        for (int c = 0; c < C; c++) {
            awte[(size_t)tok[r] * C + c] += g[(size_t)r * C + c];
            awpe[(size_t)(r % T) * C + c] += g[(size_t)r * C + c];
        }
    std::vector<float> rwte((size_t)Vp * C), rwpe((size_t)maxT * C);
    for (size_t i = 0; i < rwte.size(); i++) rwte[i] = (float)(gwte0[i] + awte[i]);
    for (size_t i = 0; i < rwpe.size(); i++) rwpe[i] = (float)(gwpe0[i] + awpe[i]);
    floatX *dg = to_device_bf16(g), *dgwte = to_device_bf16(gwte0), *dgwpe = to_device_bf16(gwpe0);
    EncoderBackwardScratch s;
    encoder_backward_scratch_init(&s, 64 * 1024, C, Vp);
    encoder_backward(dgwte, dgwpe, &s, dg, dtok, B, T, C, 0);
    std::vector<uint16_t> bits1 = bits_from_device(dgwte, (size_t)Vp * C);
    check(T_, "backward dwte (+=, skewed tokens)", from_device_bf16(dgwte, (size_t)Vp * C), rwte, 5e-3, 2e-2, 1e-2);
    check(T_, "backward dwpe (+=)", from_device_bf16(dgwpe, (size_t)maxT * C), rwpe, 5e-3, 2e-2, 1e-2);
    floatX* dgwte2 = to_device_bf16(gwte0);
    encoder_backward(dgwte2, dgwpe, &s, dg, dtok, B, T, C, 0);
    check_true(T_, "backward dwte bitwise repeatable", bits_from_device(dgwte2, (size_t)Vp * C) == bits1, "");

    // timing at B=64, T=1024 (skewed tokens)
    int BB = 64, NB = BB * T;
    std::vector<int> tb = skewed_tokens(NB, V);
    int* dtb = (int*)cudaMallocOrFail(NB * 4, "tok");
    cudaCheck(cudaMemcpy(dtb, tb.data(), NB * 4, cudaMemcpyHostToDevice));
    floatX* ob = (floatX*)cudaMallocOrFail((size_t)NB * C * 2, "o");
    floatX* gb = to_device_bf16(rand_vec((size_t)NB * C, 1.0f));
    float ms = bench_ms(20, [&] { encoder_forward(ob, dtb, dwte_p, dwpe_p, BB, T, C, 0); });
    report_time(T_, "forward B64 T1024", ms, 2.0 * NB * C * 2);
    ms = bench_ms(20, [&] { encoder_backward(dgwte, dgwpe, &s, gb, dtb, BB, T, C, 0); });
    report_time(T_, "backward B64 T1024 (sort+wte+wpe)", ms, 2.0 * NB * C * 2);
    return finish(T_);
}
