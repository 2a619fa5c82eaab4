/*
 encoder.cuh: token + position embedding. out[b,t,:] = wte[tok[b,t],:] + wpe[t,:]  (bf16 storage, fp32 add)

 Backward, deterministic, no atomics and no per-step CPU work:
   dwpe[t,:] += sum_b dout[b,t,:]         one thread per (t, 8 channels), looping b in order.
   dwte[v,:] += sum_{(b,t): tok=v} dout[b,t,:]
 For dwte the N = B*T positions are sorted by token id on the GPU (CUB radix sort: stable, so equal tokens
 stay in position order; deterministic). The sorted list is cut into fixed chunks of ENC_CHUNK positions, one
 warp per chunk (and per 256-channel slice). A warp walks its chunk in order, summing the rows of one token
 segment in fp32, and when the token changes:
   - a segment that starts and ends inside the chunk is added straight into dwte[v] (no other warp touches
     that row);
   - a segment cut by the chunk's start goes to partials[chunk][0], one cut by the chunk's end (and starting
     inside it) to partials[chunk][1].
 A second kernel lets the chunk where a cut segment STARTS add its [1] partial and the following chunks' [0]
 partials, in chunk order, into dwte[v]. Frequent tokens are thus split over many warps instead of
 serializing on one (llm.c does the bucketing on the CPU every step instead).
 Token ids must be in [0, Vp): the caller checks the batch when it loads it.
*/
#pragma once

#include <cub/cub.cuh>
#include "cuda_common.cuh"

#define ENC_CHUNK 64 // sorted positions per warp in the dwte backward

// ----------------------------------------------------------------------------------------------------------
// forward

__global__ void encoder_forward_kernel(floatX* __restrict__ out, const int* __restrict__ tokens, const floatX* __restrict__ wte,
                                       const floatX* __restrict__ wpe, int N, int T, int C) {
    const int groups = C / x128::size;
    size_t g = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= (size_t)N * groups) return;
    int row = (int)(g / groups), c = (int)(g % groups) * x128::size;
    int t = row % T;
    int tok = tokens[row];
    x128 e = load128(wte + (size_t)tok * C + c);
    x128 p = load128(wpe + (size_t)t * C + c);
    x128 o;
#pragma unroll
    for (int k = 0; k < x128::size; k++) o[k] = (floatX)((float)e[k] + (float)p[k]);
    store128(out + (size_t)row * C + c, o);
}

// ----------------------------------------------------------------------------------------------------------
// backward

__global__ void encoder_backward_wpe_kernel(floatX* __restrict__ dwpe, const floatX* __restrict__ dout, int B, int T, int C) {
    const int groups = C / x128::size;
    int g = blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= T * groups) return;
    int t = g / groups, c = (g % groups) * x128::size;
    float acc[x128::size] = {0};
    for (int b = 0; b < B; b++) {
        x128 d = load128(dout + ((size_t)b * T + t) * C + c);
#pragma unroll
        for (int k = 0; k < x128::size; k++) acc[k] += (float)d[k];
    }
    x128 w = load128(dwpe + (size_t)t * C + c);
#pragma unroll
    for (int k = 0; k < x128::size; k++) w[k] = (floatX)((float)w[k] + acc[k]);
    store128(dwpe + (size_t)t * C + c, w);
}

__global__ void encoder_iota_kernel(unsigned int* out, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = (unsigned int)i;
}

__device__ __forceinline__ void enc_add_row_(floatX* dst, const float* acc) {
    x128 w = load128(dst);
#pragma unroll
    for (int k = 0; k < x128::size; k++) w[k] = (floatX)((float)w[k] + acc[k]);
    store128(dst, w);
}

// grid: (ceil(nchunks / warps), ceil(C / 256)); warp w of block x handles chunk x*warps + w
__global__ void encoder_backward_wte_chunks_kernel(floatX* __restrict__ dwte, float* __restrict__ partials,
                                                   const floatX* __restrict__ dout, const unsigned int* __restrict__ stok,
                                                   const unsigned int* __restrict__ spos, int N, int C) {
    const int lane = threadIdx.x & 31;
    const int chunk = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int c = blockIdx.y * 32 * x128::size + lane * x128::size;
    const int nchunks = (N + ENC_CHUNK - 1) / ENC_CHUNK;
    if (chunk >= nchunks || c >= C) return;
    const int j0 = chunk * ENC_CHUNK, j1 = min(j0 + ENC_CHUNK, N);
    const unsigned int tok_before = j0 > 0 ? stok[j0 - 1] : 0xffffffffu;
    const unsigned int tok_after = j1 < N ? stok[j1] : 0xffffffffu;
    float acc[x128::size] = {0};
    unsigned int tok = stok[j0];
    int seg_start = j0;
    for (int j = j0; j < j1; j++) {
        x128 d = load128(dout + (size_t)spos[j] * C + c);
#pragma unroll
        for (int k = 0; k < x128::size; k++) acc[k] += (float)d[k];
        unsigned int next = j + 1 < j1 ? stok[j + 1] : 0xffffffffu;
        if (next != tok) { // the segment [seg_start, j] ends inside or at the end of this chunk
            bool cut_before = seg_start == j0 && tok_before == tok;
            bool cut_after = j + 1 == j1 && tok_after == tok;
            if (!cut_before && !cut_after) {
                enc_add_row_(dwte + (size_t)tok * C + c, acc);
            } else {
                float* p = partials + ((size_t)chunk * 2 + (cut_before ? 0 : 1)) * C + c;
                store128(p, f128(make_int4(__float_as_int(acc[0]), __float_as_int(acc[1]), __float_as_int(acc[2]), __float_as_int(acc[3]))));
                store128(p + 4, f128(make_int4(__float_as_int(acc[4]), __float_as_int(acc[5]), __float_as_int(acc[6]), __float_as_int(acc[7]))));
            }
#pragma unroll
            for (int k = 0; k < x128::size; k++) acc[k] = 0.0f;
            tok = next;
            seg_start = j + 1;
        }
    }
}

// the chunk where a cut segment starts gathers the pieces in chunk order
__global__ void encoder_backward_wte_merge_kernel(floatX* __restrict__ dwte, const float* __restrict__ partials,
                                                  const unsigned int* __restrict__ stok, int N, int C) {
    const int lane = threadIdx.x & 31;
    const int chunk = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int c = blockIdx.y * 32 * x128::size + lane * x128::size;
    const int nchunks = (N + ENC_CHUNK - 1) / ENC_CHUNK;
    if (chunk >= nchunks || c >= C) return;
    const int j0 = chunk * ENC_CHUNK, j1 = min(j0 + ENC_CHUNK, N);
    const unsigned int tok = stok[j1 - 1];
    if (j1 >= N || stok[j1] != tok) return;                         // last segment does not continue
    if (j0 > 0 && stok[j0] == tok && stok[j0 - 1] == tok) return;   // it started in an earlier chunk
    float acc[x128::size];
    {
        const float* p = partials + ((size_t)chunk * 2 + 1) * C + c;
        f128 a = load128(p), b = load128(p + 4);
#pragma unroll
        for (int k = 0; k < 4; k++) { acc[k] = a[k]; acc[k + 4] = b[k]; }
    }
    for (int q = chunk + 1; q < nchunks; q++) {
        const float* p = partials + ((size_t)q * 2 + 0) * C + c;
        f128 a = load128(p), b = load128(p + 4);
#pragma unroll
        for (int k = 0; k < 4; k++) { acc[k] += a[k]; acc[k + 4] += b[k]; }
        int e = min((q + 1) * ENC_CHUNK, N);
        if (e >= N || stok[e] != tok) break;
    }
    enc_add_row_(dwte + (size_t)tok * C + c, acc);
}

// ----------------------------------------------------------------------------------------------------------
// launchers

typedef struct {
    int max_N, C;
    int sort_bits;
    unsigned int* iota;       // 0..N-1
    unsigned int* sorted_tok; // N
    unsigned int* sorted_pos; // N
    float* partials;          // nchunks * 2 * C
    void* cub_temp;
    size_t cub_temp_bytes;
} EncoderBackwardScratch;

static inline void encoder_backward_scratch_init(EncoderBackwardScratch* s, int max_N, int C, int Vp) {
    if (C % (x128::size) != 0) fail("encoder: C = %d must be a multiple of %d", C, x128::size);
    s->max_N = max_N;
    s->C = C;
    s->sort_bits = 1;
    while ((1 << s->sort_bits) < Vp) s->sort_bits++;
    s->iota = (unsigned int*)cudaMallocOrFail((size_t)max_N * 4, "encoder sort");
    s->sorted_tok = (unsigned int*)cudaMallocOrFail((size_t)max_N * 4, "encoder sort");
    s->sorted_pos = (unsigned int*)cudaMallocOrFail((size_t)max_N * 4, "encoder sort");
    size_t nchunks = ceil_div_sz(max_N, ENC_CHUNK);
    s->partials = (float*)cudaMallocOrFail(nchunks * 2 * C * sizeof(float), "encoder partials");
    s->cub_temp = NULL;
    s->cub_temp_bytes = 0;
    cudaCheck(cub::DeviceRadixSort::SortPairs(NULL, s->cub_temp_bytes, (const unsigned int*)NULL, (unsigned int*)NULL,
                                              (const unsigned int*)NULL, (unsigned int*)NULL, max_N, 0, s->sort_bits));
    s->cub_temp = cudaMallocOrFail(s->cub_temp_bytes, "encoder sort temp");
    encoder_iota_kernel<<<ceil_div(max_N, 256), 256>>>(s->iota, max_N);
    cudaCheckLast();
}

static inline void encoder_backward_scratch_free(EncoderBackwardScratch* s) {
    cudaFreeCheck(&s->iota); cudaFreeCheck(&s->sorted_tok); cudaFreeCheck(&s->sorted_pos);
    cudaFreeCheck(&s->partials); cudaFreeCheck(&s->cub_temp);
}

static inline void encoder_forward(floatX* out, const int* tokens, const floatX* wte, const floatX* wpe, int B, int T, int C,
                                   cudaStream_t stream) {
    if (C % x128::size != 0) fail("encoder: C = %d must be a multiple of %d", C, x128::size);
    size_t n = (size_t)B * T * (C / x128::size);
    encoder_forward_kernel<<<(unsigned)ceil_div_sz(n, 256), 256, 0, stream>>>(out, tokens, wte, wpe, B * T, T, C);
    cudaCheckLast();
}

// dwte, dwpe are ADDED to. tokens: device int[B*T].
static inline void encoder_backward(floatX* dwte, floatX* dwpe, EncoderBackwardScratch* s, const floatX* dout, const int* tokens,
                                    int B, int T, int C, cudaStream_t stream) {
    const int N = B * T;
    if (N > s->max_N || C != s->C) fail("encoder_backward: scratch sized for N <= %d, C = %d; got N = %d, C = %d", s->max_N, s->C, N, C);
    int groups = T * (C / x128::size);
    encoder_backward_wpe_kernel<<<ceil_div(groups, 256), 256, 0, stream>>>(dwpe, dout, B, T, C);
    cudaCheckLast();
    size_t temp = s->cub_temp_bytes;
    cudaCheck(cub::DeviceRadixSort::SortPairs(s->cub_temp, temp, (const unsigned int*)tokens, s->sorted_tok, s->iota,
                                              s->sorted_pos, N, 0, s->sort_bits, stream));
    const int warps = 4;
    int nchunks = ceil_div(N, ENC_CHUNK);
    dim3 grid(ceil_div(nchunks, warps), ceil_div(C, 32 * x128::size));
    encoder_backward_wte_chunks_kernel<<<grid, warps * 32, 0, stream>>>(dwte, s->partials, dout, s->sorted_tok, s->sorted_pos, N, C);
    cudaCheckLast();
    encoder_backward_wte_merge_kernel<<<grid, warps * 32, 0, stream>>>(dwte, s->partials, s->sorted_tok, N, C);
    cudaCheckLast();
}
