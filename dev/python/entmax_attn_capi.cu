/*
 entmax_attn_capi.cu: a small C ABI over llmc/attention.cuh, built as build/libentmax_attn.so and used through
 ctypes by dev/python/entmax_attention.py (tests, benchmark).

   nvcc -O3 -arch=sm_90 -std=c++17 -Xcompiler -fPIC -shared -I. dev/python/entmax_attn_capi.cu -o build/libentmax_attn.so

 All tensors are device pointers described by AttnTensor (bf16, element (b,t,h,d) at ptr[b*sb + t*st + h*sh + d]);
 see AttnArgs in llmc/attention.cuh for every field. Functions return 0 or an ATTN_ERR_* code
 (ea_strerror gives the message). `stream` is a cudaStream_t (NULL = the legacy default stream).

   int    ea_forward(const AttnArgs* args, void* stream)
   int    ea_backward(const AttnArgs* args, void* stream)
   size_t ea_mask_words(int B, int H, int T)          words of the tile mask (0: pass mask = NULL)
   unsigned long long ea_tile_count(int B, int H, int T, int causal)   denominator of the skipped fraction
   int    ea_default_niter(float alpha)
   const char* ea_strerror(int code)
   int    ea_sizeof_args(void)                        sizeof(AttnArgs), to check the ctypes mirror
   void   ea_reference_cpu(...)                       float CPU reference (entmax.h), see below
*/
#include "llmc/attention.cuh"
#include <stdlib.h>

extern "C" {

int ea_forward(const AttnArgs* args, void* stream) { return attention_forward(args, (cudaStream_t)stream); }
int ea_backward(const AttnArgs* args, void* stream) { return attention_backward(args, (cudaStream_t)stream); }
size_t ea_mask_words(int B, int H, int T) { return attention_mask_words(B, H, T); }
unsigned long long ea_tile_count(int B, int H, int T, int causal) { return attention_tile_count(B, H, T, causal); }
int ea_default_niter(float alpha) { return entmax_default_niter(alpha); }
const char* ea_strerror(int code) { return attention_strerror(code); }
int ea_sizeof_args(void) { return (int)sizeof(AttnArgs); }

/*
 CPU reference with entmax.h's row functions (float math, converged tau): host float arrays, layout (B, T, H, D)
 contiguous. Writes o (B,T,H,D); if dout != NULL also dq, dk, dv (B,T,H,D). Small shapes only (O(T^2) memory per row).
*/
void ea_reference_cpu(int B, int T, int H, int D, float alpha, int causal, const float* q, const float* k,
                      const float* v, const float* dout, float* o, float* dq, float* dk, float* dv) {
    Entmax e = entmax_make(alpha);
    float scale = 1.0f / sqrtf((float)D);
    float* s = (float*)malloc(sizeof(float) * T);
    float* pr = (float*)malloc(sizeof(float) * T);
    float* dp = (float*)malloc(sizeof(float) * T);
    float* ds = (float*)malloc(sizeof(float) * T);
    size_t n = (size_t)B * T * H * D;
    if (dout) {
        for (size_t i = 0; i < n; i++) dq[i] = dk[i] = dv[i] = 0.0f;
    }
#define IDX(b, t, h) ((((size_t)(b) * T + (t)) * H + (h)) * D)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < T; i++) {
                const float* qi = q + IDX(b, i, h);
                for (int j = 0; j < T; j++) {
                    if (causal && j > i) { s[j] = -INFINITY; continue; }
                    const float* kj = k + IDX(b, j, h);
                    float acc = 0.0f;
                    for (int d = 0; d < D; d++) acc += qi[d] * kj[d];
                    s[j] = acc * scale;
                }
                entmax_row_forward(&e, s, pr, T);
                float* oi = o + IDX(b, i, h);
                for (int d = 0; d < D; d++) oi[d] = 0.0f;
                for (int j = 0; j < T; j++) {
                    if (pr[j] == 0.0f) continue;
                    const float* vj = v + IDX(b, j, h);
                    for (int d = 0; d < D; d++) oi[d] += pr[j] * vj[d];
                }
                if (!dout) continue;
                const float* doi = dout + IDX(b, i, h);
                for (int j = 0; j < T; j++) {
                    const float* vj = v + IDX(b, j, h);
                    float acc = 0.0f;
                    for (int d = 0; d < D; d++) acc += doi[d] * vj[d];
                    dp[j] = acc;
                    if (pr[j] != 0.0f) {
                        float* dvj = dv + IDX(b, j, h);
                        for (int d = 0; d < D; d++) dvj[d] += pr[j] * doi[d];
                    }
                }
                entmax_row_backward(&e, pr, dp, ds, T, 0);
                float* dqi = dq + IDX(b, i, h);
                for (int j = 0; j < T; j++) {
                    if (ds[j] == 0.0f) continue;
                    const float* kj = k + IDX(b, j, h);
                    float* dkj = dk + IDX(b, j, h);
                    for (int d = 0; d < D; d++) {
                        dqi[d] += ds[j] * scale * kj[d];
                        dkj[d] += ds[j] * scale * qi[d];
                    }
                }
            }
#undef IDX
    free(s); free(pr); free(dp); free(ds);
}

} // extern "C"
