/*
 attention.cuh: alpha-entmax flash attention ("adaptive sparse flash attention", AdaSplash, ICML 2025) for the
 GPT-2 trainer, with softmax (alpha = 1) in the same kernel family. bf16 in/out, fp32 accumulation, tensor cores,
 cp.async tile loads. Built for sm_90a (H100; the Makefile's choice for compute capability 9.0) every product runs
 on wgmma (warpgroup MMA: Q K^T-type products read both operands from shared memory, P V-type products take P from
 registers; D = 128 tiles are two 128-byte-swizzled halves, see att_sw); on sm_80+ the same kernels use mma.sync
 m16n8k16 + ldmatrix.

 Math (one query row i; the elementwise math lives in entmax.h, folded at compile time per EntmaxKind):
   s_ij = q_i.k_j / sqrt(D)                    raw MMA dot acc_ij, s = acc * scale
   z_ij = (alpha-1) s_ij                       row max m_i = max_j acc_ij
   p_ij = [z_ij - theta_i]_+^(1/(alpha-1))     theta_i = (alpha-1)*scale*m_i + tau_i,  tau_i solved in entmax.h's
                                               max-shifted space, tau_i in [-1, -n^(1-alpha)]
   x_ij = z_ij - theta_i = fma(acc_ij, c, -theta_i),  c = (alpha-1)*scale   (one FMA per score everywhere)
   O_i  = sum_j p_ij v_j / sum_j p_ij          (the sum is 1 up to the solver tolerance; we divide anyway)
   O2_i = sum_j u_ij v_j / sum_j u_ij,  u = p^(2-alpha) = x^(a-1)   (saved instead of O for the backward)
 Saved per row: stat_i = theta_i (fp32). Softmax: stat_i = log2(sum_j exp2(s_ij log2 e)), p = exp2(s log2e - stat).

 Forward (CTAs of 128 query rows = 8 warps x 16 rows; key tiles of 64 through a 3-stage cp.async ring, or TMA):
   attn_tau_kernel   (entmax) pass 0: row max of acc over the visible keys, as the maxima of 16 key classes, from
                     which a lower bound for theta is the first theta (entmax_lower_bound_step; alpha = 1.5 in flat
                     rows also their mean and variance, for a first theta near the root: entmax15_tau_guess);
                     passes 1..n: the sums
                     (entmax_sums_add) at the current theta, then entmax_tau_step (safeguarded Halley-bisection);
                     a CTA stops early when every row has |f| <= 1e-6. The last pass records max_j x_ij per
                     (warp, key tile) so that tiles with every x <= 0 at the final theta are known ("dead").
                     After niter passes it goes on (up to niter + 6) while some row has |f| > tol_cont (flat
                     rows, e.g. at initialisation). Writes stat = theta and the tile mask. 2 CTAs per SM.
                     alpha = 1.5 and causal alpha = 2 on sm_90a: pass 1 instead keeps the keys above the bound in
                     shared memory (the key buffer) and theta comes from them (att_keybuf_solve), so that one pass
                     follows the max pass.
                     Steps of 128 keys (two tiles) for alpha = 1.5 and causal alpha = 2 (att_tau_tiles). On
                     sm_90a this kernel and the next get K (and V) by TMA, into rings guarded by mbarriers.
   attn_out_kernel   (entmax) output pass over the live tiles: O, O2, sum p, sum u; 2 CTAs per SM at D = 64.
                     A row with |sum p - 1| > 1e-3 gets stat = NaN instead of O (rare), and
   attn_fwd_kernel   in redo mode (a small grid that scans stat for NaN) solves those 128-row tiles from scratch
                     (max + up to niter_redo passes, output pass, more passes if needed). So results are converged to
                     ~1e-3 in f while the common case costs 1 + niter + 1 passes over K. Softmax (alpha = 1) is
                     attn_fwd_kernel alone, one online-softmax pass.
 Backward (FA2-style recomputation, deterministic: no float atomics):
   dq kernel    delta_i = dO_i . O2_i (written for the next kernel); for every live key tile:
                S = Q K^T, dP = dO V^T, dS = u (dP - delta), dQ += dS K   (sm_90a: K and V by TMA, as the output pass)
   dkdv kernel  one CTA = 128 keys; for every live query tile: S^T = K Q^T, dP^T = V dO^T,
                dV += P^T dO, dK += dS^T Q   (sm_90a: Q and dO by TMA, theta and delta by cp.async, into the same
                kind of mbarrier ring as K and V in the dq kernel)
   dQ and dK get the factor scale = 1/sqrt(D) at the end (ds is the gradient wrt s).
 Tile mask: 1 bit per (64-query tile, 64-key tile), written by the forward (for entmax), read by both backward
 kernels. A tile is dead when every x_ij <= -1e-4 there, so skipping it is exact (p = u = 0). The output and dQ
 kernels turn their CTA's two mask rows into a list of live tiles once (att_live_list) and walk that; the dK/dV
 kernel reads its mask column (its two key tiles, every query tile) into shared memory once.

 Layout: element (b, t, h, d) of a tensor lives at ptr[b*sb + t*st + h*sh + d] (d contiguous). Packed qkv
 (B, T, 3, H, D): q = qkv, k = qkv + H*D, v = qkv + 2*H*D, st = 3*H*D, sh = D, sb = T*st.
 (B, H, T, D): st = D, sh = T*D, sb = H*T*D. Pointers 16-byte aligned, strides multiples of 8 elements.
*/
#pragma once

#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <math.h>
#include <cuda_runtime.h>
#include <cudaTypedefs.h> // CUtensorMap and the cuTensorMapEncodeTiled prototype (called through the runtime)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include "entmax.h"

// ----------------------------------------------------------------------------------------------------------
// host-facing API types

typedef struct {
    void* ptr;                 // bf16 data; element (b,t,h,d) at ptr[b*sb + t*st + h*sh + d]
    long long sb, st, sh;      // strides in elements
} AttnTensor;

typedef struct {
    int B, T, H, D;            // D in {64, 128}; any B, T, H >= 1
    float alpha;               // [1, 2]; 1 = softmax, 1.5 and 2 have specialised paths
    int causal;                // 1 = causal (key j visible to query i iff j <= i)
    int niter;                 // tau passes before the output pass. > 0: at least niter, more (up to niter + 6)
                               // while rows are far from converged; < 0: exactly -niter (a fixed-iteration solver,
                               // e.g. to compare with AdaSplash's niter); 0 = entmax_default_niter(alpha).
                               // Rows still off after the output pass (|sum p - 1| > 1e-3) are solved again.
    AttnTensor q, k, v;        // inputs (forward and backward)
    AttnTensor o;              // forward output
    AttnTensor o2;             // entmax: forward writes O2 if o2.ptr != NULL (training), backward reads it.
                               // softmax: not written by the forward; the backward reads O here (delta = dO.O)
    AttnTensor dout;           // backward: gradient of O
    AttnTensor dq, dk, dv;     // backward outputs (may point into one packed (B,T,3,H,D) buffer)
    float* stat;               // B*H*T fp32 per-row threshold theta (softmax: log2-sum-exp2); fwd writes, bwd reads
    uint32_t* mask;            // optional tile mask, attention_mask_words(B,H,T) words; fwd writes, bwd reads
    float* delta;              // backward scratch, B*H*T floats
    unsigned long long* stats; // optional device counters (forward adds): [0] dead 64x64 tiles, [1] tiles in the
                               // causal/full region, [2] exact nonzero count (only if count_nonzero)
    int count_nonzero;
} AttnArgs;

enum {
    ATTN_OK = 0,
    ATTN_ERR_HEAD_DIM = 1,  // D not 64 or 128
    ATTN_ERR_ALPHA = 2,     // alpha outside [1, 2] or NaN
    ATTN_ERR_SHAPE = 3,     // B, T, H < 1 or too large for the grid
    ATTN_ERR_ALIGN = 4,     // pointer not 16-byte aligned or stride not a multiple of 8
    ATTN_ERR_NULL = 5,      // a required pointer is NULL
    ATTN_ERR_CUDA = 6,      // the launch failed (cudaGetLastError)
};

static inline const char* attention_strerror(int code) {
    switch (code) {
    case ATTN_OK: return "ok";
    case ATTN_ERR_HEAD_DIM: return "attention: head dim must be 64 or 128";
    case ATTN_ERR_ALPHA: return "attention: alpha must be in [1, 2]";
    case ATTN_ERR_SHAPE: return "attention: B, T, H must be >= 1 (and B*H < 2^31, T < 2^24)";
    case ATTN_ERR_ALIGN: return "attention: tensors must be 16-byte aligned with strides that are multiples of 8";
    case ATTN_ERR_NULL: return "attention: a required pointer is NULL (q, k, v, o, stat; backward: o2, dout, dq, dk, dv, delta)";
    case ATTN_ERR_CUDA: return "attention: kernel launch failed";
    default: return "attention: unknown error";
    }
}

// ----------------------------------------------------------------------------------------------------------
// constants

#define ATT_BM 128          // query rows per forward / dq CTA (8 warps x 16)
#define ATT_BN 64           // keys per tile (forward / dq), also the mask granularity
#define ATT_BKV 128         // keys per dkdv CTA (8 warps x 16)
#define ATT_BQ 64           // queries per dkdv step
#define ATT_WARPS 8
#define ATT_THREADS 256
#define ATT_NKT_CAP 2048    // tile tracking (skipping, mask) for T <= 2048*64 = 131072; longer runs unmasked
#define ATT_TOL_F 1e-3f     // output pass check: |sum p - 1| above this triggers one more tau pass
#define ATT_TOL_EXIT 1e-6f  // a tau pass with |f| <= this for every row of the CTA ends the iterations early
#define ATT_MAX_REDO 4
#define ATT_MARGIN 1e-4f    // a tile is dead when every x <= -ATT_MARGIN (slack for re-computation rounding)

// ----------------------------------------------------------------------------------------------------------
// small device helpers: cp.async, ldmatrix, mma

typedef __nv_bfloat16 att_bf16;

__device__ __forceinline__ uint32_t att_smem_addr(const void* p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

// 16-byte async copy global -> shared; zero-fills when !valid (src is then not read)
__device__ __forceinline__ void att_cp16(void* dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(att_smem_addr(dst)), "l"(src),
                 "r"(valid ? 16 : 0));
}
// 4-byte async copy (zero-fills when !valid)
__device__ __forceinline__ void att_cp4(void* dst, const void* src, bool valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(att_smem_addr(dst)), "l"(src),
                 "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void att_cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
// the mbarrier at bar gets one arrival when every cp.async this thread issued before has landed (.noinc: the
// barrier's count must include it); the waiters on bar then see those bytes
__device__ __forceinline__ void att_cp_mbar_arrive(uint64_t* bar) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(att_smem_addr(bar)) : "memory");
}
template <int N>
__device__ __forceinline__ void att_cp_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void att_ldsm4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}
__device__ __forceinline__ void att_ldsm4_t(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(addr));
}

// d (16x8 fp32) += a (16x16 bf16, row) * b (16x8 bf16, col)
__device__ __forceinline__ void att_mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t att_pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi); // lo -> low 16 bits (the lower column)
    return *reinterpret_cast<uint32_t*>(&v);
}

// Shared tiles are [rows][D] bf16, 16-byte chunks XOR-swizzled by (row & 7) so that ldmatrix (8 rows, same
// chunk) and the cp.async fills are bank-conflict free. D = 64: row r is the 128 bytes at r * 128. D = 128: each
// group of 8 rows is 2048 bytes, its left half (chunks 0-7, head dims 0-63) then its right half (chunks 8-15),
// each 8 rows x 128 bytes: so both halves of a tile are the hardware's 128-byte-swizzled layout that wgmma reads
// (see att_wg_desc), with 2048 bytes between 8-row groups instead of 1024. In both, rows 8m.. of a tile start
// m * 8 * D elements on. Offset in elements:
template <int D>
__device__ __forceinline__ int att_sw(int row, int chunk) {
    static_assert(D == 64 || D == 128, "head dim 64 or 128");
    if constexpr (D == 64) return row * D + ((chunk ^ (row & 7)) << 3);
    else return (row >> 3) * (8 * D) + ((chunk >> 3) << 9) + ((row & 7) << 6) + (((chunk ^ row) & 7) << 3);
}

// The epilogue's store of a warp's 16 rows of a 16 x D accumulator (mma layout): local row g + 8j (this thread's
// row j) times scale[j], as bf16, to dst + (g + 8j) * st where keep[j] (the same for the 4 threads of a row).
// Staged through `stage`, the warp's own 16-row slice of a swizzled tile in shared memory (att_sw; free by now and
// touched by no other warp): the rows then leave with 16-byte loads and stores, 2-4 whole rows per warp store, where
// 4-byte stores straight from the fragments take 4x the instructions and fill each 32-byte sector half per instruction. The
// slice may be reused right after (the next call starts with __syncwarp).
template <int D>
__device__ __forceinline__ void att_store_rows_staged(att_bf16* stage, att_bf16* dst, long long st,
                                                      const float (&acc)[D / 8][4], const float (&scale)[2],
                                                      const bool (&keep)[2], int lane) {
    constexpr int CPR = D / 8, RPI = 32 / CPR; // 16-byte chunks per row, rows per warp instruction
    const int g = lane >> 2, tq = lane & 3;
    // row r of the 16 is kept iff bit 4r (r < 8) of k0, or bit 4(r - 8) of k1
    const uint32_t k0 = __ballot_sync(0xffffffffu, keep[0]), k1 = __ballot_sync(0xffffffffu, keep[1]);
    __syncwarp();
#pragma unroll
    for (int j = 0; j < 2; j++)
#pragma unroll
        for (int i = 0; i < CPR; i++)
            *reinterpret_cast<uint32_t*>(stage + att_sw<D>(g + 8 * j, i) + 2 * tq) =
                att_pack(acc[i][2 * j] * scale[j], acc[i][2 * j + 1] * scale[j]);
    __syncwarp();
    const int c = lane % CPR;
#pragma unroll
    for (int k = 0; k < 16 / RPI; k++) {
        const int r = k * RPI + lane / CPR;
        const uint4 v = *reinterpret_cast<const uint4*>(stage + att_sw<D>(r, c));
        if (((r < 8 ? k0 >> (4 * r) : k1 >> (4 * (r - 8))) & 1u) != 0u)
            *reinterpret_cast<uint4*>(dst + (long long)r * st + c * 8) = v;
    }
}

// async copy of rows [r0, r0+ROWS) of one (b,h) slice (token stride st) into a swizzled tile; rows >= rmax -> 0
// (their copies read nothing; the source pointer is pinned to g so it stays inside the tensor). Thread tid copies
// chunk tid % CH of rows tid / CH + i * RSTEP: one 64-bit multiply, then a pointer step per chunk.
template <int ROWS, int D>
__device__ __forceinline__ void att_load_tile(att_bf16* s, const att_bf16* g, long long st, int r0, int rmax, int tid) {
    constexpr int CH = D / 8, RSTEP = ATT_THREADS / CH;
    static_assert((ROWS * CH) % ATT_THREADS == 0, "tile size");
    const int r = tid / CH, c = tid % CH;
    const att_bf16* src = g + (long long)(r0 + r) * st + c * 8;
    const long long step = (long long)RSTEP * st;
#pragma unroll
    for (int i = 0; i < ROWS * CH / ATT_THREADS; i++) {
        const bool ok = r0 + r + i * RSTEP < rmax;
        att_cp16(s + att_sw<D>(r + i * RSTEP, c), ok ? src : g, ok);
        src += step;
    }
}

// A fragments (16 rows x D) of a warp from a swizzled tile: rows row0..row0+15
template <int D>
__device__ __forceinline__ void att_load_afrag(uint32_t (&f)[D / 16][4], const att_bf16* s, int row0, int lane) {
    int row = row0 + (lane & 15);
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++) att_ldsm4(f[ks], att_smem_addr(s + att_sw<D>(row, 2 * ks + (lane >> 4))));
}

// acc[NT][4] (16 x 8NT) = A (16 x D, fragments) * B^T where B is a swizzled [8NT][D] tile (rows = the n index)
// (NT n8 tiles: 8 = 64 keys, 4 = 32 keys; sB may point at row 8m of a tile, the swizzle repeats every 8 rows)
template <int D, int NT = 8>
__device__ __forceinline__ void att_mma_abt(float (&acc)[NT][4], const uint32_t (&a)[D / 16][4], const att_bf16* sB,
                                            int lane) {
#pragma unroll
    for (int nt = 0; nt < NT; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++) {
#pragma unroll
        for (int np = 0; np < NT / 2; np++) {
            uint32_t b[4];
            int row = np * 16 + (lane & 7) + ((lane >> 4) << 3);
            att_ldsm4(b, att_smem_addr(sB + att_sw<D>(row, 2 * ks + ((lane >> 3) & 1))));
            att_mma(acc[2 * np], a[ks], b[0], b[1]);
            att_mma(acc[2 * np + 1], a[ks], b[2], b[3]);
        }
    }
}

// same, A fragments read from a swizzled tile on the fly (rows row0..row0+15) instead of registers
template <int D, int NT = 8>
__device__ __forceinline__ void att_mma_abt_s(float (&acc)[NT][4], const att_bf16* sA, int row0, const att_bf16* sB,
                                              int lane) {
#pragma unroll
    for (int nt = 0; nt < NT; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < D / 16; ks++) {
        uint32_t a[4];
        att_ldsm4(a, att_smem_addr(sA + att_sw<D>(row0 + (lane & 15), 2 * ks + (lane >> 4))));
#pragma unroll
        for (int np = 0; np < NT / 2; np++) {
            uint32_t b[4];
            int row = np * 16 + (lane & 7) + ((lane >> 4) << 3);
            att_ldsm4(b, att_smem_addr(sB + att_sw<D>(row, 2 * ks + ((lane >> 3) & 1))));
            att_mma(acc[2 * np], a, b[0], b[1]);
            att_mma(acc[2 * np + 1], a, b[2], b[3]);
        }
    }
}

// acc[D/8][4] (16 x D) += A (16 x 16, fragment, k = rows kk*16.. of the tile) * tile rows kk*16..+15 ([k][D])
template <int D>
__device__ __forceinline__ void att_mma_av(float (&acc)[D / 8][4], const uint32_t (&a)[4], const att_bf16* sB, int kk,
                                           int lane) {
    int row = kk * 16 + (lane & 15);
#pragma unroll
    for (int dp = 0; dp < D / 16; dp++) {
        uint32_t b[4];
        att_ldsm4_t(b, att_smem_addr(sB + att_sw<D>(row, 2 * dp + (lane >> 4))));
        att_mma(acc[2 * dp], a, b[0], b[1]);
        att_mma(acc[2 * dp + 1], a, b[2], b[3]);
    }
}
// two products sharing the B fragments (O += P V and O2 += U V)
template <int D>
__device__ __forceinline__ void att_mma_av2(float (&acc)[D / 8][4], float (&acc2)[D / 8][4], const uint32_t (&a)[4],
                                            const uint32_t (&a2)[4], const att_bf16* sB, int kk, int lane) {
    int row = kk * 16 + (lane & 15);
#pragma unroll
    for (int dp = 0; dp < D / 16; dp++) {
        uint32_t b[4];
        att_ldsm4_t(b, att_smem_addr(sB + att_sw<D>(row, 2 * dp + (lane >> 4))));
        att_mma(acc[2 * dp], a, b[0], b[1]);
        att_mma(acc[2 * dp + 1], a, b[2], b[3]);
        att_mma(acc2[2 * dp], a2, b[0], b[1]);
        att_mma(acc2[2 * dp + 1], a2, b[2], b[3]);
    }
}

// ---- Hopper warpgroup MMA (sm_90a only: ATT_WGMMA) -------------------------------------------------------
// wgmma.m64n64k16: a warpgroup (4 warps) computes a 64 x 64 fp32 tile from bf16 operands read straight from
// shared memory through matrix descriptors. Our D = 64 tiles are rows of 128 bytes with 16-byte chunks XORed by
// (row & 7) (att_sw), which is exactly the hardware's 128-byte swizzle when the tile base is 1024-byte aligned,
// so Q and K need no re-layout. The accumulator of warp w of the group holds rows 16w..16w+15 in the same
// fragment order as mma.sync m16n8 (acc[n8 tile][4]), so the elementwise code is shared with the mma.sync path.
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define ATT_WGMMA 1
#else
#define ATT_WGMMA 0
#endif

// A value that is the same in every lane, re-read from lane 0 so that the compiler knows it: the wgmma descriptor
// arithmetic that follows then runs once in uniform registers instead of once per descriptor in vector registers
// plus two moves into uniform ones (the addresses come from threadIdx.x and loop counters, which it cannot prove
// warp-uniform on its own).
__device__ __forceinline__ uint32_t att_uniform(uint32_t x) { return __shfl_sync(0xffffffffu, x, 0); }

// descriptor of a K-major, 128-byte-swizzled bf16 operand at shared address saddr (1024-byte aligned atoms):
// start >> 4 (bits 0-13), leading offset 1 (unused with this swizzle), stride between 8-row groups >> 4 (bits
// 32-45: 8 rows x 2D bytes, i.e. D units), swizzle mode 1 = 128B (bits 62-63)
// The high word is a constant per head dim, and the k steps of one tile only move the start field (+2 per 32
// bytes: the field is < 0x3900 for any shared address, so the add never carries out of it).
__device__ __forceinline__ uint32_t att_wg_desc_lo(uint32_t saddr) { return ((saddr & 0x3FFFFu) >> 4) | (1u << 16); }

__device__ __forceinline__ void att_wg_fence() {
#if ATT_WGMMA
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
// commit the batches issued since the last commit as one group; wait until at most N groups are still in flight
// (an empty group, committed where nothing was issued, keeps the counts uniform)
__device__ __forceinline__ void att_wg_commit() {
#if ATT_WGMMA
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int N>
__device__ __forceinline__ void att_wg_wait() {
#if ATT_WGMMA
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
__device__ __forceinline__ void att_wg_commit_wait() {
    att_wg_commit();
    att_wg_wait<0>();
}
// Register A operands of an issued batch must not be reused by the compiler before the wait: call this on them
// right after att_wg_commit_wait(). The empty asm "reads and writes" every register, so they stay live until here.
template <int N, int M>
__device__ __forceinline__ void att_wg_keep(uint32_t (&r)[N][M]) {
#pragma unroll
    for (int i = 0; i < N; i++)
#pragma unroll
        for (int j = 0; j < M; j++) asm volatile("" : "+r"(r[i][j])::"memory");
}
// the same for accumulators read right after the wait (keeps those reads below it)
template <int N, int M>
__device__ __forceinline__ void att_wg_keep(float (&r)[N][M]) {
#pragma unroll
    for (int i = 0; i < N; i++)
#pragma unroll
        for (int j = 0; j < M; j++) asm volatile("" : "+f"(r[i][j])::"memory");
}

// acc (64 x 8NT per warpgroup, NT = 16, 8 or 4) = A (64 x D, rows of a tile) * B^T (B = 8NT rows of a tile); both
// [rows][D] swizzled bf16 (att_sw), given by descriptors. Every thread of the warpgroup must call it (the
// instructions are .sync.aligned). The _issue functions only issue (the caller brackets a batch with
// att_wg_fence() / att_wg_commit_wait()); att_wgmma_abt returns with the result in acc.
// The four k steps (k step ks = bytes 32ks..32ks+31 of each logical row: the descriptors' start field moves by 2,
// the swizzle follows) are one asm block that derives their descriptors from the first with PTX adds: written as
// C++ the compiler rebuilt and moved every 64-bit descriptor into uniform registers one by one (~8 instructions
// per wgmma, a third of the per-tile work of attn_tau_kernel). ks = 0 overwrites acc (scale-d = 0).
#define ATT_WG_ABT4(SHAPE, ACC, DA, DB)                                                                          \
    "{\n.reg .pred p0, p1;\n.reg .b64 a1, a2, a3, b1, b2, b3;\n"                                               \
    "setp.ne.b32 p0, 0, 0;\nsetp.ne.b32 p1, 1, 0;\n"                                                           \
    "add.s64 a1, " DA ", 2;\nadd.s64 a2, " DA ", 4;\nadd.s64 a3, " DA ", 6;\n"                                 \
    "add.s64 b1, " DB ", 2;\nadd.s64 b2, " DB ", 4;\nadd.s64 b3, " DB ", 6;\n"                                 \
    "wgmma.mma_async.sync.aligned." SHAPE ".f32.bf16.bf16 " ACC ", " DA ", " DB ", p0, 1, 1, 0, 0;\n"          \
    "wgmma.mma_async.sync.aligned." SHAPE ".f32.bf16.bf16 " ACC ", a1, b1, p1, 1, 1, 0, 0;\n"                  \
    "wgmma.mma_async.sync.aligned." SHAPE ".f32.bf16.bf16 " ACC ", a2, b2, p1, 1, 1, 0, 0;\n"                  \
    "wgmma.mma_async.sync.aligned." SHAPE ".f32.bf16.bf16 " ACC ", a3, b3, p1, 1, 1, 0, 0;\n}\n"
// D = 128: the same over both halves of the tiles, k steps 0-3 in the left halves, 4-7 in the right ones (1024
// bytes = 64 start units on; att_sw)
#define ATT_WG_ABT8(SHAPE, ACC, DA, DB)                                                                          \
    "{\n.reg .pred p0, p1;\n.reg .b64 a1, a2, a3, a4, a5, a6, a7, b1, b2, b3, b4, b5, b6, b7;\n"              \
    "setp.ne.b32 p0, 0, 0;\nsetp.ne.b32 p1, 1, 0;\n"                                                           \
    "add.s64 a1, " DA ", 2;\nadd.s64 a2, " DA ", 4;\nadd.s64 a3, " DA ", 6;\nadd.s64 a4, " DA ", 64;\n"        \
    "add.s64 a5, " DA ", 66;\nadd.s64 a6, " DA ", 68;\nadd.s64 a7, " DA ", 70;\n"                              \
    "add.s64 b1, " DB ", 2;\nadd.s64 b2, " DB ", 4;\nadd.s64 b3, " DB ", 6;\nadd.s64 b4, " DB ", 64;\n"        \
    "add.s64 b5, " DB ", 66;\nadd.s64 b6, " DB ", 68;\nadd.s64 b7, " DB ", 70;\n"                              \
    "wgmma.mma_async.sync.aligned." SHAPE ".f32.bf16.bf16 " ACC ", " DA ", " DB ", p0, 1, 1, 0, 0;\n"          \
    "wgmma.mma_async.sync.aligned." SHAPE ".f32.bf16.bf16 " ACC ", a1, b1, p1, 1, 1, 0, 0;\n"                  \
    "wgmma.mma_async.sync.aligned." SHAPE ".f32.bf16.bf16 " ACC ", a2, b2, p1, 1, 1, 0, 0;\n"                  \
    "wgmma.mma_async.sync.aligned." SHAPE ".f32.bf16.bf16 " ACC ", a3, b3, p1, 1, 1, 0, 0;\n"                  \
    "wgmma.mma_async.sync.aligned." SHAPE ".f32.bf16.bf16 " ACC ", a4, b4, p1, 1, 1, 0, 0;\n"                  \
    "wgmma.mma_async.sync.aligned." SHAPE ".f32.bf16.bf16 " ACC ", a5, b5, p1, 1, 1, 0, 0;\n"                  \
    "wgmma.mma_async.sync.aligned." SHAPE ".f32.bf16.bf16 " ACC ", a6, b6, p1, 1, 1, 0, 0;\n"                  \
    "wgmma.mma_async.sync.aligned." SHAPE ".f32.bf16.bf16 " ACC ", a7, b7, p1, 1, 1, 0, 0;\n}\n"
#define ATT_WG_ACC16 "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15}"
#define ATT_WG_ACC32                                                                                               \
    "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29," \
    "%30,%31}"
#define ATT_WG_ACC64                                                                                               \
    "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29," \
    "%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,"   \
    "%57,%58,%59,%60,%61,%62,%63}"
#define ATT_WG_R4(i) "+f"(acc[i][0]), "+f"(acc[i][1]), "+f"(acc[i][2]), "+f"(acc[i][3])
#define ATT_WG_R32(i) ATT_WG_R4(i), ATT_WG_R4(i + 1), ATT_WG_R4(i + 2), ATT_WG_R4(i + 3)
// A descriptor from its low word (K-major: att_wg_desc_lo; MN-major: att_wg_desc_mn_lo) and the head dim: the high
// word holds the stride between 8-row groups, 1024 bytes at D = 64 and 2048 at D = 128 (att_sw), and the swizzle.
// A kernel with a ring of stages computes the low word of stage 0 once and adds the stage's offset to the start
// field (bytes / 16, no carry, see above): one shuffle and one move per descriptor and step instead of also
// masking, shifting and or-ing the address.
template <int D>
__device__ __forceinline__ uint64_t att_wg_desc(uint32_t lo) {
    return ((uint64_t)D << 32) | (1ull << 62) | att_uniform(lo);
}
// acc = A * B^T for [rows][D] tiles of either head dim (D = 128: ATT_WG_ABT8, the k steps 4-7 in the right halves
// of the tiles), from descriptors (att_wg_desc<D>), from shared addresses, or from shared addresses and waited for
#define ATT_WG_ABT_NT(ABT)                                                                                           \
    if constexpr (NT == 16) {                                                                                        \
        asm volatile(ABT("m64n128k16", ATT_WG_ACC64, "%64", "%65")                                                   \
                     : ATT_WG_R32(0), ATT_WG_R32(4), ATT_WG_R32(8), ATT_WG_R32(12)                                   \
                     : "l"(da), "l"(db));                                                                            \
    } else if constexpr (NT == 8) {                                                                                  \
        asm volatile(ABT("m64n64k16", ATT_WG_ACC32, "%32", "%33") : ATT_WG_R32(0), ATT_WG_R32(4) : "l"(da), "l"(db)); \
    } else {                                                                                                         \
        asm volatile(ABT("m64n32k16", ATT_WG_ACC16, "%16", "%17") : ATT_WG_R32(0) : "l"(da), "l"(db));                \
    }
template <int D, int NT>
__device__ __forceinline__ void att_wgmma_abt_issue_d(float (&acc)[NT][4], uint64_t da, uint64_t db) {
    static_assert(NT == 16 || NT == 8 || NT == 4, "n = 128, 64 or 32");
#if ATT_WGMMA
    if constexpr (D == 64) {
        ATT_WG_ABT_NT(ATT_WG_ABT4)
    } else {
        ATT_WG_ABT_NT(ATT_WG_ABT8)
    }
#endif
}
#undef ATT_WG_ABT_NT
template <int D, int NT>
__device__ __forceinline__ void att_wgmma_abt_issue(float (&acc)[NT][4], uint32_t sA, uint32_t sB) {
    att_wgmma_abt_issue_d<D>(acc, att_wg_desc<D>(att_wg_desc_lo(sA)), att_wg_desc<D>(att_wg_desc_lo(sB)));
}
template <int D, int NT>
__device__ __forceinline__ void att_wgmma_abt(float (&acc)[NT][4], uint32_t sA, uint32_t sB) {
    att_wg_fence();
    att_wgmma_abt_issue<D>(acc, sA, sB);
    att_wg_commit_wait();
    att_wg_keep(acc);
}

// B operand read "transposed" (MN-major): B[k][n] = tile row k, column n of a [rows][D] swizzled tile (V, K, Q or
// dO in P V, dS K, P^T dO, dS^T Q). The atoms are the same 8 rows x 128 bytes (64 columns); the next 8 k-rows are
// 1024 bytes on (D = 128: 2048; the stride offset, in the high word: att_wg_desc), and at D = 128 the atom of
// columns 64-127 is 1024 bytes after that of columns 0-63 (the leading offset, 64 units; at D = 64 there is only
// one atom along n and the field is not read). (low word)
__device__ __forceinline__ uint32_t att_wg_desc_mn_lo(uint32_t saddr) { return ((saddr & 0x3FFFFu) >> 4) | (64u << 16); }
// acc (64 x 64 per warpgroup) += A (64 x 16NK; each warp its 16 rows; a[kk] is the k step kk in the mma.sync
// A-fragment order: a[kk][0] row g k 2tq.., [1] row g+8, [2] row g k 2tq+8.., [3] row g+8 k 2tq+8..) * B (16NK x 64:
// tile rows 0..16NK-1 at sB; k step kk reads rows 16kk.., 2048 bytes = 128 start units on). NK = 2 or 4 wgmma in one
// asm block (see ATT_WG_ABT4). Issue only: the caller brackets a batch with att_wg_fence() / att_wg_commit_wait()
// (a must stay untouched until then).
#define ATT_WG_AV(A, DB) "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 " ATT_WG_ACC32 ", " A ", " DB ", p, 1, 1, 1;\n"
template <int NK>
__device__ __forceinline__ void att_wgmma_av64_d(float (&acc)[8][4], const uint32_t (&a)[NK][4], uint64_t db) {
    static_assert(NK == 2 || NK == 4, "2 or 4 k steps");
#if ATT_WGMMA
    if constexpr (NK == 2) {
        asm volatile("{\n.reg .pred p;\n.reg .b64 b1;\nsetp.ne.b32 p, 1, 0;\nadd.s64 b1, %40, 128;\n"
                     ATT_WG_AV("{%32,%33,%34,%35}", "%40") ATT_WG_AV("{%36,%37,%38,%39}", "b1") "}\n"
                     : ATT_WG_R32(0), ATT_WG_R32(4)
                     : "r"(a[0][0]), "r"(a[0][1]), "r"(a[0][2]), "r"(a[0][3]),
                       "r"(a[1][0]), "r"(a[1][1]), "r"(a[1][2]), "r"(a[1][3]), "l"(db));
    } else {
        asm volatile("{\n.reg .pred p;\n.reg .b64 b1, b2, b3;\nsetp.ne.b32 p, 1, 0;\n"
                     "add.s64 b1, %48, 128;\nadd.s64 b2, %48, 256;\nadd.s64 b3, %48, 384;\n"
                     ATT_WG_AV("{%32,%33,%34,%35}", "%48") ATT_WG_AV("{%36,%37,%38,%39}", "b1")
                     ATT_WG_AV("{%40,%41,%42,%43}", "b2") ATT_WG_AV("{%44,%45,%46,%47}", "b3") "}\n"
                     : ATT_WG_R32(0), ATT_WG_R32(4)
                     : "r"(a[0][0]), "r"(a[0][1]), "r"(a[0][2]), "r"(a[0][3]),
                       "r"(a[1][0]), "r"(a[1][1]), "r"(a[1][2]), "r"(a[1][3]),
                       "r"(a[2][0]), "r"(a[2][1]), "r"(a[2][2]), "r"(a[2][3]),
                       "r"(a[3][0]), "r"(a[3][1]), "r"(a[3][2]), "r"(a[3][3]), "l"(db));
    }
#endif
}
// the same for a D = 128 tile, one m64n128 product per k step (both halves, 2 atoms along n): acc 64 x 128
#define ATT_WG_AV128(A, DB) "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " ATT_WG_ACC64 ", " A ", " DB ", p, 1, 1, 1;\n"
template <int NK>
__device__ __forceinline__ void att_wgmma_av128_d(float (&acc)[16][4], const uint32_t (&a)[NK][4], uint64_t db) {
    static_assert(NK == 2 || NK == 4, "2 or 4 k steps");
#if ATT_WGMMA
    if constexpr (NK == 2) {
        asm volatile("{\n.reg .pred p;\n.reg .b64 b1;\nsetp.ne.b32 p, 1, 0;\nadd.s64 b1, %72, 256;\n"
                     ATT_WG_AV128("{%64,%65,%66,%67}", "%72") ATT_WG_AV128("{%68,%69,%70,%71}", "b1") "}\n"
                     : ATT_WG_R32(0), ATT_WG_R32(4), ATT_WG_R32(8), ATT_WG_R32(12)
                     : "r"(a[0][0]), "r"(a[0][1]), "r"(a[0][2]), "r"(a[0][3]),
                       "r"(a[1][0]), "r"(a[1][1]), "r"(a[1][2]), "r"(a[1][3]), "l"(db));
    } else {
        asm volatile("{\n.reg .pred p;\n.reg .b64 b1, b2, b3;\nsetp.ne.b32 p, 1, 0;\n"
                     "add.s64 b1, %80, 256;\nadd.s64 b2, %80, 512;\nadd.s64 b3, %80, 768;\n"
                     ATT_WG_AV128("{%64,%65,%66,%67}", "%80") ATT_WG_AV128("{%68,%69,%70,%71}", "b1")
                     ATT_WG_AV128("{%72,%73,%74,%75}", "b2") ATT_WG_AV128("{%76,%77,%78,%79}", "b3") "}\n"
                     : ATT_WG_R32(0), ATT_WG_R32(4), ATT_WG_R32(8), ATT_WG_R32(12)
                     : "r"(a[0][0]), "r"(a[0][1]), "r"(a[0][2]), "r"(a[0][3]),
                       "r"(a[1][0]), "r"(a[1][1]), "r"(a[1][2]), "r"(a[1][3]),
                       "r"(a[2][0]), "r"(a[2][1]), "r"(a[2][2]), "r"(a[2][3]),
                       "r"(a[3][0]), "r"(a[3][1]), "r"(a[3][2]), "r"(a[3][3]), "l"(db));
    }
#endif
}
// acc (64 x D per warpgroup) += A * B for a [rows][D] tile B of either head dim
template <int D, int NK>
__device__ __forceinline__ void att_wgmma_av_d(float (&acc)[D / 8][4], const uint32_t (&a)[NK][4], uint64_t db) {
    if constexpr (D == 64) att_wgmma_av64_d(acc, a, db);
    else att_wgmma_av128_d(acc, a, db);
}
template <int D, int NK>
__device__ __forceinline__ void att_wgmma_av(float (&acc)[D / 8][4], const uint32_t (&a)[NK][4], uint32_t sB) {
    att_wgmma_av_d<D>(acc, a, att_wg_desc<D>(att_wg_desc_mn_lo(sB)));
}
#undef ATT_WG_AV
#undef ATT_WG_AV128
#undef ATT_WG_R32
#undef ATT_WG_R4
#undef ATT_WG_ACC64
#undef ATT_WG_ACC32
#undef ATT_WG_ACC16
#undef ATT_WG_ABT4
#undef ATT_WG_ABT8

// shared-memory writes of this thread (cp.async, st.shared) become visible to wgmma (the async proxy) once every
// writer has run this and a barrier follows
__device__ __forceinline__ void att_fence_async_smem() {
#if ATT_WGMMA
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// mbarriers and TMA (sm_90): a K tile is loaded by one thread with one bulk tensor copy that signals an mbarrier
// ("full": the stage holds the tile) when its bytes have landed; each warp arrives on a second mbarrier ("empty")
// once its wgmma has read the stage, and the loading thread waits on that before it refills the stage. Waits take
// the parity of the phase they wait for (phase k of a barrier completes for the (k+1)-th time it fills up; a wait
// for parity 1 on a fresh barrier returns at once, so the first refill of each stage does not block).
__device__ __forceinline__ void att_mbar_init(uint64_t* bar, int count) {
#if ATT_WGMMA
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(att_smem_addr(bar)), "r"(count) : "memory");
#endif
}
// the inits become visible to the other threads and to the async proxy (TMA) after this and a barrier
__device__ __forceinline__ void att_mbar_init_fence() {
#if ATT_WGMMA
    asm volatile("fence.mbarrier_init.release.cluster;\nfence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
// a ring of ns stages: full[i] fills on one expect_tx arrival plus its bytes, empty[i] on empty_count arrivals
// (one per warp). Thread 0 calls it; the inits are visible after the next barrier.
__device__ __forceinline__ void att_mbar_ring_init(uint64_t* full, uint64_t* empty, int ns, int full_count, int empty_count) {
    for (int i = 0; i < ns; i++) {
        att_mbar_init(&full[i], full_count);
        att_mbar_init(&empty[i], empty_count);
    }
    att_mbar_init_fence();
}
__device__ __forceinline__ void att_mbar_arrive(uint64_t* bar) {
#if ATT_WGMMA
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(att_smem_addr(bar)) : "memory");
#endif
}
// arrive and announce the bytes the next TMA copy will deliver to this barrier
__device__ __forceinline__ void att_mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
#if ATT_WGMMA
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(att_smem_addr(bar)), "r"(bytes)
                 : "memory");
#endif
}
__device__ __forceinline__ void att_mbar_wait(uint64_t* bar, uint32_t parity) {
#if ATT_WGMMA
    asm volatile("{\n.reg .pred P;\nATT_MBAR_WAIT:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 P, [%0], %1;\n"
                 "@!P bra ATT_MBAR_WAIT;\n}\n" ::"r"(att_smem_addr(bar)), "r"(parity) : "memory");
#endif
}
// box {c0, c1, c2, c3} of the 4-D tensor map at tmap (a __grid_constant__ kernel parameter) into dst; the copy
// completes bytes on bar. Coordinates past the tensor's end read as zeros.
__device__ __forceinline__ void att_tma_load4(void* dst, const void* tmap, int c0, int c1, int c2, int c3, uint64_t* bar) {
#if ATT_WGMMA
    asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], [%6];\n"
                 ::"r"(att_smem_addr(dst)), "l"(tmap), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(att_smem_addr(bar))
                 : "memory");
#endif
}

// The producers of a TMA ring stage. D = 64: thread 0, one box of ROWS x 64 per tile. D = 128: lane 0 of every warp;
// a tile is two 128-byte-swizzled halves per 8-row group (att_sw), which a tensor copy can only write as one
// 8 x 64 box each, so the 2 ROWS / 8 boxes are spread over the warps (each producer waits for the stage to be
// free, then arrives on its full barrier with the bytes of its own boxes).
template <int D> __host__ __device__ constexpr int att_tma_producers() { return D == 64 ? 1 : ATT_WARPS; }
// the boxes of producer w (0 .. att_tma_producers<D>() - 1) that bring rows r0 .. r0 + ROWS - 1 of head (h, b) into
// the tile at dst, completing on bar; each producer delivers att_tma_bytes<D, ROWS>() bytes
template <int D, int ROWS> __host__ __device__ constexpr uint32_t att_tma_bytes() {
    return ROWS * D * 2 / att_tma_producers<D>();
}
template <int D, int ROWS>
__device__ __forceinline__ void att_tma_tile(att_bf16* dst, const void* tmap, int r0, int h, int b, uint64_t* bar, int w) {
    if constexpr (D == 64) {
        att_tma_load4(dst, tmap, 0, r0, h, b, bar);
    } else {
        static_assert(ROWS % (8 * ATT_WARPS) == 0, "whole 8-row groups per producer");
#pragma unroll
        for (int i = 0; i < ROWS / (8 * ATT_WARPS); i++) {
            const int grp = w + i * ATT_WARPS;
#pragma unroll
            for (int hf = 0; hf < 2; hf++)
                att_tma_load4(dst + grp * 8 * D + hf * 512, tmap, 64 * hf, r0 + 8 * grp, h, b, bar);
        }
    }
}

// The tile ring of attn_out_kernel and attn_bwd_dq_kernel (K and V tiles) and of attn_bwd_dkdv_kernel (Q and dO
// tiles, with theta and delta of their rows: ROWS). NS stages; stage s holds a 64-row tile of the first tensor
// ("k") at k0 + s * stride and the same rows of the second ("v") at v0 + s * stride (elements); with ROWS also the
// 64 floats of those rows of two row vectors at r0 + s * 64 and r1 + s * 64. The live tiles go through it in order,
// each loaded two tiles ahead. TMA (sm_90a): the producers (att_tma_producers) fill a stage once every warp has
// released it (its empty barrier) and the warps wait on its full barrier only, so the warps of a CTA need not move in
// step; NS = 4, as a stage is refilled two tiles after its use. The row vectors have no 16-byte alignment for tensor
// copies (T is any length): warp 0 copies them by cp.async, each lane arriving on the full barrier when its copies
// land (full_arrivals counts them). Otherwise all threads copy by cp.async (NS = 3) and each tile starts with a CTA
// barrier. Use: load(first live tile, 0), load(second, 1), [barrier], then per tile acquire(tile two ahead), read
// stage st, release().
template <int D, int NS, bool TMA, bool ROWS = false>
struct AttKVRing {
    att_bf16* k0; att_bf16* v0; int stride;
    uint64_t* full; uint64_t* empty;         // (TMA) [NS] each, att_mbar_ring_init(full, empty, NS, full_arrivals, warps)
    const CUtensorMap* tk; const CUtensorMap* tv; int h, b;                   // (TMA)
    const att_bf16* gk; const att_bf16* gv; long long k_st, v_st; int T;      // (cp.async)
    int tid;                                  // this thread (cp.async: its chunks; TMA: warp tid / 32 picks the boxes)
    int nkt;                                  // tiles of the CTA: tile nkt and later are never loaded
    float* r0 = nullptr; float* r1 = nullptr; // (ROWS) [NS][64] each in shared memory
    const float* gr0 = nullptr; const float* gr1 = nullptr; // (ROWS) the row vectors (T floats each)
    // arrivals that fill a stage's full barrier: the producers (with their bytes), and warp 0's lanes with ROWS
    static constexpr int full_arrivals = att_tma_producers<D>() + (ROWS ? 32 : 0);
    // (TMA) the producers: lane 0 of the first att_tma_producers<D>() warps
    bool producer = TMA && (threadIdx.x & 31) == 0 && (int)(threadIdx.x >> 5) < att_tma_producers<D>();
    int st = 0, ld_stage = 2;                 // the stage read now, the stage loaded next
    uint32_t ph = 0, ld_ph = 0;               // (TMA) parity of the current round of the reads / of the loads

    // (ROWS) rows 64 t .. 64 t + 63 of the row vectors into stage s by this thread's cp.async (zeros past T): lane l
    // of warp 0 (TMA) or thread l < 128 (cp.async) copies 4 (1) of the 128 floats
    __device__ __forceinline__ void load_rows(int t, int s, int l, int per) {
        for (int e = 0; e < per; e++) {
            const int i = l + 32 * e, vec = i >> 6, r = t * ATT_BN + (i & 63);
            const bool ok = r < T;
            att_cp4((vec ? r1 : r0) + s * ATT_BN + (i & 63), (vec ? gr1 : gr0) + (ok ? r : 0), ok);
        }
    }
    // stage s gets tile t (64 rows from 64 t)
    __device__ __forceinline__ void load(int t, int s) {
        if constexpr (TMA) {
            if (producer && t < nkt) {
                const int warp = tid >> 5;
                att_mbar_wait(&empty[s], ld_ph ^ 1u); // every warp is done with the tile NS - 2 steps back
                att_mbar_expect_tx(&full[s], 2 * att_tma_bytes<D, ATT_BN>());
                att_tma_tile<D, ATT_BN>(k0 + s * stride, tk, t * ATT_BN, h, b, &full[s], warp);
                att_tma_tile<D, ATT_BN>(v0 + s * stride, tv, t * ATT_BN, h, b, &full[s], warp);
            }
            if (ROWS && tid < 32 && t < nkt) { // warp 0: the row vectors
                if (!producer) att_mbar_wait(&empty[s], ld_ph ^ 1u);
                load_rows(t, s, tid, 4);
                att_cp_mbar_arrive(&full[s]);
            }
            if (s == NS - 1) ld_ph ^= 1u;
        } else {
            if (t < nkt) {
                att_load_tile<ATT_BN, D>(k0 + s * stride, gk, k_st, t * ATT_BN, T, tid);
                att_load_tile<ATT_BN, D>(v0 + s * stride, gv, v_st, t * ATT_BN, T, tid);
                if (ROWS && tid < 2 * ATT_BN) load_rows(t, s, tid, 1);
            }
            att_cp_commit();
        }
    }
    // start of a tile: key tile `ahead` (two live tiles on) goes into its stage, and stage st holds the tile when
    // this returns (TMA: every warp waits, so that none arrives on a later round early)
    __device__ __forceinline__ void acquire(int ahead) {
        if constexpr (TMA) {
            load(ahead, ld_stage);
            att_mbar_wait(&full[st], ph);
        } else {
            att_cp_wait<1>();
            att_fence_async_smem();
            __syncthreads();
            load(ahead, ld_stage);
        }
        ld_stage = ld_stage == NS - 1 ? 0 : ld_stage + 1;
    }
    __device__ __forceinline__ const att_bf16* k() const { return k0 + st * stride; }
    __device__ __forceinline__ const att_bf16* v() const { return v0 + st * stride; }
    __device__ __forceinline__ const float* row0() const { return r0 + st * ATT_BN; }
    __device__ __forceinline__ const float* row1() const { return r1 + st * ATT_BN; }
    // end of a tile: this warp has finished reading stage st (its wgmma included)
    __device__ __forceinline__ void release(int lane) {
        if (TMA && lane == 0) att_mbar_arrive(&empty[st]);
        if (TMA && st == NS - 1) ph ^= 1u;
        st = st == NS - 1 ? 0 : st + 1;
    }
};

__device__ __forceinline__ float att_quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    x += __shfl_xor_sync(0xffffffffu, x, 2);
    return x;
}
__device__ __forceinline__ float att_quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
    return x;
}
// warp max: on sm_80+ one redux.sync over an order-preserving integer image of the float (non-negative floats order
// as their bits; flipping the 31 low bits of a negative one reverses the order of the magnitudes), instead of a
// chain of five shuffles and maxima. x must not be NaN.
__device__ __forceinline__ float att_warp_max(float x) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    int i = __float_as_int(x);
    i = __reduce_max_sync(0xffffffffu, i >= 0 ? i : i ^ 0x7fffffff);
    return __int_as_float(i >= 0 ? i : i ^ 0x7fffffff);
#else
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
#endif
}
__device__ __forceinline__ float att_warp_min(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x = fminf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}
__device__ __forceinline__ float att_warp_sum(float x) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

// Grids are (tiles, heads): blockIdx.x = tile, so the CTAs of one head run together and its K/V stay in L2
// (heads in flight x K/V per head would overflow L2 at long T if heads were the fast index); the head index
// spills into blockIdx.z past 65535.
// a compile-time bool for generic lambdas (decltype(x)::value)
template <bool B> struct AttBool { static constexpr bool value = B; };

__device__ __forceinline__ int att_bh() { return (int)(blockIdx.z * gridDim.y + blockIdx.y); }
static inline dim3 attn_grid(int tiles, int BH) {
    int y = BH < 65535 ? BH : 65535;
    return dim3((unsigned)tiles, (unsigned)y, (unsigned)((BH + y - 1) / y));
}

// first index >= from (and < n) whose bit is set in bits[], else n
__device__ __forceinline__ int att_next_bit(const uint32_t* bits, int from, int n) {
    while (from < n) {
        uint32_t w = bits[from >> 5] >> (from & 31);
        if (w) {
            int r = from + __ffs(w) - 1;
            return r < n ? r : n;
        }
        from = (from | 31) + 1;
    }
    return n;
}

// the tile-mask rows of the 64-query tiles 2qt and 2qt+1 (one 128-row CTA) into shared memory:
// s[0..W) = row 2qt, s[W..2W) = row 2qt+1, s[2W..3W) = either (the caller syncs)
__device__ __forceinline__ void att_load_mask_rows(uint32_t* s, const uint32_t* mask, int bh, int n64, int qt, int W,
                                                   int tid) {
    for (int wd = tid; wd < W; wd += ATT_THREADS) {
        uint32_t m0 = mask[((long long)bh * n64 + 2 * qt) * W + wd];
        uint32_t m1 = 2 * qt + 1 < n64 ? mask[((long long)bh * n64 + 2 * qt + 1) * W + wd] : 0u;
        s[wd] = m0; s[W + wd] = m1; s[2 * W + wd] = m0 | m1;
    }
}

// The live key tiles of a 128-row CTA (its mask rows: 64-query tiles 2qt and 2qt + 1) as a list in shared memory,
// so that a kernel's loop gets its next tiles with one shared load each, not a scan of bits (a chain of dependent
// loads, shifts and bit searches every step, ~15% of attn_out_kernel's stall samples): list[i] = kt << 2 | (live
// for the rows of 2qt: 1) | (for those of 2qt + 1: 2), kt ascending and < nkt; *count = length (at most 32 W).
// Warp 0 builds it; the caller syncs before reading it.
__device__ __forceinline__ void att_live_list(int* list, int* count, const uint32_t* mask, int bh, int n64, int qt,
                                              int W, int nkt, int warp, int lane) {
    if (warp != 0) return;
    const uint32_t* m = mask + ((long long)bh * n64 + 2 * qt) * W;
    const bool second = 2 * qt + 1 < n64;
    const int nw = (nkt + 31) >> 5; // mask words holding tiles < nkt
    int n = 0;
    for (int w0 = 0; w0 < nw; w0 += 32) {
        // lane l loads word w0 + l of both rows (one round of loads for up to 32 words), then the words go round
        const bool has = w0 + lane < nw;
        const uint32_t r0 = has ? m[w0 + lane] : 0u, r1 = has && second ? m[W + w0 + lane] : 0u;
        for (int j = 0; j < 32 && w0 + j < nw; j++) {
            const int kt = (w0 + j) * 32 + lane;
            const uint32_t l0 = (__shfl_sync(0xffffffffu, r0, j) >> lane) & 1u;
            const uint32_t l1 = (__shfl_sync(0xffffffffu, r1, j) >> lane) & 1u;
            const bool live = kt < nkt && (l0 | l1);
            const uint32_t bits = __ballot_sync(0xffffffffu, live);
            if (live) list[n + __popc(bits & ((1u << lane) - 1u))] = kt << 2 | (int)l0 | (int)l1 << 1;
            n += __popc(bits);
        }
    }
    if (lane == 0) *count = n;
}
// shared memory of such a list and its count after it, for mask rows of mask_words words
static inline int attn_live_list_bytes(int mask_words) { return (32 * mask_words + 1) * 4; }
// entry i of such a list (with use_list false: every tile < nkt, live for both halves); nkt << 2 past the end
__device__ __forceinline__ int att_live_at(const int* list, int count, bool use_list, int nkt, int i) {
    if (use_list) return i < count ? list[i] : nkt << 2;
    return i < nkt ? i << 2 | 3 : nkt << 2;
}

// Geometry of query tile qt (ATT_BM = 128 rows, key tiles of ATT_BN = 64) for one warp (16 rows) and for its
// warpgroup (64 rows, the unit of wgmma): the first row, whether any row is < T, and the last key tile any of
// its rows sees (causal: the one holding its last row).
typedef struct {
    int q0, nkt;      // first row of the tile; key tiles the tile attends to
    int r0w, wlast;   // this warp
    bool wactive;
    int glast;        // this warp's warpgroup
    bool gactive;
} AttQTile;
template <bool CAUSAL>
__device__ __forceinline__ AttQTile att_qtile(int T, int qt, int warp) {
    AttQTile t;
    t.q0 = qt * ATT_BM;
    const int kend = CAUSAL ? min(T, t.q0 + ATT_BM) : T;
    t.nkt = (kend + ATT_BN - 1) / ATT_BN;
    t.r0w = t.q0 + warp * 16;
    t.wactive = t.r0w < T;
    t.wlast = CAUSAL ? min(t.nkt - 1, (t.r0w + 15) / ATT_BN) : t.nkt - 1;
    const int r0g = t.q0 + (warp >> 2) * 64;
    t.gactive = r0g < T;
    t.glast = CAUSAL ? min(t.nkt - 1, (r0g + 63) / ATT_BN) : t.nkt - 1;
    return t;
}

// wgmma reads the 128-byte-swizzled tiles correctly only if their atoms are 1024-byte aligned (the dynamic shared
// memory starts there when a kernel has no static shared memory): fail loudly otherwise
__device__ __forceinline__ void att_wg_check_align(const void* smem) {
    if (att_smem_addr(smem) & 1023u) __trap();
}

// ----------------------------------------------------------------------------------------------------------
// kernel parameters

typedef struct {
    // sm_90a: K and V as 4-D tensors (d, t, h, b) for TMA (attn_encode_tmap), at D = 64 in boxes of 128 keys
    // (attn_tau_kernel) and 64 keys (attn_out_kernel), at D = 128 all three in boxes of 8 keys x 64 dims
    // (att_tma_tile); the kernels take the parameters as __grid_constant__
    CUtensorMap tmap_k128, tmap_k64, tmap_v64;
    const att_bf16* q; const att_bf16* k; const att_bf16* v;
    att_bf16* o; att_bf16* o2;
    long long q_sb, q_st, q_sh, k_sb, k_st, k_sh, v_sb, v_st, v_sh, o_sb, o_st, o_sh, o2_sb, o2_st, o2_sh;
    float* stat;
    uint32_t* mask;
    unsigned long long* stats;
    int H, T, BH, niter, count_nnz;
    int n64, mask_words; // 64-tiles per side, mask words per 64-query row
    int track;           // tile tracking on (entmax and n64 <= ATT_NKT_CAP)
    int trk_words;       // words of the smem live bitmaps
    int from_tau;        // attn_fwd_kernel: redo mode (after attn_tau_kernel + attn_out_kernel)
    int niter_cap;       // attn_tau_kernel: at most this many theta passes
    int keybuf;          // attn_tau_kernel: theta from the key buffer (sm_90a, att_tau_keybuf; attn_tau_smem)
    int niter_redo;      // attn_fwd_kernel redo mode: theta passes of the fresh solve
    float tol_cont;      // attn_tau_kernel: after niter passes, go on while some row has |f| > tol_cont
    float alpha, a, c, sl2, scale;
} AttnFwdParams;

typedef struct {
    // sm_90a: K and V for attn_bwd_dq_kernel's TMA ring, as attn_out_kernel's (boxes of 64 keys at D = 64, 8 at 128),
    // Q and dO for attn_bwd_dkdv_kernel's (the same boxes)
    CUtensorMap tmap_k64, tmap_v64, tmap_q64, tmap_do64;
    const att_bf16* q; const att_bf16* k; const att_bf16* v; const att_bf16* o2; const att_bf16* dout;
    att_bf16* dq; att_bf16* dk; att_bf16* dv;
    long long q_sb, q_st, q_sh, k_sb, k_st, k_sh, v_sb, v_st, v_sh, o2_sb, o2_st, o2_sh, do_sb, do_st, do_sh;
    long long dq_sb, dq_st, dq_sh, dk_sb, dk_st, dk_sh, dv_sb, dv_st, dv_sh;
    const float* stat;
    const uint32_t* mask; // NULL: no skipping
    float* delta;
    int H, T, BH, n64, mask_words;
    float a, c, sl2, scale;
} AttnBwdParams;

// ----------------------------------------------------------------------------------------------------------
// forward, kernel 1 (entmax only): row max and theta. One CTA = 128 query rows (8 warps x 16), K streamed in
// steps of 128 keys (two 64-key tiles; 64 for general alpha), loaded two steps ahead. With wgmma (D = 64) the two
// 64-key tiles of a step are two m64n64 groups, and the warps work on the first while the second runs (see PIPE); the
// steps come through TMA into a ring of 4 stages (3 at alpha = 1.5, D = 64) with mbarriers (see TMA: no CTA barrier per
// step, no copy instructions in the warps; -5% time). Elsewhere a 3-stage cp.async ring with one barrier per step. The
// per-step costs (barrier, loads, wgmma issue and wait, loop) were ~40% of the instructions with 64-key steps.
// Registers are kept under 128 so that two CTAs share an SM and the tensor work of one overlaps the elementwise work of
// the other. Writes stat = theta for every row, the mask rows of its two 64-query tiles and the dead-tile counters.

#define ATT_STAGES 3
#define ATT_TAU_TMA_STAGES 4 // stages of the TMA rings (attn_tau_kernel, attn_out_kernel, backward): refilled two
                             // steps after use
// 64-key tiles per attn_tau_kernel step: two where the elementwise work is light (alpha = 1.5; alpha = 2 causal);
// one elsewhere, where two would not fit in the registers and ptxas would serialise the wgmma pipeline (C7511)
__host__ __device__ constexpr int att_tau_tiles(int kind, bool causal) {
    return kind == ENTMAX_15 || (kind == ENTMAX_SPARSEMAX && causal) ? 2 : 1;
}
// the attn_tau_kernel instantiations that may take theta from the key buffer (sm_90a): those with two-tile steps
__host__ __device__ constexpr bool att_tau_keybuf(int kind, bool causal) { return att_tau_tiles(kind, causal) == 2; }
// attn_tau_kernel's TMA ring: 3 stages where the key buffer is at D = 64, as fast as 4 there (measured at alpha =
// 1.5), to make room for it beside two CTAs per SM
__host__ __device__ constexpr int att_tau_tma_stages(int kind, int D, bool causal) {
    return att_tau_keybuf(kind, causal) && D == 64 ? 3 : ATT_TAU_TMA_STAGES;
}

// ring stages of attn_out_kernel and the backward kernels (attn_tau_kernel: att_tau_tma_stages) as the host sizes their
// shared memory: the host passes tma = 1 on compute capability 9.x, where the sm_90a build runs (allocating for the TMA
// layout where a kernel then uses the cp.async one is harmless)
static inline int attn_ring_stages(int tma) { return tma ? ATT_TAU_TMA_STAGES : ATT_STAGES; }
// The key buffer of attn_tau_kernel (sm_90a; alpha = 1.5, and causal alpha = 2: att_tau_keybuf). After the max pass
// every row has a lower bound theta_1 of theta (the 16-class bound), and only keys with x = z - theta_1 > 0 can be in
// the support. So the pass after it keeps those keys (per thread and row, in shared memory) instead of summing at
// theta_1, and theta follows from them alone (att_keybuf_solve): one pass over K instead of the Halley passes that
// N(0, 1) rows need from the bound (two at alpha = 1.5). A key is kept as 16-bit fixed point, which the one FFMA that
// scales its score already produces: it computes y = 2^23 + 1/2 + K x (K = ATT_KEYBUF_K), and from 2^23 to 2^24 the
// floats are the integers, so y rounds to 2^23 + m with m = round(K x + 1/2) in its low 16 bits (1 <= m <= K for
// 0 < x <= 1: theta_1 >= max z - 1, the bracket's low end). The store takes those bits as they are, and
// x = (m - 1/2) / K to within 1 / (2K) = 7.6e-6 (taking the top 16 bits of the mantissa of x + 1 instead cost a shift
// per score: the theta kernel 6-8% slower). x is relative to theta_ref, theta_1 up to the rounding of the offset
// 2^23 + 1/2 - K theta_1, which gives it back exactly. A thread's two rows share its ATT_KEYBUF_SLOTS slots as two
// stacks from both ends: row 0's keys grow up from slot 1, row 1's down from the last slot but one (slot 0 and the last
// slot take what a full stack writes). Shared, the slots fit the keys of both rows where 32 per row did not: on N(0, 1)
// rows 6% of the CTAs at T = 16k and 18% at 32k have a thread with more than 30 keys in a row, but 0 at 16k and
// 4 of 6,144 at 32k have a thread with more than 62 in its two (alpha = 1.5, measured). CTAs whose keys above the bound
// do not fit take the pass again as a Halley pass; so do CTAs with a row that starts from the flat-row guess (not a
// bound).
#define ATT_KEYBUF_SLOTS 64
#define ATT_KEYBUF_NARROW 30 // keys per row that att_keybuf_solve takes in its usual (two-row) form
#define ATT_KEYBUF_K 65534.0f   // steps of the key encoding per unit of x
#define ATT_KEYBUF_2P23 8388608.0f // 2^23
__host__ __device__ constexpr int att_keybuf_bytes() { return ATT_KEYBUF_SLOTS * ATT_THREADS * 2; }
// shared memory of attn_tau_kernel (tma: the sm_90 build's TMA ring; keybuf: with the key buffer)
static inline int attn_tau_smem(int kind, int D, int causal, int n64_tracked, int tma, int keybuf) {
    const int bk = att_tau_tiles(kind, causal != 0) * ATT_BN;
    const int ns = tma ? att_tau_tma_stages(kind, D, causal != 0) : ATT_STAGES;
    return (ATT_BM * D + ns * bk * D) * 2 + 2 * ns * 8 + (ATT_WARPS + ATT_THREADS * 8) * 4 + ATT_WARPS * n64_tracked * 2 +
           (keybuf ? att_keybuf_bytes() : 0);
}

// theta of NR rows (this thread's two rows, or one) from the key buffer, NK keys at most per row. Row j reads the
// slots at bytes base[j] + k * stride of sbuf (k = 1 .. NK) and takes those below top[j] or above bot[j] (its
// stack grows up to top[j] or down to bot[j]). The keys go into registers once (x relative to the bound; 0 in the
// other slots, which entmax_sums_add skips), then safeguarded Halley steps (entmax_tau_step) from the bound until
// |f| <= 1e-5 or the step is below 1e-6 in every row of the warp (2-3 steps on N(0, 1) rows). slot[] is the kernel's
// per-thread slot (row j: tau, lo, hi at slot[j], [2 + j], [4 + j]; slot + 1 for row 1 alone): read and rewritten.
// Not inlined, so that its registers of keys do not weigh on the register allocation of the kernel's passes
// (inlined, the theta kernel was 3-5% slower at T = 4k-16k).
template <int KIND, int NR, int NK>
__device__ __noinline__ void att_keybuf_solve(float a, const unsigned char* sbuf, uint32_t base0, uint32_t base1,
                                              uint32_t top0, uint32_t bot0, uint32_t top1, uint32_t bot1,
                                              uint32_t stride, bool valid0, bool valid1, float* slot) {
    const uint32_t base[2] = {base0, base1}, top[2] = {top0, top1}, bot[2] = {bot0, bot1};
    const bool valid[2] = {valid0, valid1};
    float x[NR][NK], tau1[NR], step[NR];
    EntmaxTau t[NR];
#pragma unroll
    for (int j = 0; j < NR; j++) {
        step[j] = INFINITY;
#pragma unroll
        for (int k = 0; k < NK; k++) {
            const uint32_t at = base[j] + (k + 1) * stride;
            const float v = (float)*(const uint16_t*)(sbuf + at);
            x[j][k] = at < top[j] || at > bot[j] ? fmaf(v, 1.0f / ATT_KEYBUF_K, -0.5f / ATT_KEYBUF_K) : 0.0f;
        }
        t[j].tau = slot[j]; t[j].lo = slot[2 + j]; t[j].hi = slot[4 + j];
        tau1[j] = t[j].tau;
    }
    for (int iter = 0; iter < 8; iter++) {
        EntmaxSums sm[NR];
        bool done[NR];
        bool all_done = true;
#pragma unroll
        for (int j = 0; j < NR; j++) {
            sm[j] = entmax_sums_zero();
            const float d = t[j].tau - tau1[j];
#pragma unroll
            for (int k = 0; k < NK; k++) entmax_sums_add(KIND, a, x[j][k] - d, &sm[j]);
            sm[j].s0 = att_quad_sum(sm[j].s0);
            sm[j].s1 = att_quad_sum(sm[j].s1);
            sm[j].s2 = att_quad_sum(sm[j].s2);
            done[j] = !valid[j] || fabsf(sm[j].s0 - 1.0f) <= 1e-5f || fabsf(step[j]) <= 1e-6f;
            all_done = all_done && done[j];
        }
        if (__all_sync(0xffffffffu, all_done)) break;
#pragma unroll
        for (int j = 0; j < NR; j++)
            if (!done[j]) {
                const float prev = t[j].tau;
                entmax_tau_step(KIND, a, &t[j], sm[j]);
                step[j] = t[j].tau - prev;
            }
    }
#pragma unroll
    for (int j = 0; j < NR; j++) { slot[j] = t[j].tau; slot[2 + j] = t[j].lo; slot[4 + j] = t[j].hi; }
}

template <int KIND, int D, bool CAUSAL>
__global__ void __launch_bounds__(ATT_THREADS, D == 64 ? 2 : 1) attn_tau_kernel(const __grid_constant__ AttnFwdParams p) {
    constexpr int BM = ATT_BM, BN = ATT_BN, NH = att_tau_tiles(KIND, CAUSAL), BK = NH * BN, NW = ATT_WARPS;
    // sm_90a: S = Q K^T by wgmma, one warpgroup = 64 query rows (warps 4wg..4wg+3)
    constexpr bool WG = ATT_WGMMA;
    // PIPE (wgmma, two tiles per step): the two tiles of a step are two wgmma groups, and the warps work on the
    // scores of the first while the tensor cores compute the second. (Keeping a group in flight across the loop's
    // back edge as well, for full overlap, compiles without wgmma serialisation only if the loop leaves by a break at
    // its last step and the ring's waits come where no group is in flight; measured 3% slower at D = 64 and 2% faster
    // at D = 128, not kept: dev/bench/theta_probes.py "rolling", dev/bench/RESULTS-attention.md session 20.)
    constexpr bool PIPE = WG && NH == 2;
    // TMA (with wgmma): the producers (att_tma_producers: thread 0 at D = 64, lane 0 of every warp at D = 128) load
    // each K step by tensor copies into a ring (att_tau_tma_stages), and the warps wait on the stage's mbarrier instead
    // of a CTA barrier, so the two warpgroups drift apart by up to two steps and the warps spend few instructions on
    // copies. Elsewhere (sm_80) a 3-stage cp.async ring with one barrier per step.
    constexpr bool TMA = WG;
    constexpr int NPROD = att_tma_producers<D>();
    const bool producer = TMA && (threadIdx.x & 31) == 0 && (int)(threadIdx.x >> 5) < NPROD;
    const void* const tmap_k = NH == 2 ? (const void*)&p.tmap_k128 : (const void*)&p.tmap_k64;
    constexpr int NS = TMA ? att_tau_tma_stages(KIND, D, CAUSAL) : ATT_STAGES;
    // KEYBUF: the pass after the max pass may fill the key buffer (see att_keybuf_solve; p.keybuf where it fits)
    constexpr bool KEYBUF = PIPE && att_tau_keybuf(KIND, CAUSAL);
    constexpr int KSTRIDE = ATT_THREADS * 2; // bytes between a thread's slots (slot-major: no bank conflicts)
    extern __shared__ __align__(128) unsigned char att_smem[];
    att_bf16* sQ = (att_bf16*)att_smem;
    att_bf16* sK = sQ + BM * D;                        // [NS][BK*D]
    uint64_t* bar_full = (uint64_t*)(sK + NS * BK * D); // [NS] (TMA) stage holds its step's tile
    uint64_t* bar_empty = bar_full + NS;               // [NS] (TMA) every warp is done reading the stage
    float* sDel = (float*)(bar_empty + NS);            // [NW]
    float* sRow = sDel + NW;                           // [256][8]: this thread's two rows, see below
    // [NW][n64] (if track): the tile maxima of x, in half precision rounded up (a tile is never taken for dead by
    // the rounding; half the bytes of fp32, which lets the key buffer fit beside two CTAs per SM up to T = 32k)
    __half* sMw = (__half*)(sRow + ATT_THREADS * 8);
    unsigned char* sKeys = (unsigned char*)(sMw + (p.track ? NW * p.n64 : 0)); // (p.keybuf) [slot][thread] u16

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tq = lane & 3;
    const int bh = att_bh();
    if (bh >= p.BH) return;
    const int b = bh / p.H, h = bh - b * p.H;
    const int T = p.T;
    const int nq = (T + BM - 1) / BM;
    const int qt = nq - 1 - (int)blockIdx.x; // heavy (causal) tiles of a head first
    const AttQTile qg = att_qtile<CAUSAL>(T, qt, warp);
    const int q0 = qg.q0, nkt = qg.nkt, r0w = qg.r0w, wlast = qg.wlast, glast = qg.glast;
    const int nst = (nkt + NH - 1) / NH; // steps per pass; step js = 64-key tiles NH js .. NH js + NH - 1
    const bool wactive = qg.wactive, gactive = qg.gactive;
    const bool track = p.track;
    const float c = p.c, a = p.a;
    if (WG) att_wg_check_align(att_smem);

    const att_bf16* gq = p.q + (long long)b * p.q_sb + (long long)h * p.q_sh;
    const att_bf16* gk = p.k + (long long)b * p.k_sb + (long long)h * p.k_sh;
    // step s of the flat (pass, step) sequence uses step s % nst and stage s % NS; the loads run two steps ahead
    // (ld_step, ld_stage: step and stage of s + 2), counters instead of divisions. TMA: ld_ph / ph = parity of the
    // current round through the ring (of the loads / of the reads).
    int ld_step = nst > 1 ? 1 : 0;
    uint32_t ld_ph = 0, ph = 0;
    if constexpr (TMA) {
        if (tid == 0) att_mbar_ring_init(bar_full, bar_empty, NS, NPROD, NW);
        __syncthreads();
        if (producer) {
            att_mbar_expect_tx(&bar_full[0], att_tma_bytes<D, BK>());
            att_tma_tile<D, BK>(sK, tmap_k, 0, h, b, &bar_full[0], warp);
            att_mbar_expect_tx(&bar_full[1], att_tma_bytes<D, BK>());
            att_tma_tile<D, BK>(sK + BK * D, tmap_k, ld_step * BK, h, b, &bar_full[1], warp);
        }
        att_load_tile<BM, D>(sQ, gq, p.q_st, q0, T, tid);
        att_cp_commit();
        att_cp_wait<0>();
    } else {
        att_load_tile<BM, D>(sQ, gq, p.q_st, q0, T, tid);
        att_cp_commit();
        att_load_tile<BK, D>(sK, gk, p.k_st, 0, T, tid);
        att_cp_commit();
        att_load_tile<BK, D>(sK + BK * D, gk, p.k_st, ld_step * BK, T, tid);
        att_cp_commit();
        att_cp_wait<2>();
    }
    ld_step = ld_step + 1 == nst ? 0 : ld_step + 1;
    int ld_stage = 2, stage = 0;
    att_fence_async_smem();
    __syncthreads();
    uint32_t qf[D / 16][4];
    if (!WG) att_load_afrag<D>(qf, sQ, warp * 16, lane);
    const uint32_t sQg = att_smem_addr(sQ + (warp >> 2) * 64 * D);
    // (PIPE) the descriptor of this warpgroup's Q and the low word of stage 0's K descriptor, built once
    const uint64_t dQg = PIPE ? att_wg_desc<D>(att_wg_desc_lo(sQg)) : 0;
    const uint32_t kLo0 = att_wg_desc_lo(att_smem_addr(sK));
    int row[2] = {r0w + g, r0w + g + 8};
    bool rvalid[2] = {row[0] < T, row[1] < T};
    // th = the theta the current pass evaluates (the running row max during the max pass). What only the end of
    // a pass needs (the row max and the bracket) waits in this thread's shared slot, so that the 64 scores of a
    // step, the sums and the loop state fit in 128 registers without serialising the wgmma pipeline:
    // slot[j] = tau, [2 + j] = lo, [4 + j] = hi (relative to the row max), [6 + j] = scaled row max c * max.
    float* slot = sRow + tid * 8;
    float th[2];
    // max pass: the maxima of this thread's scores of row j in the key classes k mod 16 = 2tq + (k mod 2) +
    // 8 ((k / 8) mod 2), i = 2 ((k / 8) mod 2) + k mod 2 (with the quad's: the 16 classes of entmax_lower_bound_step)
    float cmax[2][4];
#pragma unroll
    for (int j = 0; j < 2; j++)
#pragma unroll
        for (int i = 0; i < 4; i++) cmax[j][i] = -INFINITY;
    // [row][n8 tile parity]: two independent accumulation chains per row (ILP). In the max pass (alpha = 1.5) the
    // same registers hold the moments of the raw scores for entmax15_tau_guess: s0 = sum acc, s1 = sum acc^2.
    EntmaxSums sums[2][2] = {}; // (zeroed again at the start of every pass)
    // GUESS: the max pass also takes the mean and variance of each row (two more instructions per score), for a
    // starting theta near the root in flat rows. After the first step a warp goes on with them only if one of its
    // rows looks flat on that step's keys, so peaked rows pay for one step only.
    constexpr bool GUESS = KIND == ENTMAX_15;
    bool moments = GUESS;
    const int n_mom = BN * min(T / BN, CAUSAL ? (r0w + 1) / BN : T / BN); // keys of the warp's full tiles
    // row j's moments (held in sums during the max pass) over `count` keys, as mu and v of z relative to acc_max
    auto row_moments = [&](int j, float count, float acc_max, float* mu, float* v) {
        entmax_moments(att_quad_sum(sums[j][0].s0 + sums[j][1].s0), att_quad_sum(sums[j][0].s1 + sums[j][1].s1), count,
                       c, acc_max, mu, v);
    };
    int it = 0;
    bool maxpass = true, tracked = false, near = false;
    // KEYBUF: keypass = the pass fills the key buffer (after the max pass, unless a row of the CTA starts from the
    // flat-row guess, which is not a lower bound); kp[j] = byte offset of the next slot of row j's stack (row 0's
    // grows up from slot 1, row 1's down from the last slot but one)
    bool guessed = false, keypass = false;
    int kp[2]; // (signed: the bottom stack's clamp at slot 0 must not wrap around)
    const int kbase = tid * 2;
    while (true) {
        // a pass that may be the last one records the tile maxima (trk): from pass niter (the first the loop may
        // stop after; every row starts near the root, so it usually is the last) on, after a pass with every
        // row near the root, and in a pass that fills the key buffer
        const bool trk = !maxpass && track && (it >= p.niter - 1 || near || keypass);
#pragma unroll
        for (int j = 0; j < 2; j++) sums[j][0] = sums[j][1] = entmax_sums_zero();
        // the work on the scores st of 64-key tile kt: mask, then the row max (max pass, with the moments) or the
        // sums at th, and in a tracked pass the tile's max of x = z - theta over the warp's rows
        auto tile_work = [&](float (&st)[8][4], const int kt, auto max_pass, auto keys_pass) {
            constexpr bool MAXP = decltype(max_pass)::value;
            constexpr bool KEYS = decltype(keys_pass)::value;
            float mx = -INFINITY;
            if (wactive && kt <= wlast) {
                const int k0 = kt * BN;
                // the moments skip the edge tiles (masked keys; a second path there made ptxas spill): they are
                // over the row's first n_mom keys
                const bool edge = k0 + BN > T || (CAUSAL && k0 + BN - 1 > r0w);
                if (GUESS && MAXP && moments && !edge) {
#pragma unroll
                    for (int nt = 0; nt < 8; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            EntmaxSums& m = sums[e >> 1][nt & 1];
                            m.s0 += st[nt][e];
                            m.s1 = fmaf(st[nt][e], st[nt][e], m.s1);
                        }
                }
                if (edge) {
#pragma unroll
                    for (int nt = 0; nt < 8; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            int key = k0 + nt * 8 + 2 * tq + (e & 1);
                            if (key >= T || (CAUSAL && key > row[e >> 1])) st[nt][e] = -INFINITY;
                        }
                }
                if (MAXP) {
#pragma unroll
                    for (int nt = 0; nt < 8; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            float& m = cmax[e >> 1][(nt & 1) * 2 + (e & 1)];
                            m = fmaxf(m, st[nt][e]);
                        }
                } else if (KEYS) {
                    // the keys above the bound into the buffer (th holds 2^23 + 1/2 - K theta_ref, so y = 2^23 + 1/2 +
                    // K x: its low 16 bits are the key), and the tile max (the pass is tracked). Four scores at a
                    // time: their encodings and tests, then the stores, so that ptxas keeps several predicates in
                    // flight (each store right behind its own compare was a latency chain: the theta kernel 6% slower
                    // at T = 16k)
                    const float ck = c * ATT_KEYBUF_K;
                    float mq[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
#pragma unroll
                    for (int nt = 0; nt < 8; nt++) {
                        float y[4];
                        bool keep[4];
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            y[e] = fmaf(st[nt][e], ck, th[e >> 1]);
                            keep[e] = y[e] > ATT_KEYBUF_2P23; // x > 0
                            mq[(nt & 1) * 2 + (e >> 1)] = fmaxf(mq[(nt & 1) * 2 + (e >> 1)], y[e]);
                        }
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            const int j = e >> 1;
                            if (keep[e]) {
                                *(uint16_t*)(sKeys + kp[j]) = (uint16_t)__float_as_uint(y[e]);
                                if (j == 0) kp[0] = min(kp[0] + KSTRIDE, kbase + (ATT_KEYBUF_SLOTS - 1) * KSTRIDE);
                                else kp[1] = max(kp[1] - KSTRIDE, kbase);
                            }
                        }
                    }
                    // (y is within half a unit of the exact one: (y - 2^23) / K bounds x from above)
                    mx = (fmaxf(fmaxf(mq[0], mq[1]), fmaxf(mq[2], mq[3])) - ATT_KEYBUF_2P23) * (1.0f / ATT_KEYBUF_K);
                } else if (trk) {
                    // the tile max of x in four independent chains (one chain of 32 was a latency stall)
                    float mq[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
#pragma unroll
                    for (int nt = 0; nt < 8; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            float x = fmaf(st[nt][e], c, -th[e >> 1]); // x = z - theta
                            entmax_sums_add(KIND, a, x, &sums[e >> 1][nt & 1]);
                            mq[(nt & 1) * 2 + (e >> 1)] = fmaxf(mq[(nt & 1) * 2 + (e >> 1)], x);
                        }
                    mx = fmaxf(fmaxf(mq[0], mq[1]), fmaxf(mq[2], mq[3]));
                } else {
#pragma unroll
                    for (int nt = 0; nt < 8; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++)
                            entmax_sums_add(KIND, a, fmaf(st[nt][e], c, -th[e >> 1]), &sums[e >> 1][nt & 1]);
                }
            }
            if (!MAXP && trk && kt < nkt) {
                mx = att_warp_max(mx);
                if (lane == 0) sMw[warp * p.n64 + kt] = __float2half_ru(mx);
            }
        };
        // the steps of one pass; the max pass is a separate copy of the loop (no per-step tests of the pass kind)
        auto pass_steps = [&](auto max_pass, auto keys_pass) {
            constexpr bool MAXP = decltype(max_pass)::value;
            for (int js = 0; js < nst; js++) {
                // GUESS: after the first step, go on with the moments only if a row of the warp looks flat on its keys
                // (the cheap part of the test entmax15_tau_guess makes on the whole row)
                if (GUESS && MAXP && js == 1) {
                    bool flat = false;
                    const float n0 = (float)min(n_mom, BK);
#pragma unroll
                    for (int j = 0; j < 2; j++) {
                        const int n = CAUSAL ? min(row[j] + 1, T) : T;
                        float mu, v;
                        row_moments(j, n0, 0.0f, &mu, &v);
                        flat = flat || (rvalid[j] && n_mom >= BN && entmax15_guess_may_apply(n, v));
                    }
                    moments = __any_sync(0xffffffffu, flat);
                }
                // prefetch step + 2 (the step of the next pass when this one ends; what is loaded past the last
                // pass is waited for at the end)
                if constexpr (TMA) {
                    if (producer) {
                        att_mbar_wait(&bar_empty[ld_stage], ld_ph ^ 1u); // its reads of step s - 2 are done
                        att_mbar_expect_tx(&bar_full[ld_stage], att_tma_bytes<D, BK>());
                        att_tma_tile<D, BK>(sK + ld_stage * BK * D, tmap_k, ld_step * BK, h, b, &bar_full[ld_stage], warp);
                    }
                    if (ld_stage == NS - 1) ld_ph ^= 1u;
                    att_mbar_wait(&bar_full[stage], ph);
                } else {
                    att_cp_wait<1>();
                    att_fence_async_smem();
                    __syncthreads();
                    att_load_tile<BK, D>(sK + ld_stage * BK * D, gk, p.k_st, ld_step * BK, T, tid);
                    att_cp_commit();
                }
                ld_step = ld_step + 1 == nst ? 0 : ld_step + 1;
                ld_stage = ld_stage == NS - 1 ? 0 : ld_stage + 1;
                uint64_t* const stage_empty = &bar_empty[stage];
                const att_bf16* sKs = sK + stage * BK * D;
                const uint32_t kLo = kLo0 + stage * (BK * D * 2 / 16); // (PIPE) descriptor low word of the stage
                if (stage == NS - 1) ph ^= 1u;
                stage = stage == NS - 1 ? 0 : stage + 1;
                float s[8 * NH][4]; // s[8hf .. 8hf+7] = 64-key tile NH js + hf
                float(&s0)[8][4] = *reinterpret_cast<float(*)[8][4]>(&s[0][0]);
                float(&s1)[8][4] = *reinterpret_cast<float(*)[8][4]>(&s[8 * (NH - 1)][0]);
                if (PIPE) {
                    // Both tiles are issued whether the warpgroup sees them or not (the stage holds loaded or
                    // zero-filled rows; tile_work ignores what it does not see): a wgmma in a branch would still be in
                    // flight where the branches merge, and ptxas would serialise them all (C7520).
                    att_wg_fence();
                    att_wgmma_abt_issue_d<D>(s0, dQg, att_wg_desc<D>(kLo));
                    att_wg_commit();
                    att_wgmma_abt_issue_d<D>(s1, dQg, att_wg_desc<D>(kLo + BN * D * 2 / 16));
                    att_wg_commit();
                    att_wg_wait<1>();
                    att_wg_keep(s0);
                    tile_work(s0, 2 * js, max_pass, keys_pass);
                    att_wg_wait<0>();
                    att_wg_keep(s1);
                    if (TMA && lane == 0) att_mbar_arrive(stage_empty); // this warp's reads of the stage are done
                    tile_work(s1, 2 * js + 1, max_pass, keys_pass);
                    continue;
                }
                if (WG) {
                    if (gactive && NH * js <= glast) { // warpgroup-uniform
                        if (NH * js + NH - 1 <= glast) att_wgmma_abt<D>(s, sQg, att_smem_addr(sKs));
                        else att_wgmma_abt<D>(s0, sQg, att_smem_addr(sKs)); // NH = 2, only the first tile is visible
                    }
                    if (TMA && lane == 0) att_mbar_arrive(stage_empty); // this warp is done with the stage
                } else if (wactive && NH * js <= wlast) {
                    att_mma_abt<D>(s0, qf, sKs, lane);
                    if (NH == 2 && 2 * js + 1 <= wlast) att_mma_abt<D>(s1, qf, sKs + BN * D, lane);
                }
#pragma unroll
                for (int hf = 0; hf < NH; hf++)
                    tile_work(*reinterpret_cast<float(*)[8][4]>(&s[8 * hf][0]), NH * js + hf, max_pass, keys_pass);
            }
        };
        if (maxpass) {
            pass_steps(AttBool<true>(), AttBool<false>());
        } else if (KEYBUF && keypass) {
#pragma unroll
            for (int j = 0; j < 2; j++) th[j] = fmaf(-ATT_KEYBUF_K, th[j], 0.5f) + ATT_KEYBUF_2P23;
            kp[0] = kbase + KSTRIDE;
            kp[1] = kbase + (ATT_KEYBUF_SLOTS - 2) * KSTRIDE;
            pass_steps(AttBool<false>(), AttBool<true>());
        } else {
            pass_steps(AttBool<false>(), AttBool<false>());
        }
        if (maxpass) {
#pragma unroll
            for (int j = 0; j < 2; j++) {
                float m = att_quad_max(fmaxf(fmaxf(cmax[j][0], cmax[j][1]), fmaxf(cmax[j][2], cmax[j][3])));
                int n = CAUSAL ? min(row[j] + 1, T) : T;
                EntmaxTau t = entmax_tau_init(p.alpha, 0.0f, n);
                if (!(m > -INFINITY)) m = 0.0f;
                // start at the lower bound from the 16 class maxima (x = c (cmax - m) - tau; empty classes: -inf)
                float lb = t.lo;
                for (int i = 0; i < ENTMAX_LB_STEPS; i++) {
                    EntmaxSums sb = entmax_sums_zero();
#pragma unroll
                    for (int k = 0; k < 4; k++) entmax_sums_add(KIND, a, c * (cmax[j][k] - m) - lb, &sb);
                    sb.s0 = att_quad_sum(sb.s0);
                    sb.s1 = att_quad_sum(sb.s1);
                    lb = entmax_lower_bound_step(a, lb, sb);
                }
                t.lo = fminf(lb, t.hi);
                t.tau = t.lo;
                if (GUESS && moments && n_mom >= BN) {
                    // flat rows: mean and variance of z = c acc over the row's first n_mom keys, relative to its max
                    float mu, v, g;
                    row_moments(j, (float)n_mom, m, &mu, &v);
                    if (entmax15_tau_guess(mu, v, n, t.hi, &g)) { t.tau = fmaxf(g, t.lo); guessed = true; }
                }
                slot[j] = t.tau; slot[2 + j] = t.lo; slot[4 + j] = t.hi; slot[6 + j] = c * m;
                th[j] = c * m + t.tau;
            }
            maxpass = false;
            if (KEYBUF && p.keybuf) keypass = !__syncthreads_or(guessed);
            continue;
        }
        if (KEYBUF && keypass) {
            // theta from the key buffer, unless a row's keys did not fit: then the CTA takes the pass again as a
            // Halley pass (from theta_1, as without the buffer). (Rows past T, of zero scores, fill their slots in
            // long rows and so send the last query tile of a head with T % 128 != 0 to the Halley pass: excluding
            // them cost spills in the passes.)
            keypass = false;
            // the stacks fit if neither ran into its end slot nor into the other (row 0 in slots 1 .. kp[0] - 1,
            // row 1 in kp[1] + 1 .. last - 1, in slot units)
            const bool full = !(kp[0] <= kbase + (ATT_KEYBUF_SLOTS - 2) * KSTRIDE && kp[1] >= kbase + KSTRIDE &&
                                kp[0] <= kp[1] + KSTRIDE);
            float th_ref[2]; // the keys' reference, from their offset (exact up to one rounding)
#pragma unroll
            for (int j = 0; j < 2; j++) {
                th_ref[j] = ((ATT_KEYBUF_2P23 - th[j]) + 0.5f) * (1.0f / ATT_KEYBUF_K);
                th[j] = slot[6 + j] + slot[j]; // theta_1 again, for the Halley pass
            }
            if (__syncthreads_or(full)) continue;
            // the solve starts from theta_ref (the bracket stays [theta_1, hi]), and the tile maxima are relative to it
#pragma unroll
            for (int j = 0; j < 2; j++) { th[j] = th_ref[j]; slot[j] = th_ref[j] - slot[6 + j]; }
            // both rows at once where each has at most ATT_KEYBUF_NARROW keys (row 0 in slots 1 .. 30, row 1 in
            // 33 .. 62) in every thread of the warp; else one row after the other, over all the slots
            constexpr int NN = ATT_KEYBUF_NARROW, NWIDE = ATT_KEYBUF_SLOTS - 3;
            const bool narrow =
                kp[0] <= kbase + (NN + 1) * KSTRIDE && kp[1] >= kbase + (ATT_KEYBUF_SLOTS - NN - 2) * KSTRIDE;
            if (__all_sync(0xffffffffu, narrow)) {
                att_keybuf_solve<KIND, 2, NN>(a, sKeys, kbase, kbase + (ATT_KEYBUF_SLOTS - NN - 2) * KSTRIDE, kp[0],
                                              0xffffffffu, 0u, kp[1], KSTRIDE, rvalid[0], rvalid[1], slot);
            } else {
                att_keybuf_solve<KIND, 1, NWIDE>(a, sKeys, kbase, 0u, kp[0], 0xffffffffu, 0u, 0u, KSTRIDE, rvalid[0],
                                                 false, slot);
                att_keybuf_solve<KIND, 1, NWIDE>(a, sKeys, kbase + KSTRIDE, 0u, 0u, kp[1], 0u, 0u, KSTRIDE, rvalid[1],
                                                 false, slot + 1);
            }
            float dmin = INFINITY;
#pragma unroll
            for (int j = 0; j < 2; j++) {
                const float th_eval = th[j];
                th[j] = slot[6 + j] + slot[j];
                if (rvalid[j]) dmin = fminf(dmin, th[j] - th_eval);
            }
            tracked = trk;
            if (tracked) {
                dmin = att_warp_min(dmin);
                if (lane == 0) sDel[warp] = dmin;
            }
            break;
        }
        bool conv = true, nconv = true, ok = true;
        float dmin = INFINITY;
#pragma unroll
        for (int j = 0; j < 2; j++) {
            EntmaxSums sm = sums[j][0];
            entmax_sums_merge(&sm, sums[j][1]);
            sm.s0 = att_quad_sum(sm.s0);
            sm.s1 = att_quad_sum(sm.s1);
            sm.s2 = att_quad_sum(sm.s2);
            float f = sm.s0 - 1.0f;
            EntmaxTau t;
            t.tau = slot[j]; t.lo = slot[2 + j]; t.hi = slot[4 + j];
            entmax_tau_step(KIND, a, &t, sm);
            const float d = t.tau - slot[j]; // the update
            slot[j] = t.tau; slot[2 + j] = t.lo; slot[4 + j] = t.hi;
            const float th_eval = th[j];
            th[j] = slot[6 + j] + t.tau;
            if (rvalid[j]) {
                conv = conv && fabsf(f) <= ATT_TOL_EXIT;
                nconv = nconv && fabsf(f) <= 1e-3f;
                ok = ok && entmax_may_stop(KIND, f, sm, d, p.tol_cont);
                dmin = fminf(dmin, th[j] - th_eval);
            }
        }
        it++;
        int all_conv = __syncthreads_and(conv);
        near = __syncthreads_and(nconv);
        int all_ok = __syncthreads_and(ok);
        // p.niter passes, then more while a row is still far off (flat rows, e.g. at initialisation, need up to
        // 6-8): |f| <= tol_cont before the last update leaves |f| <= 1e-3 after it (measured, see tol_cont), and
        // at alpha = 1.5 so does a near row whose quadratic model puts f at the new theta close to 0
        // (entmax_may_stop)
        if (all_conv || (it >= p.niter && all_ok) || it >= p.niter_cap) {
            tracked = trk;
            if (tracked) {
                dmin = att_warp_min(dmin);
                if (lane == 0) sDel[warp] = dmin;
            }
            break;
        }
    }
    if constexpr (TMA) {
        // the two steps loaded ahead must land before the CTA exits
        if (tid == 0) {
            att_mbar_wait(&bar_full[stage], ph);
            att_mbar_wait(&bar_full[stage == NS - 1 ? 0 : stage + 1], stage == NS - 1 ? ph ^ 1u : ph);
        }
    }
    att_cp_wait<0>();
    __syncthreads();

#pragma unroll
    for (int j = 0; j < 2; j++)
        if (rvalid[j] && tq == 0) p.stat[(long long)bh * T + row[j]] = th[j];
    if (!track) return;
    // mask rows of the 64-query tiles 2qt, 2qt+1 (warps 0-3, 4-7) and the counters
    const int W = p.mask_words;
    unsigned long long dead = 0, total = 0;
    for (int hh = 0; hh < 2; hh++) {
        int i = 2 * qt + hh;
        if (i >= p.n64) break;
        int range = CAUSAL ? min(i + 1, p.n64) : p.n64;
        uint32_t* mrow_g = p.mask ? p.mask + ((long long)bh * p.n64 + i) * W : nullptr;
        for (int wd = warp; wd < W; wd += NW) {
            int kk = wd * 32 + lane;
            bool lv = !tracked && kk < range; // without tracking every visible tile is live
            if (tracked && kk < nkt) {
#pragma unroll
                for (int w = 0; w < 4; w++)
                    lv = lv || __half2float(sMw[(4 * hh + w) * p.n64 + kk]) > sDel[4 * hh + w] - ATT_MARGIN;
            }
            uint32_t bits = __ballot_sync(0xffffffffu, lv);
            if (lane == 0) {
                if (mrow_g) mrow_g[wd] = bits;
                int rem = range - wd * 32;
                if (rem > 0) {
                    uint32_t w = rem < 32 ? bits & ((1u << rem) - 1u) : bits;
                    dead += (unsigned long long)(min(rem, 32) - __popc(w));
                    total += (unsigned long long)min(rem, 32);
                }
            }
        }
    }
    if (p.stats != nullptr && lane == 0 && total) {
        if (dead) atomicAdd(p.stats + 0, dead);
        atomicAdd(p.stats + 1, total);
    }
}

// ----------------------------------------------------------------------------------------------------------
// forward, kernel 2 (entmax): the output pass with theta (stat) and the tile mask from attn_tau_kernel.
//   x = z - theta, p = [x]_+^a, u = [x]_+^(a-1);  O = sum_j p_j v_j / sum_j p_j,  O2 = sum_j u_j v_j / sum_j u_j
// Only the live key tiles are visited. Each 64-key tile is done in two 32-key halves so that the score
// fragments, O and O2 fit in 128 registers and two CTAs share an SM (D = 64). A row whose sum p misses 1 by
// more than ATT_TOL_F (theta not converged) gets stat = NaN and is not trusted: attn_fwd_kernel, launched
// right after in redo mode, solves theta again for the CTAs that hold such a row (rare) and rewrites them.

#ifndef ATT_OUT_MINB
#define ATT_OUT_MINB 2 // CTAs per SM asked of attn_out_kernel at D = 64; -DATT_OUT_MINB=1 to compare
#endif
// shared memory of attn_out_kernel (mask_words = 0 without a mask)
static inline int attn_out_smem(int D, int mask_words, int tma) {
    const int ns = attn_ring_stages(tma);
    return (ATT_BM * D + 2 * ns * ATT_BN * D) * 2 + 2 * ns * 8 + (mask_words ? attn_live_list_bytes(mask_words) : 0);
}

template <int KIND, int D, bool CAUSAL>
__global__ void __launch_bounds__(ATT_THREADS, D == 64 ? ATT_OUT_MINB : 1) attn_out_kernel(const __grid_constant__ AttnFwdParams p) {
    constexpr int BM = ATT_BM, BN = ATT_BN, NDT = D / 8;
    // sm_90a: S = Q K^T, O += P V and O2 += U V by wgmma, one warpgroup = 64 query rows = one mask half (warps
    // 4wg..4wg+3)
    constexpr bool WG = ATT_WGMMA;
    // TMA (with WG): the producers load K and V of each live tile by tensor copies into a 4-stage ring guarded by
    // mbarriers, as in attn_tau_kernel; elsewhere a 3-stage cp.async ring with one barrier per tile
    constexpr bool TMA = WG;
    constexpr int NPROD = att_tma_producers<D>();
    constexpr int NS = TMA ? ATT_TAU_TMA_STAGES : ATT_STAGES;
    extern __shared__ __align__(128) unsigned char att_smem[];
    att_bf16* sQ = (att_bf16*)att_smem;
    att_bf16* sK = sQ + BM * D;                        // [NS][BN*D]
    att_bf16* sV = sK + NS * BN * D;                   // [NS][BN*D]
    uint64_t* bar_full = (uint64_t*)(sV + NS * BN * D); // [NS] (TMA)
    uint64_t* bar_empty = bar_full + NS;               // [NS] (TMA)
    int* sList = (int*)(bar_empty + NS);               // [32 mask_words] the live tiles (att_live_list), if masked
    int* sCount = sList + 32 * p.mask_words;           // its length

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tq = lane & 3;
    const int bh = att_bh();
    if (bh >= p.BH) return;
    const int b = bh / p.H, h = bh - b * p.H;
    const int T = p.T;
    const int nq = (T + BM - 1) / BM;
    const int qt = nq - 1 - (int)blockIdx.x; // heavy (causal) tiles of a head first
    const AttQTile qg = att_qtile<CAUSAL>(T, qt, warp);
    const int q0 = qg.q0, nkt = qg.nkt, r0w = qg.r0w, wlast = qg.wlast, glast = qg.glast;
    const bool wactive = qg.wactive, gactive = qg.gactive;
    const bool use_list = p.mask != nullptr;
    if (WG) att_wg_check_align(att_smem);
    const float c = p.c, a = p.a;
    const bool count_nnz = p.count_nnz;

    const att_bf16* gq = p.q + (long long)b * p.q_sb + (long long)h * p.q_sh;
    const att_bf16* gk = p.k + (long long)b * p.k_sb + (long long)h * p.k_sh;
    const att_bf16* gv = p.v + (long long)b * p.v_sb + (long long)h * p.v_sh;

    if constexpr (TMA) {
        if (tid == 0) att_mbar_ring_init(bar_full, bar_empty, NS, NPROD, ATT_WARPS); // (visible after the barrier below)
    }
    att_load_tile<BM, D>(sQ, gq, p.q_st, q0, T, tid);
    att_cp_commit();
    if (use_list) att_live_list(sList, sCount, p.mask, bh, p.n64, qt, p.mask_words, nkt, warp, lane);
    const int row[2] = {r0w + g, r0w + g + 8};
    const bool rvalid[2] = {row[0] < T, row[1] < T};
    float th[2];
#pragma unroll
    for (int j = 0; j < 2; j++) th[j] = rvalid[j] ? p.stat[(long long)bh * T + row[j]] : 0.0f;
    att_cp_wait<0>();
    att_fence_async_smem();
    __syncthreads();

    const int nlive = use_list ? *sCount : nkt;
    auto live_at = [&](int i) -> int { return att_live_at(sList, nlive, use_list, nkt, i); };
    // the live tiles in order (entry li of the list, att_live_list) through the K/V ring; the first two are loaded here
    AttKVRing<D, NS, TMA> ring{sK, sV, BN * D, bar_full, bar_empty, &p.tmap_k64, &p.tmap_v64, h, b, gk, gv, p.k_st,
                               p.v_st, T, tid, nkt};
    ring.load(live_at(0) >> 2, 0);
    ring.load(live_at(1) >> 2, 1);
    float oacc[NDT][4], o2acc[NDT][4];
#pragma unroll
    for (int i = 0; i < NDT; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) oacc[i][e] = o2acc[i][e] = 0.0f;
    float rs_p[2] = {0.0f, 0.0f}, rs_u[2] = {0.0f, 0.0f};
    unsigned int nnz = 0;
    // (wgmma) the descriptor of this warpgroup's Q and the low words of the K and V descriptors of stage 0, built once
    const uint64_t dQa = WG ? att_wg_desc<D>(att_wg_desc_lo(att_smem_addr(sQ + (warp >> 2) * 64 * D))) : 0;
    const uint32_t kLo0 = att_wg_desc_lo(att_smem_addr(sK)), vLo0 = att_wg_desc_mn_lo(att_smem_addr(sV)); // stage 0
    for (int li = 0; li < nlive; li++) {
        const int e_kt = live_at(li), kt = e_kt >> 2;
        ring.acquire(live_at(li + 2) >> 2);
        const int st = ring.st;
        const bool glive = (e_kt >> (warp >> 2)) & 1; // the tile is live for this warpgroup's 64 rows
        const bool gdo = glive && gactive && kt <= glast; // warpgroup-uniform
        const bool wdo = glive && wactive && kt <= wlast;
        if (WG ? gdo : wdo) {
            const att_bf16* sKb = ring.k();
            const att_bf16* sVb = ring.v();
            // the scores s of the 32 keys from k0: mask, then p and u of both 16-key steps as bf16 A fragments (they
            // take the registers of s)
            auto half_pu = [&](float (&s)[4][4], const int k0, uint32_t (&pa)[2][4], uint32_t (&ua)[2][4]) {
                if (k0 + 32 > T || (CAUSAL && k0 + 31 > r0w)) {
#pragma unroll
                    for (int nt = 0; nt < 4; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            int key = k0 + nt * 8 + 2 * tq + (e & 1);
                            if (key >= T || (CAUSAL && key > row[e >> 1])) s[nt][e] = -INFINITY;
                        }
                }
#pragma unroll
                for (int kk = 0; kk < 2; kk++) {
                    float xv[8], pv[8], uv[8];
#pragma unroll
                    for (int e = 0; e < 8; e++) xv[e] = fmaf(s[2 * kk + (e >> 2)][e & 3], c, -th[(e >> 1) & 1]);
                    if (count_nnz) { // a branch, so that runs without the count do not pay for it
#pragma unroll
                        for (int e = 0; e < 8; e++) nnz += (rvalid[(e >> 1) & 1] && xv[e] > 0.0f) ? 1u : 0u;
                    }
#pragma unroll
                    for (int e = 0; e < 8; e++) {
                        entmax_pu(KIND, a, xv[e], &pv[e], &uv[e]);
                        rs_p[(e >> 1) & 1] += pv[e];
                        rs_u[(e >> 1) & 1] += uv[e];
                    }
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        pa[kk][i] = att_pack(pv[2 * i], pv[2 * i + 1]);
                        ua[kk][i] = att_pack(uv[2 * i], uv[2 * i + 1]);
                    }
                }
            };
            const int k0 = kt * BN;
            if constexpr (WG) {
                // Pipelined within the tile: S of both halves is issued at once; the warps work on half 0 while the
                // tensor cores compute half 1, then on half 1 while they compute P V and U V of half 0; only the last
                // wait drains. (Every warp of the group goes on: rows before the tile or past T get p = u = 0.) Nothing
                // stays in flight across the loop's back edge (ptxas would serialise the wgmma, see attn_tau_kernel).
                const uint32_t kLo = kLo0 + st * (BN * D * 2 / 16), vLo = vLo0 + st * (BN * D * 2 / 16);
                constexpr int HALF = 32 * D * 2 / 16; // start-field offset of keys 32..63
                float s0[4][4], s1[4][4];
                uint32_t pa0[2][4], ua0[2][4], pa1[2][4], ua1[2][4];
                att_wg_fence();
                att_wgmma_abt_issue_d<D>(s0, dQa, att_wg_desc<D>(kLo));
                att_wg_commit();
                att_wgmma_abt_issue_d<D>(s1, dQa, att_wg_desc<D>(kLo + HALF));
                att_wg_commit();
                att_wg_wait<1>();
                att_wg_keep(s0);
                half_pu(s0, k0, pa0, ua0);
                att_wg_fence();
                const uint64_t dV = att_wg_desc<D>(vLo);
                att_wgmma_av_d<D>(oacc, pa0, dV);
                att_wgmma_av_d<D>(o2acc, ua0, dV);
                att_wg_commit();
                att_wg_wait<1>(); // S of half 1 (P V, U V of half 0 may still run)
                att_wg_keep(s1);
                half_pu(s1, k0 + 32, pa1, ua1);
                att_wg_fence();
                const uint64_t dV1 = att_wg_desc<D>(vLo + HALF);
                att_wgmma_av_d<D>(oacc, pa1, dV1);
                att_wgmma_av_d<D>(o2acc, ua1, dV1);
                att_wg_commit_wait();
                att_wg_keep(pa0);
                att_wg_keep(ua0);
                att_wg_keep(pa1);
                att_wg_keep(ua1);
            } else {
#pragma unroll 1
                for (int half = 0; half < 2; half++) {
                    float s[4][4];
                    att_mma_abt_s<D, 4>(s, sQ, warp * 16, sKb + half * 32 * D, lane); // Q from smem: registers
                    uint32_t pa[2][4], ua[2][4];
                    half_pu(s, k0 + half * 32, pa, ua);
#pragma unroll
                    for (int kk = 0; kk < 2; kk++) att_mma_av2<D>(oacc, o2acc, pa[kk], ua[kk], sVb, 2 * half + kk, lane);
                }
            }
        }
        ring.release(lane); // (after this warp's wgmma reads of the stage)
    }
    att_cp_wait<0>();

    att_bf16* go = p.o + (long long)b * p.o_sb + (long long)h * p.o_sh;
    att_bf16* go2 = p.o2 ? p.o2 + (long long)b * p.o2_sb + (long long)h * p.o2_sh : nullptr;
    bool bad = false, keep[2];
    float ip[2], iu[2];
#pragma unroll
    for (int j = 0; j < 2; j++) {
        rs_p[j] = att_quad_sum(rs_p[j]);
        rs_u[j] = att_quad_sum(rs_u[j]);
        keep[j] = rvalid[j] && fabsf(rs_p[j] - 1.0f) <= ATT_TOL_F;
        if (rvalid[j] && !keep[j]) {
            bad = true;
            if (tq == 0) p.stat[(long long)bh * T + row[j]] = NAN; // -> redo
        }
        ip[j] = keep[j] ? 1.0f / rs_p[j] : 0.0f;
        iu[j] = keep[j] && rs_u[j] > 0.0f ? 1.0f / rs_u[j] : 0.0f;
    }
    // the warp's 16 rows of sQ are free: its warpgroup's last wgmma that read them is complete
    att_bf16* const stage = sQ + warp * 16 * D;
    att_store_rows_staged<D>(stage, go + (long long)r0w * p.o_st, p.o_st, oacc, ip, keep, lane);
    if (go2) att_store_rows_staged<D>(stage, go2 + (long long)r0w * p.o2_st, p.o2_st, o2acc, iu, keep, lane);
    if (p.stats != nullptr && p.count_nnz) {
        // a CTA that will be redone counts its nonzeros there
        int any_bad = __syncthreads_or(bad);
        unsigned int t = nnz;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
        if (!any_bad && lane == 0 && t) atomicAdd(p.stats + 2, (unsigned long long)t);
    }
}

// ----------------------------------------------------------------------------------------------------------
// forward, kernel 3: every pass in one kernel (row max, theta passes, output pass; softmax: the online-softmax
// output pass). This is the whole softmax forward and the split = 0 entmax forward of dev/cuda. With
// p.from_tau (redo mode, after attn_out_kernel) a CTA runs only if one of its rows has stat = NaN: it then
// solves theta from scratch (p.niter_redo passes at most) and rewrites O, O2, stat and its mask rows.

template <int KIND, int D, bool CAUSAL>
__device__ __forceinline__ void attn_fwd_tile(const AttnFwdParams& p, const int qt, const int bh) {
    constexpr int BM = ATT_BM, BN = ATT_BN, NW = ATT_WARPS;
    constexpr int NDT = D / 8; // n8 tiles over the head dim
    constexpr bool SOFTMAX = KIND == ENTMAX_SOFTMAX;
    enum { PH_MAX = 0, PH_TAU = 1, PH_OUT = 2 };

    extern __shared__ __align__(128) unsigned char att_smem[];
    att_bf16* sQ = (att_bf16*)att_smem;
    att_bf16* sK = sQ + BM * D;              // [3][BN*D]
    att_bf16* sV = sK + ATT_STAGES * BN * D; // [3][BN*D]
    float* sDel = (float*)(sV + ATT_STAGES * BN * D); // [NW] min over the warp's rows of (theta_new - theta_eval)
    uint32_t* sLive = (uint32_t*)(sDel + NW);     // [3][trk_words]: half 0, half 1, either
    float* sMw = (float*)(sLive + 3 * p.trk_words); // [NW][n64]: max x per (warp, key tile) in the last tau pass

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tq = lane & 3;
    const int b = bh / p.H, h = bh - b * p.H;
    const int T = p.T;
    const AttQTile qg = att_qtile<CAUSAL>(T, qt, warp);
    const int q0 = qg.q0, nkt = qg.nkt, r0w = qg.r0w, wlast = qg.wlast, glast = qg.glast;
    const bool wactive = qg.wactive, gactive = qg.gactive;
    const bool track = !SOFTMAX && p.track;
    // softmax on sm_90a: S = Q K^T and O += P V by wgmma, one warpgroup = 64 query rows. (The entmax redo mode
    // of this kernel has static shared memory in front of the tiles, so they are not 1024-byte aligned there.)
    constexpr bool WG = ATT_WGMMA && SOFTMAX;
    if (WG) att_wg_check_align(att_smem);

    const att_bf16* gq = p.q + (long long)b * p.q_sb + (long long)h * p.q_sh;
    const att_bf16* gk = p.k + (long long)b * p.k_sb + (long long)h * p.k_sh;
    const att_bf16* gv = p.v + (long long)b * p.v_sb + (long long)h * p.v_sh;

    // prologue: Q tile
    att_load_tile<BM, D>(sQ, gq, p.q_st, q0, T, tid);
    att_cp_commit();
    att_cp_wait<0>();
    att_fence_async_smem();
    __syncthreads();
    uint32_t qf[D / 16][4];
    if (!WG) att_load_afrag<D>(qf, sQ, warp * 16, lane);

    // per-row state: j = 0 -> row r0w + g, j = 1 -> row r0w + g + 8
    int row[2] = {r0w + g, r0w + g + 8};
    bool rvalid[2] = {row[0] < T, row[1] < T};
    float mrow[2] = {-INFINITY, -INFINITY}; // max raw score (entmax) / running max (softmax)
    EntmaxTau tt[2];
    float th[2] = {0.0f, 0.0f};             // theta used by the current pass (it changes only between passes)
    EntmaxSums sums[2];
    float rs_p[2], rs_u[2];
    float oacc[NDT][4], o2acc[NDT][4];
    const bool want_o2 = !SOFTMAX && p.o2 != nullptr;
    const float c = p.c, a = p.a;
    unsigned int nnz = 0;

    int phase = SOFTMAX ? PH_OUT : PH_MAX;
    int it = 0, redo = 0;
    int niter = p.niter;
    // live_ok: sLive holds the tile liveness of the coming output pass (half rows + either)
    bool live_ok = false, own_live = false;
    unsigned long long old_dead = 0;
    auto count_dead = [&](unsigned long long* dead, unsigned long long* total) {
        for (int hh = 0; hh < 2; hh++) {
            int i = 2 * qt + hh;
            if (i >= p.n64) continue;
            int range = CAUSAL ? min(i + 1, p.n64) : p.n64;
            int live = 0;
            for (int wd = 0; wd * 32 < range; wd++) {
                uint32_t w = sLive[hh * p.trk_words + wd];
                int rem = range - wd * 32;
                if (rem < 32) w &= (1u << rem) - 1u;
                live += __popc(w);
            }
            *dead += (unsigned long long)(range - live);
            *total += (unsigned long long)range;
        }
    };
    if (!SOFTMAX && p.from_tau) {
        // redo mode (attn_out_kernel flagged a row of this tile): solve theta from scratch
        niter = p.niter_redo;
        redo = 1; // a further miss gets one more theta pass, not another restart
        if (p.mask != nullptr) {
            // the dead tiles attn_tau_kernel counted for these mask rows (the epilogue adds the difference)
            att_load_mask_rows(sLive, p.mask, bh, p.n64, qt, p.mask_words, tid);
            __syncthreads();
            if (tid == 0 && p.stats != nullptr) {
                unsigned long long tot = 0;
                count_dead(&old_dead, &tot);
            }
        }
    }

    while (true) {
        const bool outp = phase == PH_OUT;
        // each pass restarts the 3-stage ring: tiles t0, t1 now, then one tile two steps ahead per iteration
        // (loaded after the barrier into the stage every warp has finished with)
        auto next_tile = [&](int t) -> int {
            return (outp && live_ok) ? att_next_bit(sLive + 2 * p.trk_words, t + 1, nkt) : t + 1;
        };
        auto load_step = [&](int t, int st) {
            if (t < nkt) {
                att_load_tile<BN, D>(sK + st * BN * D, gk, p.k_st, t * BN, T, tid);
                if (outp) att_load_tile<BN, D>(sV + st * BN * D, gv, p.v_st, t * BN, T, tid);
            }
            att_cp_commit();
        };
        __syncthreads(); // every warp is done with every stage of the previous pass
        int kt = (outp && live_ok) ? att_next_bit(sLive + 2 * p.trk_words, 0, nkt) : 0;
        int n1 = kt < nkt ? next_tile(kt) : nkt;
        load_step(kt, 0);
        load_step(n1, 1);
        int st = 0;
        if (outp) {
#pragma unroll
            for (int i = 0; i < NDT; i++)
#pragma unroll
                for (int e = 0; e < 4; e++) oacc[i][e] = o2acc[i][e] = 0.0f;
            rs_p[0] = rs_p[1] = rs_u[0] = rs_u[1] = 0.0f;
            nnz = 0;
        }
        if (phase == PH_TAU) {
            sums[0] = entmax_sums_zero(); sums[1] = entmax_sums_zero();
        }
        while (kt < nkt) {
            int n2 = n1 < nkt ? next_tile(n1) : nkt;
            att_cp_wait<1>();
            att_fence_async_smem();
            __syncthreads();
            load_step(n2, st == 0 ? 2 : st - 1); // stage (st + 2) % 3

            const att_bf16* sKb = sK + st * BN * D;
            const att_bf16* sVb = sV + st * BN * D;
            const bool glive = !(outp && live_ok) || ((sLive[(warp >> 2) * p.trk_words + (kt >> 5)] >> (kt & 31)) & 1u);
            const bool wdo = glive && wactive && kt <= wlast;
            const bool gdo = glive && gactive && kt <= glast; // warpgroup-uniform
            float mx = -INFINITY;
            float s[8][4];
            if (WG) {
                if (gdo) att_wgmma_abt<D>(s, att_smem_addr(sQ + (warp >> 2) * 64 * D), att_smem_addr(sKb));
            } else if (wdo) {
                att_mma_abt<D>(s, qf, sKb, lane);
            }
            // (WG: every warp of the group goes on, for the P V wgmma; a warp whose rows are all before the tile
            // masks every score, so its p are 0 and its running max and sums stay as they are)
            if (WG ? gdo : wdo) {
                const int k0 = kt * BN;
                if (k0 + BN > T || (CAUSAL && k0 + BN - 1 > r0w)) {
#pragma unroll
                    for (int nt = 0; nt < 8; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            int key = k0 + nt * 8 + 2 * tq + (e & 1);
                            if (key >= T || (CAUSAL && key > row[e >> 1])) s[nt][e] = -INFINITY;
                        }
                }
                if (phase == PH_MAX) {
#pragma unroll
                    for (int nt = 0; nt < 8; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) mrow[e >> 1] = fmaxf(mrow[e >> 1], s[nt][e]);
                } else if (phase == PH_TAU) {
#pragma unroll
                    for (int nt = 0; nt < 8; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            float x = fmaf(s[nt][e], c, -th[e >> 1]); // x = z - theta
                            entmax_sums_add(KIND, a, x, &sums[e >> 1]);
                            mx = fmaxf(mx, x);
                        }
                } else {
                    if (SOFTMAX) {
                        // online softmax in the log2 domain: p = exp2(acc*sl2 - m*sl2)
                        float msc[2];
#pragma unroll
                        for (int j = 0; j < 2; j++) {
                            float mt = -INFINITY;
#pragma unroll
                            for (int nt = 0; nt < 8; nt++) mt = fmaxf(mt, fmaxf(s[nt][2 * j], s[nt][2 * j + 1]));
                            mt = att_quad_max(mt);
                            float mnew = fmaxf(mrow[j], mt);
                            float corr = exp2f((mrow[j] - mnew) * p.sl2);
                            mrow[j] = mnew;
                            rs_p[j] *= corr;
#pragma unroll
                            for (int i = 0; i < NDT; i++) { oacc[i][2 * j] *= corr; oacc[i][2 * j + 1] *= corr; }
                            msc[j] = mnew * p.sl2;
                        }
#pragma unroll
                        for (int nt = 0; nt < 8; nt++)
#pragma unroll
                            for (int e = 0; e < 4; e++) {
                                float pr = exp2f(fmaf(s[nt][e], p.sl2, -msc[e >> 1]));
                                s[nt][e] = pr;
                                rs_p[e >> 1] += pr;
                            }
                        // O += P V, P as bf16 A fragments (one per 16-key step). wgmma: all four, one batch per
                        // tile. mma.sync: one at a time (all four at once make sm_80 spill at D = 64).
                        if constexpr (WG) {
                            uint32_t pa[4][4];
#pragma unroll
                            for (int kk = 0; kk < 4; kk++) {
                                pa[kk][0] = att_pack(s[2 * kk][0], s[2 * kk][1]);
                                pa[kk][1] = att_pack(s[2 * kk][2], s[2 * kk][3]);
                                pa[kk][2] = att_pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
                                pa[kk][3] = att_pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
                            }
                            att_wg_fence();
                            att_wgmma_av<D>(oacc, pa, att_smem_addr(sVb));
                            att_wg_commit_wait();
                            att_wg_keep(pa);
                            att_wg_keep(oacc);
                        } else {
#pragma unroll
                            for (int kk = 0; kk < 4; kk++) {
                                uint32_t pa[4] = {att_pack(s[2 * kk][0], s[2 * kk][1]), att_pack(s[2 * kk][2], s[2 * kk][3]),
                                                  att_pack(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                                  att_pack(s[2 * kk + 1][2], s[2 * kk + 1][3])};
                                att_mma_av<D>(oacc, pa, sVb, kk, lane);
                            }
                        }
                    } else {
                        if (p.count_nnz) {
#pragma unroll
                            for (int nt = 0; nt < 8; nt++)
#pragma unroll
                                for (int e = 0; e < 4; e++)
                                    nnz += (rvalid[e >> 1] && fmaf(s[nt][e], c, -th[e >> 1]) > 0.0f) ? 1u : 0u;
                        }
#pragma unroll
                        for (int kk = 0; kk < 4; kk++) {
                            float pv[8], uv[8];
#pragma unroll
                            for (int e = 0; e < 8; e++) {
                                float x = fmaf(s[2 * kk + (e >> 2)][e & 3], c, -th[(e >> 1) & 1]);
                                entmax_pu(KIND, a, x, &pv[e], &uv[e]);
                                rs_p[(e >> 1) & 1] += pv[e];
                                rs_u[(e >> 1) & 1] += uv[e];
                            }
                            uint32_t pa[4] = {att_pack(pv[0], pv[1]), att_pack(pv[2], pv[3]), att_pack(pv[4], pv[5]),
                                              att_pack(pv[6], pv[7])};
                            if (want_o2) {
                                uint32_t ua[4] = {att_pack(uv[0], uv[1]), att_pack(uv[2], uv[3]),
                                                  att_pack(uv[4], uv[5]), att_pack(uv[6], uv[7])};
                                att_mma_av2<D>(oacc, o2acc, pa, ua, sVb, kk, lane);
                            } else {
                                att_mma_av<D>(oacc, pa, sVb, kk, lane);
                            }
                        }
                    }
                }
            }
            if (phase == PH_TAU && track) {
                mx = att_warp_max(mx);
                if (lane == 0) sMw[warp * p.n64 + kt] = mx;
            }
            st = st == ATT_STAGES - 1 ? 0 : st + 1;
            kt = n1;
            n1 = n2;
        }

        // ---- end of pass
        if (phase == PH_MAX) {
            #pragma unroll
            for (int j = 0; j < 2; j++) {
                mrow[j] = att_quad_max(mrow[j]);
                int n = CAUSAL ? min(row[j] + 1, T) : T;
                tt[j] = entmax_tau_init(p.alpha, 0.0f, n);
                if (!(mrow[j] > -INFINITY)) mrow[j] = 0.0f; // rows past T / idle warps: keep finite
                th[j] = c * mrow[j] + tt[j].tau;
            }
            phase = PH_TAU;
            it = 0;
            continue;
        }
        if (phase == PH_TAU) {
            bool conv = true;
            float dmin = INFINITY;
#pragma unroll
            for (int j = 0; j < 2; j++) {
                sums[j].s0 = att_quad_sum(sums[j].s0);
                sums[j].s1 = att_quad_sum(sums[j].s1);
                sums[j].s2 = att_quad_sum(sums[j].s2);
                float f = sums[j].s0 - 1.0f;
                const float th_eval = th[j]; // the theta this pass evaluated
                entmax_tau_step(KIND, a, &tt[j], sums[j]);
                th[j] = c * mrow[j] + tt[j].tau;
                if (rvalid[j]) {
                    conv = conv && fabsf(f) <= ATT_TOL_EXIT;
                    dmin = fminf(dmin, th[j] - th_eval);
                }
            }
            it++;
            int all_conv = __syncthreads_and(conv);
            if (it >= niter || all_conv) {
                if (track) {
                    dmin = att_warp_min(dmin);
                    if (lane == 0) sDel[warp] = dmin;
                    __syncthreads();
                    // live bits per key tile: half 0 = warps 0-3 (q64 tile 2qt), half 1 = warps 4-7
                    for (int wd = warp; wd < p.trk_words; wd += NW) {
                        int kk = wd * 32 + lane;
                        bool l0 = false, l1 = false;
                        if (kk < nkt) {
#pragma unroll
                            for (int w = 0; w < NW; w++) {
                                bool lv = sMw[w * p.n64 + kk] > sDel[w] - ATT_MARGIN;
                                if (w < NW / 2) l0 = l0 || lv; else l1 = l1 || lv;
                            }
                        }
                        uint32_t b0 = __ballot_sync(0xffffffffu, l0), b1 = __ballot_sync(0xffffffffu, l1);
                        if (lane == 0) {
                            sLive[wd] = b0;
                            sLive[p.trk_words + wd] = b1;
                            sLive[2 * p.trk_words + wd] = b0 | b1;
                        }
                    }
                    __syncthreads();
                    live_ok = own_live = true;
                }
                phase = PH_OUT;
            }
            continue;
        }
        // output pass done
        bool bad = false;
#pragma unroll
        for (int j = 0; j < 2; j++) {
            rs_p[j] = att_quad_sum(rs_p[j]);
            rs_u[j] = att_quad_sum(rs_u[j]);
            if (!SOFTMAX && rvalid[j] && !(fabsf(rs_p[j] - 1.0f) <= ATT_TOL_F)) bad = true;
        }
        if (!SOFTMAX) {
            int any_bad = __syncthreads_or(bad);
            if (any_bad && redo < ATT_MAX_REDO) {
                redo++;
                phase = PH_TAU;
                it = niter - 1; // exactly one more tau pass
                live_ok = false;
                continue;
            }
        }
        break;
    }

    // ---- epilogue: O, O2, stat
    att_bf16* go = p.o + (long long)b * p.o_sb + (long long)h * p.o_sh;
    att_bf16* go2 = want_o2 ? p.o2 + (long long)b * p.o2_sb + (long long)h * p.o2_sh : nullptr;
    float ip[2], iu[2];
#pragma unroll
    for (int j = 0; j < 2; j++) {
        ip[j] = rs_p[j] > 0.0f ? 1.0f / rs_p[j] : 0.0f;
        iu[j] = rs_u[j] > 0.0f ? 1.0f / rs_u[j] : 0.0f;
    }
    att_bf16* const stage = sQ + warp * 16 * D; // the warp's rows of sQ, free now
    att_store_rows_staged<D>(stage, go + (long long)r0w * p.o_st, p.o_st, oacc, ip, rvalid, lane);
    if (want_o2) att_store_rows_staged<D>(stage, go2 + (long long)r0w * p.o2_st, p.o2_st, o2acc, iu, rvalid, lane);
#pragma unroll
    for (int j = 0; j < 2; j++) {
        if (!rvalid[j]) continue;
        if (tq == 0) {
            float st = SOFTMAX ? mrow[j] * p.sl2 + log2f(rs_p[j]) : th[j];
            p.stat[(long long)bh * T + row[j]] = st;
        }
    }
    if (!SOFTMAX && p.stats != nullptr && p.count_nnz) {
        unsigned int t = nnz;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xffffffffu, t, o);
        if (lane == 0 && t) atomicAdd(p.stats + 2, (unsigned long long)t);
    }
    if (own_live) {
        // tile mask rows (64-query tiles 2qt, 2qt+1) and the dead-tile counters (after a fallback of the split
        // forward: the difference to what attn_tau_kernel counted)
        for (int hh = 0; hh < 2; hh++) {
            int i = 2 * qt + hh;
            if (i >= p.n64 || p.mask == nullptr) continue;
            uint32_t* mrow_g = p.mask + ((long long)bh * p.n64 + i) * p.mask_words;
            for (int wd = tid; wd < p.mask_words; wd += ATT_THREADS) mrow_g[wd] = sLive[hh * p.trk_words + wd];
        }
        if (tid == 0 && p.stats != nullptr) {
            unsigned long long dead = 0, total = 0;
            count_dead(&dead, &total);
            if (p.from_tau) {
                if (dead != old_dead) atomicAdd(p.stats + 0, dead - old_dead); // modular: may subtract
            } else {
                if (dead) atomicAdd(p.stats + 0, dead);
                atomicAdd(p.stats + 1, total);
            }
        }
    }
}

template <int KIND, int D, bool CAUSAL>
__global__ void __launch_bounds__(ATT_THREADS, (KIND == ENTMAX_SOFTMAX && D == 64) ? 2 : 1)
attn_fwd_kernel(const AttnFwdParams p) {
    const int nq = (p.T + ATT_BM - 1) / ATT_BM;
    if (KIND == ENTMAX_SOFTMAX || !p.from_tau) {
        const int bh = att_bh();
        if (bh < p.BH) attn_fwd_tile<KIND, D, CAUSAL>(p, nq - 1 - (int)blockIdx.x, bh); // heavy causal tiles first
        return;
    }
    if constexpr (KIND != ENTMAX_SOFTMAX) {
    // redo mode: a small 1-D grid walks all (head, query tile) pairs in chunks of 32; warp w checks tiles 4w..4w+3
    // of the chunk for a NaN stat row, then the CTA solves the flagged tiles one after another
    __shared__ uint32_t sFlags[2];
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const long long ntiles = (long long)p.BH * nq;
    if (tid == 0) sFlags[0] = sFlags[1] = 0u;
    __syncthreads();
    int parity = 0;
    for (long long base = (long long)blockIdx.x * 32; base < ntiles; base += (long long)gridDim.x * 32, parity ^= 1) {
        // all loads of the warp's four tiles first, independent of each other (a || chain would make each wait
        // for the one before: 16 memory latencies per warp, most of this kernel's time when nothing is flagged)
        float sv[4][ATT_BM / 32];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const long long t = base + 4 * warp + i;
            const int bh = (int)(t / nq), q0 = (int)(t % nq) * ATT_BM;
#pragma unroll
            for (int r = 0; r < ATT_BM / 32; r++) {
                const int row = q0 + r * 32 + lane;
                sv[i][r] = t < ntiles && row < p.T ? p.stat[(long long)bh * p.T + row] : 0.0f;
            }
        }
        uint32_t bits = 0u;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            bool bad = false;
#pragma unroll
            for (int r = 0; r < ATT_BM / 32; r++) bad |= isnan(sv[i][r]);
            if (__any_sync(0xffffffffu, bad)) bits |= 1u << (4 * warp + i);
        }
        if (lane == 0 && bits) atomicOr(&sFlags[parity], bits);
        __syncthreads();
        uint32_t f = sFlags[parity];
        if (tid == 0) sFlags[parity ^ 1] = 0u; // the next chunk's word (read by nobody until the barrier below)
        while (f) {
            long long t = base + __ffs(f) - 1;
            f &= f - 1;
            attn_fwd_tile<KIND, D, CAUSAL>(p, (int)(t % nq), (int)(t / nq));
            __syncthreads(); // the next tile refills the shared tiles
        }
        __syncthreads();
    }
    }
}

// ----------------------------------------------------------------------------------------------------------
// backward, kernel 1: delta and dQ (one CTA = 128 query rows; loops over key tiles)

#ifndef ATT_DQ_MINB
#define ATT_DQ_MINB 2 // CTAs per SM asked of attn_bwd_dq_kernel with wgmma (D = 64); -DATT_DQ_MINB=1 to compare
#endif
template <int KIND, int D, bool CAUSAL>
__global__ void __launch_bounds__(ATT_THREADS, (ATT_WGMMA && D == 64) ? ATT_DQ_MINB : 1) attn_bwd_dq_kernel(const __grid_constant__ AttnBwdParams p) {
    constexpr int BM = ATT_BM, BN = ATT_BN;
    constexpr int NDT = D / 8;
    constexpr bool SOFTMAX = KIND == ENTMAX_SOFTMAX;
    // TMA (sm_90a): K and V come by tensor copies into a 4-stage ring guarded by mbarriers (refilled two tiles after
    // use, as in attn_out_kernel), so the warps wait on their stage, not on a CTA barrier per tile; elsewhere a
    // 3-stage cp.async ring with one barrier per tile
    constexpr bool TMA = ATT_WGMMA;
    constexpr int NPROD = att_tma_producers<D>();
    constexpr int NS = TMA ? ATT_TAU_TMA_STAGES : ATT_STAGES;
    extern __shared__ __align__(128) unsigned char att_smem[];
    att_bf16* sQ = (att_bf16*)att_smem;
    att_bf16* sdO = sQ + BM * D;
    att_bf16* sKV = sdO + BM * D; // ring: stage s = K tile at sKV + 2s*BN*D, V tile right after it
    static_assert(2 * BN == BM, "O2 tile aliases one ring stage");
    att_bf16* sO2 = sKV + 2 * 2 * BN * D; // prologue only: stage 2, first written in iteration 0 after a barrier
    uint64_t* bar_full = (uint64_t*)(sKV + NS * 2 * BN * D); // [NS] (TMA)
    uint64_t* bar_empty = bar_full + NS;                     // [NS] (TMA)
    float* sDl = (float*)(bar_empty + NS); // [BM]
    int* sList = (int*)(sDl + BM);          // [32 mask_words] the live tiles (att_live_list), if masked
    int* sCount = sList + 32 * p.mask_words; // its length

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tq = lane & 3;
    const int bh = att_bh();
    if (bh >= p.BH) return;
    const int b = bh / p.H, h = bh - b * p.H;
    const int T = p.T;
    const int nq = (T + BM - 1) / BM;
    const int qt = nq - 1 - (int)blockIdx.x; // heavy (causal) tiles of a head first
    const AttQTile qg = att_qtile<CAUSAL>(T, qt, warp);
    const int q0 = qg.q0, nkt = qg.nkt, r0w = qg.r0w, wlast = qg.wlast, glast = qg.glast;
    const bool wactive = qg.wactive, gactive = qg.gactive;
    const bool use_list = !SOFTMAX && p.mask != nullptr;
    // sm_90a: S = Q K^T, dP = dO V^T and dQ += dS K by wgmma, one warpgroup = 64 query rows = one mask half
    constexpr bool WG = ATT_WGMMA;
    if (WG) att_wg_check_align(att_smem);

    const att_bf16* gq = p.q + (long long)b * p.q_sb + (long long)h * p.q_sh;
    const att_bf16* gk = p.k + (long long)b * p.k_sb + (long long)h * p.k_sh;
    const att_bf16* gv = p.v + (long long)b * p.v_sb + (long long)h * p.v_sh;
    const att_bf16* gdo = p.dout + (long long)b * p.do_sb + (long long)h * p.do_sh;
    const att_bf16* go2 = p.o2 + (long long)b * p.o2_sb + (long long)h * p.o2_sh;

    if constexpr (TMA) {
        if (tid == 0) att_mbar_ring_init(bar_full, bar_empty, NS, NPROD, ATT_WARPS); // (visible after the barrier below)
    }
    att_load_tile<BM, D>(sQ, gq, p.q_st, q0, T, tid);
    att_load_tile<BM, D>(sdO, gdo, p.do_st, q0, T, tid);
    att_load_tile<BM, D>(sO2, go2, p.o2_st, q0, T, tid);
    att_cp_commit();
    if (use_list) att_live_list(sList, sCount, p.mask, bh, p.n64, qt, p.mask_words, nkt, warp, lane);
    __syncthreads();
    // ring over the live key tiles (entry li of the list: the current tile; li + 2 is loaded into the stage the
    // warps are done with: cp.async after the barrier, TMA once the stage's empty barrier says so)
    const int nlive = use_list ? *sCount : nkt;
    auto live_at = [&](int i) -> int { return att_live_at(sList, nlive, use_list, nkt, i); };
    AttKVRing<D, NS, TMA> ring{sKV, sKV + BN * D, 2 * BN * D, bar_full, bar_empty, &p.tmap_k64, &p.tmap_v64, h, b, gk,
                               gv, p.k_st, p.v_st, T, tid, nkt};
    ring.load(live_at(0) >> 2, 0);
    ring.load(live_at(1) >> 2, 1);
    att_cp_wait<TMA ? 0 : 2>(); // Q, dO, O2
    att_fence_async_smem();
    __syncthreads();

    // delta_i = dO_i . O2_i (fp32): two threads per row, D/2 elements each (16-byte smem reads)
    {
        const int rl = tid >> 1, hf = tid & 1, gr = q0 + rl;
        float acc = 0.0f;
#pragma unroll
        for (int c = hf * (D / 16); c < (hf + 1) * (D / 16); c++) {
            uint4 x = *reinterpret_cast<const uint4*>(sdO + att_sw<D>(rl, c));
            uint4 y = *reinterpret_cast<const uint4*>(sO2 + att_sw<D>(rl, c));
            const __nv_bfloat162* xp = reinterpret_cast<const __nv_bfloat162*>(&x);
            const __nv_bfloat162* yp = reinterpret_cast<const __nv_bfloat162*>(&y);
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float2 xf = __bfloat1622float2(xp[e]), yf = __bfloat1622float2(yp[e]);
                acc = fmaf(xf.x, yf.x, acc);
                acc = fmaf(xf.y, yf.y, acc);
            }
        }
        acc += __shfl_xor_sync(0xffffffffu, acc, 1);
        if (hf == 0) {
            sDl[rl] = acc;
            if (gr < T) p.delta[(long long)bh * T + gr] = acc;
        }
    }
    att_fence_async_smem(); // (TMA) these reads of sO2, ring stage 2, come before the tensor copy into it
    __syncthreads();
    uint32_t qf[D / 16][4], dof[D / 16][4];
    if (!WG) {
        att_load_afrag<D>(qf, sQ, warp * 16, lane);
        att_load_afrag<D>(dof, sdO, warp * 16, lane);
    }
    int row[2] = {r0w + g, r0w + g + 8};
    float th[2], dl[2];
#pragma unroll
    for (int j = 0; j < 2; j++) {
        th[j] = row[j] < T ? p.stat[(long long)bh * T + row[j]] : 0.0f;
        dl[j] = sDl[warp * 16 + g + 8 * j];
    }
    float dq[NDT][4];
#pragma unroll
    for (int i = 0; i < NDT; i++) dq[i][0] = dq[i][1] = dq[i][2] = dq[i][3] = 0.0f;

    for (int li = 0; li < nlive; li++) {
        const int e_kt = live_at(li), kt = e_kt >> 2;
        ring.acquire(live_at(li + 2) >> 2);
        const bool glive = (e_kt >> (warp >> 2)) & 1; // the tile is live for this warpgroup's 64 rows
        const bool wdo = glive && wactive && kt <= wlast;
        const bool gdo = glive && gactive && kt <= glast; // warpgroup-uniform
        const att_bf16* sKb = ring.k();
        const att_bf16* sVb = ring.v();
        float s[8][4], dp[8][4];
        if (WG) {
            if (gdo) {
                att_wg_fence(); // S and dP in one batch
                att_wgmma_abt_issue<D>(s, att_smem_addr(sQ + (warp >> 2) * 64 * D), att_smem_addr(sKb));
                att_wgmma_abt_issue<D>(dp, att_smem_addr(sdO + (warp >> 2) * 64 * D), att_smem_addr(sVb));
                att_wg_commit_wait();
                att_wg_keep(s);
                att_wg_keep(dp);
            }
        } else if (wdo) {
            att_mma_abt<D>(s, qf, sKb, lane);
            att_mma_abt<D>(dp, dof, sVb, lane);
        }
        if (WG ? gdo : wdo) { // (wgmma: every warp of the group; rows before the tile or past T get dS = 0)
            const int k0 = kt * BN;
            if (k0 + BN > T || (CAUSAL && k0 + BN - 1 > r0w)) {
#pragma unroll
                for (int nt = 0; nt < 8; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        int key = k0 + nt * 8 + 2 * tq + (e & 1);
                        if (key >= T || (CAUSAL && key > row[e >> 1])) s[nt][e] = -INFINITY;
                    }
            }
            uint32_t da[4][4]; // dS as bf16 A fragments, one per 16-key step (they take the registers of s, dp)
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                float dsv[8];
#pragma unroll
                for (int e = 0; e < 8; e++) {
                    int nt = 2 * kk + (e >> 2), ee = e & 3, j = (e >> 1) & 1;
                    float w;
                    if (SOFTMAX) w = exp2f(fmaf(s[nt][ee], p.sl2, -th[j]));        // p
                    else w = entmax_u(KIND, p.a, fmaf(s[nt][ee], p.c, -th[j]));     // u = x^(a-1)
                    dsv[e] = w * (dp[nt][ee] - dl[j]);                               // ds = u (dp - delta)
                }
#pragma unroll
                for (int i = 0; i < 4; i++) da[kk][i] = att_pack(dsv[2 * i], dsv[2 * i + 1]);
            }
            if constexpr (WG) { // dQ += dS K: one wgmma batch per tile
                att_wg_fence();
                att_wgmma_av<D>(dq, da, att_smem_addr(sKb));
                att_wg_commit_wait();
                att_wg_keep(da);
            } else {
#pragma unroll
                for (int kk = 0; kk < 4; kk++) att_mma_av<D>(dq, da[kk], sKb, kk, lane); // dQ += dS K
            }
        }
        ring.release(lane); // (after this warp's reads of the stage)
    }
    att_bf16* gdq = p.dq + (long long)b * p.dq_sb + (long long)h * p.dq_sh;
    const bool keep[2] = {row[0] < T, row[1] < T};
    const float sc[2] = {p.scale, p.scale};
    att_store_rows_staged<D>(sQ + warp * 16 * D, gdq + (long long)r0w * p.dq_st, p.dq_st, dq, sc, keep, lane); // sQ rows free now
}

// ----------------------------------------------------------------------------------------------------------
// backward, the elementwise part of kernel 2 for one warp: from S^T and dP^T (16 keys x 8NT queries starting at
// query q0; keys key[0..1] of this thread's rows) to the A fragments of P^T and dS^T, one per 16-query step:
//   p = [x]_+^a (softmax: exp(s - lse)), u = [x]_+^(a-1) (softmax: p), dS = u (dP - delta)
// theta (stat) and delta of the queries at sTh[0..8NT), sDl[0..8NT). Masked (causal, past T) entries get p = dS = 0.
template <int KIND, bool CAUSAL, int NT>
__device__ __forceinline__ void att_dkdv_frags(uint32_t (&pa)[NT / 2][4], uint32_t (&da)[NT / 2][4], float (&s)[NT][4],
                                               const float (&dp)[NT][4], const float* sTh, const float* sDl, int q0,
                                               const int (&key)[2], int T, int tq, const AttnBwdParams& p) {
    if (q0 + 8 * NT > T || key[1] >= T || (CAUSAL && q0 < key[1])) { // key[1] = key[0] + 8
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int qq = q0 + nt * 8 + 2 * tq + (e & 1);
                int kk = key[e >> 1];
                if (qq >= T || kk >= T || (CAUSAL && qq < kk)) s[nt][e] = -INFINITY;
            }
    }
#pragma unroll
    for (int kk = 0; kk < NT / 2; kk++) {
        float pv[8], dsv[8];
#pragma unroll
        for (int half = 0; half < 2; half++) {
            int nt = 2 * kk + half;
            float2 th2 = *reinterpret_cast<const float2*>(sTh + nt * 8 + 2 * tq);
            float2 dl2 = *reinterpret_cast<const float2*>(sDl + nt * 8 + 2 * tq);
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float thq = (e & 1) ? th2.y : th2.x, dlq = (e & 1) ? dl2.y : dl2.x;
                float pr, u;
                if (KIND == ENTMAX_SOFTMAX) {
                    pr = exp2f(fmaf(s[nt][e], p.sl2, -thq));
                    u = pr;
                } else {
                    float x = fmaf(s[nt][e], p.c, -thq);
                    entmax_pu(KIND, p.a, x, &pr, &u);
                }
                pv[half * 4 + e] = pr;
                dsv[half * 4 + e] = u * (dp[nt][e] - dlq);
            }
        }
        // A fragments over (keys x queries kk*16..+15): regs {row g: nt 2kk}, {row g+8: 2kk}, {g: 2kk+1}, {g+8: 2kk+1}
#pragma unroll
        for (int r = 0; r < 4; r++) {
            pa[kk][r] = att_pack(pv[2 * r], pv[2 * r + 1]);
            da[kk][r] = att_pack(dsv[2 * r], dsv[2 * r + 1]);
        }
    }
}

// ----------------------------------------------------------------------------------------------------------
// backward, kernel 2: dK and dV (one CTA = 128 keys, 8 warps x 16 keys; loops over 64-query tiles)

#ifndef ATT_DKDV_MINB
#define ATT_DKDV_MINB 2 // CTAs per SM asked of attn_bwd_dkdv_kernel with wgmma (D = 64); -DATT_DKDV_MINB=1 to compare
#endif
#ifndef ATT_DKDV_SUB128
#define ATT_DKDV_SUB128 64 // queries per wgmma step of attn_bwd_dkdv_kernel at D = 128 (64 or 32, to compare)
#endif
template <int KIND, int D, bool CAUSAL>
__global__ void __launch_bounds__(ATT_THREADS, (ATT_WGMMA && D == 64) ? ATT_DKDV_MINB : 1) attn_bwd_dkdv_kernel(const __grid_constant__ AttnBwdParams p) {
    constexpr int BK = ATT_BKV, BQ = ATT_BQ;
    static_assert(BQ == ATT_BN, "the query tiles go through the 64-row tile ring");
    constexpr int NDT = D / 8;
    constexpr bool SOFTMAX = KIND == ENTMAX_SOFTMAX;
    // sm_90a: S^T = K Q^T, dP^T = V dO^T, dV += P^T dO and dK += dS^T Q by wgmma, one warpgroup = 64 keys = one
    // 64-key tile
    constexpr bool WG = ATT_WGMMA;
    constexpr bool KV_REGS = D <= 64 && !WG; // mma.sync: K, V A-fragments in registers (D = 128: from smem)
    // TMA (sm_90a): Q and dO come by tensor copies into a 4-stage ring guarded by mbarriers, theta and delta by warp
    // 0's cp.async (AttKVRing with ROWS), so the two warpgroups need not go through the query tiles in step;
    // elsewhere a 3-stage cp.async ring with one CTA barrier per tile
    constexpr bool TMA = ATT_WGMMA;
    constexpr int NS = TMA ? ATT_TAU_TMA_STAGES : ATT_STAGES;
    typedef AttKVRing<D, NS, TMA, true> Ring;
    extern __shared__ __align__(128) unsigned char att_smem[];
    att_bf16* sK = (att_bf16*)att_smem;
    att_bf16* sV = sK + BK * D;
    att_bf16* sQ = sV + BK * D;               // [NS][BQ*D]
    att_bf16* sdO = sQ + NS * BQ * D;         // [NS][BQ*D]
    uint64_t* bar_full = (uint64_t*)(sdO + NS * BQ * D); // [NS] (TMA)
    uint64_t* bar_empty = bar_full + NS;                 // [NS] (TMA)
    float* sTh = (float*)(bar_empty + NS);    // [NS][BQ]
    float* sDl = sTh + NS * BQ;               // [NS][BQ]
    uint8_t* sLive = (uint8_t*)(sDl + NS * BQ); // (mask) [n64] query tile i: live for 64-key tile kt0 | kt1 << 1

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, tq = lane & 3;
    const int bh = att_bh();
    if (bh >= p.BH) return;
    const int b = bh / p.H, h = bh - b * p.H;
    const int T = p.T;
    const int kb = blockIdx.x; // causal: small kb = most work, launched first
    const int k0 = kb * BK;
    const int n64 = p.n64;
    const int kw0 = k0 + warp * 16; // first key of this warp
    const bool use_mask = !SOFTMAX && p.mask != nullptr;
    const int W = p.mask_words;
    const int kt0 = 2 * kb, kt1 = 2 * kb + 1; // 64-key tiles of this CTA
    const int kg0 = k0 + (warp >> 2) * 64;    // first key of this warp's warpgroup
    if (WG) att_wg_check_align(att_smem);

    const att_bf16* gq = p.q + (long long)b * p.q_sb + (long long)h * p.q_sh;
    const att_bf16* gk = p.k + (long long)b * p.k_sb + (long long)h * p.k_sh;
    const att_bf16* gv = p.v + (long long)b * p.v_sb + (long long)h * p.v_sh;
    const att_bf16* gdo = p.dout + (long long)b * p.do_sb + (long long)h * p.do_sh;
    const float* gth = p.stat + (long long)bh * T;
    const float* gdl = p.delta + (long long)bh * T;
    const uint32_t* gm = use_mask ? p.mask + (long long)bh * n64 * W : nullptr;

    const int i_start = CAUSAL ? k0 / BQ : 0;
    if constexpr (TMA) {
        if (tid == 0) att_mbar_ring_init(bar_full, bar_empty, NS, Ring::full_arrivals, ATT_WARPS);
    }
    att_load_tile<BK, D>(sK, gk, p.k_st, k0, T, tid);
    att_load_tile<BK, D>(sV, gv, p.v_st, k0, T, tid);
    att_cp_commit();
    // The mask column of this CTA's two key tiles, read once into shared memory (one load per thread and query
    // tile, all in parallel) so that the walk below finds its live tiles there: in global memory that was a
    // chain of dependent loads at every step, of which the next tile's loads waited for the last.
    if (use_mask) {
        for (int i = i_start + tid; i < n64; i += ATT_THREADS) {
            const uint32_t w0 = gm[(long long)i * W + (kt0 >> 5)]; // kt0 even: kt1 in the same word
            sLive[i] = (uint8_t)(((w0 >> (kt0 & 31)) & 1u) | (kt1 < n64 ? ((w0 >> (kt1 & 31)) & 1u) << 1 : 0u));
        }
    }
    __syncthreads(); // sLive and the barrier inits
    // is query tile i live for this CTA?
    auto live = [&](int i) -> bool { return !use_mask || sLive[i] != 0; };
    auto next_live = [&](int i) -> int {
        while (i < n64 && !live(i)) i++;
        return i;
    };

    // the ring over the live query tiles (Q, dO, theta, delta per stage)
    Ring ring{sQ, sdO, BQ * D, bar_full, bar_empty, &p.tmap_q64, &p.tmap_do64, h, b, gq, gdo, p.q_st, p.do_st, T, tid, n64};
    ring.r0 = sTh; ring.r1 = sDl; ring.gr0 = gth; ring.gr1 = gdl;
    int i = next_live(i_start);
    int n1 = i < n64 ? next_live(i + 1) : n64;
    ring.load(i, 0);
    ring.load(n1, 1);
    att_cp_wait<TMA ? 0 : 2>(); // K, V
    att_fence_async_smem();
    __syncthreads();

    uint32_t kf[KV_REGS ? D / 16 : 1][4], vf[KV_REGS ? D / 16 : 1][4];
    if constexpr (KV_REGS) {
        att_load_afrag<D>(kf, sK, warp * 16, lane);
        att_load_afrag<D>(vf, sV, warp * 16, lane);
    }
    float dk[NDT][4], dv[NDT][4];
#pragma unroll
    for (int n = 0; n < NDT; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) dk[n][e] = dv[n][e] = 0.0f;
    const int key[2] = {kw0 + g, kw0 + g + 8};

    while (i < n64) {
        int n2 = n1 < n64 ? next_live(n1 + 1) : n64;
        ring.acquire(n2);
        const int i0 = i * BQ;
        const bool glive = !use_mask || ((sLive[i] >> (warp >> 2)) & 1u); // live for this warpgroup's key tile
        const bool wdo = glive && kw0 < T && (!CAUSAL || kw0 <= i0 + BQ - 1);
        const bool gdo = glive && kg0 < T && (!CAUSAL || kg0 <= i0 + BQ - 1); // warpgroup-uniform
        const att_bf16* sQb = ring.k();
        const att_bf16* sdOb = ring.v();
        const float* sThb = ring.row0();
        const float* sDlb = ring.row1();
        if constexpr (WG) {
            // wgmma. D = 64: the 64 queries in two 32-query halves (S^T, dP^T are 64 x 32 per warpgroup), so that
            // the kernel fits in 128 registers and two CTAs share an SM; D = 128 (one CTA per SM): all 64 at once.
            // Every warp of the group takes part; keys after the queries or past T get p = dS = 0.
            constexpr int QS = D == 64 ? 32 : ATT_DKDV_SUB128; // queries per step
            if (gdo) {
                const uint32_t sKw = att_smem_addr(sK + (warp >> 2) * 64 * D), sVw = att_smem_addr(sV + (warp >> 2) * 64 * D);
#pragma unroll 1
                for (int step = 0; step < BQ / QS; step++) {
                    const int qr = QS * step, q0s = i0 + qr; // rows qr .. qr + QS - 1 of the query tile
                    if (CAUSAL && q0s + QS - 1 < kg0) continue; // every query of the step before every key of the group
                    float s[QS / 8][4], dp[QS / 8][4];
                    att_wg_fence(); // S^T and dP^T in one batch
                    att_wgmma_abt_issue<D>(s, sKw, att_smem_addr(sQb + qr * D));
                    att_wgmma_abt_issue<D>(dp, sVw, att_smem_addr(sdOb + qr * D));
                    att_wg_commit_wait();
                    att_wg_keep(s);
                    att_wg_keep(dp);
                    uint32_t pa[QS / 16][4], da[QS / 16][4];
                    att_dkdv_frags<KIND, CAUSAL, QS / 8>(pa, da, s, dp, sThb + qr, sDlb + qr, q0s, key, T, tq, p);
                    att_wg_fence(); // dV += P^T dO, dK += dS^T Q
                    att_wgmma_av<D>(dv, pa, att_smem_addr(sdOb + qr * D));
                    att_wgmma_av<D>(dk, da, att_smem_addr(sQb + qr * D));
                    att_wg_commit_wait();
                    att_wg_keep(pa);
                    att_wg_keep(da);
                }
            }
        } else if (wdo) {
            float s[8][4], dp[8][4];
            if constexpr (KV_REGS) {
                att_mma_abt<D>(s, kf, sQb, lane);  // S^T = K Q^T  (rows = keys, cols = queries)
                att_mma_abt<D>(dp, vf, sdOb, lane); // dP^T = V dO^T
            } else {
                att_mma_abt_s<D>(s, sK, warp * 16, sQb, lane);
                att_mma_abt_s<D>(dp, sV, warp * 16, sdOb, lane);
            }
            uint32_t pa[4][4], da[4][4];
            att_dkdv_frags<KIND, CAUSAL, 8>(pa, da, s, dp, sThb, sDlb, i0, key, T, tq, p);
#pragma unroll
            for (int kk = 0; kk < 4; kk++) {
                att_mma_av<D>(dv, pa[kk], sdOb, kk, lane); // dV += P^T dO
                att_mma_av<D>(dk, da[kk], sQb, kk, lane);  // dK += dS^T Q
            }
        }
        ring.release(lane); // (after this warp's reads of the stage, its wgmma included)
        i = n1;
        n1 = n2;
    }
    att_bf16* gdk = p.dk + (long long)b * p.dk_sb + (long long)h * p.dk_sh;
    att_bf16* gdv = p.dv + (long long)b * p.dv_sb + (long long)h * p.dv_sh;
    // the warp's own 16 rows of sK and sV are free now
    const bool keep[2] = {key[0] < T, key[1] < T};
    const float sck[2] = {p.scale, p.scale}, scv[2] = {1.0f, 1.0f};
    att_store_rows_staged<D>(sK + warp * 16 * D, gdk + (long long)kw0 * p.dk_st, p.dk_st, dk, sck, keep, lane);
    att_store_rows_staged<D>(sV + warp * 16 * D, gdv + (long long)kw0 * p.dv_st, p.dv_st, dv, scv, keep, lane);
}

// ----------------------------------------------------------------------------------------------------------
// host API

// 64-tiles per side and mask words per 64-query row
static inline int attention_n64(int T) { return (T + 63) / 64; }
static inline int attention_mask_row_words(int T) { return (attention_n64(T) + 31) / 32; }
// size of AttnArgs.mask in uint32 words (0 when T is too long for tile tracking: pass mask = NULL then)
static inline size_t attention_mask_words(int B, int H, int T) {
    int n64 = attention_n64(T);
    if (n64 > ATT_NKT_CAP) return 0;
    return (size_t)B * H * n64 * attention_mask_row_words(T);
}
// number of 64x64 tiles in the attended region (denominator of the skipped fraction), = what stats[1] adds
static inline unsigned long long attention_tile_count(int B, int H, int T, int causal) {
    unsigned long long n = (unsigned long long)attention_n64(T);
    return (unsigned long long)B * H * (causal ? n * (n + 1) / 2 : n * n);
}

static inline int attn_aligned(const AttnTensor* t) {
    return ((uintptr_t)t->ptr % 16 == 0) && t->sb % 8 == 0 && t->st % 8 == 0 && t->sh % 8 == 0;
}

static inline int attn_check_common(const AttnArgs* a) {
    if (a->D != 64 && a->D != 128) return ATTN_ERR_HEAD_DIM;
    if (!entmax_alpha_is_valid(a->alpha)) return ATTN_ERR_ALPHA;
    if (a->B < 1 || a->T < 1 || a->H < 1 || (long long)a->B * a->H >= (1ll << 31) || a->T >= (1 << 24))
        return ATTN_ERR_SHAPE;
    if (!a->q.ptr || !a->k.ptr || !a->v.ptr || !a->stat) return ATTN_ERR_NULL;
    if (!attn_aligned(&a->q) || !attn_aligned(&a->k) || !attn_aligned(&a->v)) return ATTN_ERR_ALIGN;
    return ATTN_OK;
}

// The TMA tensor map of a (b, t, h, d) tensor: 4-D (d, t, h, b) with d contiguous, boxes of 64 x box_rows
// elements (D = 128: one half of a row, see att_tma_tile), 128-byte swizzle (the att_sw layout), zeros past T. cuTensorMapEncodeTiled is a driver function that
// only fills the 128-byte map on the host; it is fetched through the runtime, so nothing links libcuda.
static inline int attn_encode_tmap(CUtensorMap* map, const AttnTensor* t, int B, int T, int H, int D, int box_rows) {
    static PFN_cuTensorMapEncodeTiled_v12000 encode = nullptr;
    if (!encode) {
        void* fn = nullptr;
        cudaDriverEntryPointQueryResult q;
#if CUDART_VERSION >= 12050
        cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault, &q);
#else
        cudaError_t e = cudaGetDriverEntryPoint("cuTensorMapEncodeTiled", &fn, cudaEnableDefault, &q);
#endif
        if (e != cudaSuccess || q != cudaDriverEntryPointSuccess || !fn) return ATTN_ERR_CUDA;
        encode = (PFN_cuTensorMapEncodeTiled_v12000)fn;
    }
    const cuuint64_t dims[4] = {(cuuint64_t)D, (cuuint64_t)T, (cuuint64_t)H, (cuuint64_t)B};
    const cuuint64_t strides[3] = {(cuuint64_t)t->st * 2, (cuuint64_t)t->sh * 2, (cuuint64_t)t->sb * 2}; // bytes
    const cuuint32_t box[4] = {64, (cuuint32_t)box_rows, 1, 1};
    const cuuint32_t estr[4] = {1, 1, 1, 1};
    // The encoder is a driver call: it needs the device's context current on this thread, which the runtime
    // makes so only lazily (PyTorch runs the backward on its own thread, where nothing may have done it yet).
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaSetDevice(dev) != cudaSuccess) return ATTN_ERR_CUDA;
    // it also wants a 64-byte aligned map: encode into an aligned local buffer, then copy into the caller's struct
    unsigned char raw[sizeof(CUtensorMap) + 64];
    CUtensorMap* tmp = (CUtensorMap*)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
    CUresult r = encode(tmp, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 4, t->ptr, dims, strides, box, estr,
                        CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                        CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    if (r != CUDA_SUCCESS) return ATTN_ERR_CUDA;
    memcpy(map, tmp, sizeof(CUtensorMap));
    return ATTN_OK;
}

// Compute capability 9.x runs the sm_90a build, whose attn_tau_kernel, attn_out_kernel and attn_bwd_dq_kernel
// stream K and V through TMA: the host encodes their tensor maps and sizes the rings for that. *dev: the device.
static inline int attn_device_tma(int* dev) {
    int cc = 0;
    *dev = 0;
    if (cudaGetDevice(dev) == cudaSuccess) cudaDeviceGetAttribute(&cc, cudaDevAttrComputeCapabilityMajor, *dev);
    return cc == 9;
}
// the most dynamic shared memory one CTA may use with two CTAs on an SM of device dev (113 KB on the H100)
static inline int attn_smem_two_ctas(int dev) {
    int per_sm = 0, reserved = 0;
    if (cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev) != cudaSuccess) return 0;
    if (cudaDeviceGetAttribute(&reserved, cudaDevAttrReservedSharedMemoryPerBlock, dev) != cudaSuccess) reserved = 1024;
    return per_sm / 2 - reserved;
}

// the most dynamic shared memory one CTA may use (227 KB on the H100)
static inline int attn_smem_one_cta(int dev) {
    int optin = 0;
    if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) return 0;
    return optin;
}

template <typename K>
static inline int attn_set_smem(K kernel, int bytes) {
    if (bytes > 48 * 1024) {
        if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes) != cudaSuccess)
            return ATTN_ERR_CUDA;
    }
    return ATTN_OK;
}

// attn_pick_<kernel>(kind, D, causal) maps the runtime (kind, D, causal) to the kernel instantiation;
// attn_launch() sets its shared memory limit and launches it
template <typename P>
static int attn_launch(void (*kernel)(P), const P& p, dim3 grid, int smem, cudaStream_t s) {
    int err = attn_set_smem(kernel, smem);
    if (!err) kernel<<<grid, ATT_THREADS, smem, s>>>(p);
    return err;
}
#define ATT_PICK(kern, P)                                                                                    \
    static inline void (*attn_pick_##kern(int kind, int D, int causal))(P) {                                 \
        int i = kind * 4 + (D == 128 ? 2 : 0) + (causal ? 1 : 0);                                            \
        void (*t[16])(P) = {                                                                                 \
            kern<0, 64, false>, kern<0, 64, true>, kern<0, 128, false>, kern<0, 128, true>,                  \
            kern<1, 64, false>, kern<1, 64, true>, kern<1, 128, false>, kern<1, 128, true>,                  \
            kern<2, 64, false>, kern<2, 64, true>, kern<2, 128, false>, kern<2, 128, true>,                  \
            kern<3, 64, false>, kern<3, 64, true>, kern<3, 128, false>, kern<3, 128, true>};                 \
        return t[i];                                                                                         \
    }
ATT_PICK(attn_fwd_kernel, AttnFwdParams)
ATT_PICK(attn_tau_kernel, AttnFwdParams)
ATT_PICK(attn_out_kernel, AttnFwdParams)
ATT_PICK(attn_bwd_dq_kernel, AttnBwdParams)
ATT_PICK(attn_bwd_dkdv_kernel, AttnBwdParams)
#undef ATT_PICK

// Forward: writes o, stat, o2 (if given), mask (if given), stats (if given). Returns ATTN_OK or an error code.
// split = 1 (what attention_forward does): entmax runs attn_tau_kernel, attn_out_kernel, then attn_fwd_kernel in
// redo mode (only CTAs with an unconverged row do work); split = 0: one attn_fwd_kernel does every pass (kept
// for dev/cuda comparisons).
static inline int attention_forward_impl(const AttnArgs* a, cudaStream_t stream, int split) {
    int err = attn_check_common(a);
    if (err) return err;
    if (!a->o.ptr) return ATTN_ERR_NULL;
    Entmax em = entmax_make(a->alpha);
    if ((a->o.sb | a->o.st | a->o.sh) & 1 || (uintptr_t)a->o.ptr % 4) return ATTN_ERR_ALIGN;
    if (a->o2.ptr && ((a->o2.sb | a->o2.st | a->o2.sh) & 1 || (uintptr_t)a->o2.ptr % 4)) return ATTN_ERR_ALIGN;
    AttnFwdParams p;
    memset(&p, 0, sizeof(p));
    p.q = (const att_bf16*)a->q.ptr; p.k = (const att_bf16*)a->k.ptr; p.v = (const att_bf16*)a->v.ptr;
    p.o = (att_bf16*)a->o.ptr; p.o2 = em.kind == ENTMAX_SOFTMAX ? nullptr : (att_bf16*)a->o2.ptr;
    p.q_sb = a->q.sb; p.q_st = a->q.st; p.q_sh = a->q.sh;
    p.k_sb = a->k.sb; p.k_st = a->k.st; p.k_sh = a->k.sh;
    p.v_sb = a->v.sb; p.v_st = a->v.st; p.v_sh = a->v.sh;
    p.o_sb = a->o.sb; p.o_st = a->o.st; p.o_sh = a->o.sh;
    p.o2_sb = a->o2.sb; p.o2_st = a->o2.st; p.o2_sh = a->o2.sh;
    p.stat = a->stat;
    p.stats = a->stats;
    p.H = a->H; p.T = a->T;
    const int niter_default = entmax_default_niter(a->alpha);
    p.niter = a->niter > 0 ? a->niter : a->niter < 0 ? -a->niter : niter_default;
    p.niter_cap = a->niter < 0 ? p.niter : p.niter + 6;
    p.niter_redo = (p.niter > 5 ? p.niter : 5) + 6; // the redo solve starts at the bracket midpoint
    p.tol_cont = entmax_tol_cont(a->alpha); // (entmax.h says how it was chosen)
    p.count_nnz = a->count_nonzero;
    p.n64 = attention_n64(a->T);
    p.mask_words = attention_mask_row_words(a->T);
    p.track = em.kind != ENTMAX_SOFTMAX && p.n64 <= ATT_NKT_CAP;
    p.mask = p.track ? a->mask : nullptr;
    p.trk_words = p.track ? p.mask_words : 0;
    p.alpha = a->alpha;
    p.a = em.a;
    p.scale = 1.0f / sqrtf((float)a->D);
    p.c = em.am1 * p.scale;
    p.sl2 = p.scale * 1.4426950408889634f;
    int D = a->D;
    int smem = (ATT_BM * D + 2 * ATT_STAGES * ATT_BN * D) * 2 + ATT_WARPS * 4 + 3 * p.trk_words * 4 +
               (p.track ? ATT_WARPS * p.n64 * 4 : 0);
    p.BH = a->B * a->H;
    dim3 grid = attn_grid((a->T + ATT_BM - 1) / ATT_BM, p.BH);
    if (em.kind != ENTMAX_SOFTMAX && split) {
        // TMA: K and V in boxes of 128 and 64 keys at D = 64, of 8 keys x 64 dims at D = 128 (att_tma_tile)
        int dev = 0;
        const int tma = attn_device_tma(&dev);
        if (tma) {
            const int rows128 = D == 64 ? 2 * ATT_BN : 8, rows64 = D == 64 ? ATT_BN : 8;
            err = attn_encode_tmap(&p.tmap_k128, &a->k, a->B, a->T, a->H, D, rows128);
            if (!err) err = attn_encode_tmap(&p.tmap_k64, &a->k, a->B, a->T, a->H, D, rows64);
            if (!err) err = attn_encode_tmap(&p.tmap_v64, &a->v, a->B, a->T, a->H, D, rows64);
            if (err) return err;
        }
        // the key buffer (32 KB) where it fits: beside two CTAs per SM at D = 64 (up to T = 32k: 112 KB there), in
        // the one CTA per SM at D = 128 (208 KB at 32k)
        int smem_tau = attn_tau_smem(em.kind, D, a->causal, p.track ? p.n64 : 0, tma, 0);
        if (tma && att_tau_keybuf(em.kind, a->causal != 0)) {
            const int smem_keys = attn_tau_smem(em.kind, D, a->causal, p.track ? p.n64 : 0, tma, 1);
            const int room = D == 64 ? attn_smem_two_ctas(dev) : attn_smem_one_cta(dev);
            if (smem_keys <= room) { p.keybuf = 1; smem_tau = smem_keys; }
        }
        dim3 grid_tau = attn_grid((a->T + ATT_BM - 1) / ATT_BM, p.BH);
        err = attn_launch(attn_pick_attn_tau_kernel(em.kind, D, a->causal), p, grid_tau, smem_tau, stream);
        if (err) return err;
        int smem_out = attn_out_smem(D, p.mask ? p.mask_words : 0, tma);
        err = attn_launch(attn_pick_attn_out_kernel(em.kind, D, a->causal), p, grid, smem_out, stream);
        if (err) return err;
        // redo pass: a grid of about two CTAs per SM (few or no tiles need it)
        p.from_tau = 1;
        int nsm = 132;
        cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev);
        long long chunks = ((long long)p.BH * ((a->T + ATT_BM - 1) / ATT_BM) + 31) / 32;
        grid = dim3((unsigned)(chunks < 2 * nsm ? chunks : 2 * nsm), 1, 1);
    }
    err = attn_launch(attn_pick_attn_fwd_kernel(em.kind, D, a->causal), p, grid, smem, stream);
    if (err) return err;
    return cudaGetLastError() == cudaSuccess ? ATTN_OK : ATTN_ERR_CUDA;
}
static inline int attention_forward(const AttnArgs* a, cudaStream_t stream) { return attention_forward_impl(a, stream, 1); }

// Backward: reads q, k, v, o2 (softmax: O), dout, stat, mask; writes dq, dk, dv and the delta scratch.
static inline int attention_backward(const AttnArgs* a, cudaStream_t stream) {
    int err = attn_check_common(a);
    if (err) return err;
    if (!a->o2.ptr || !a->dout.ptr || !a->dq.ptr || !a->dk.ptr || !a->dv.ptr || !a->delta) return ATTN_ERR_NULL;
    if (!attn_aligned(&a->dout) || !attn_aligned(&a->o2)) return ATTN_ERR_ALIGN;
    const AttnTensor* outs[4] = {&a->dq, &a->dk, &a->dv, &a->o2};
    for (int i = 0; i < 4; i++)
        if ((outs[i]->sb | outs[i]->st | outs[i]->sh) & 1 || (uintptr_t)outs[i]->ptr % 4) return ATTN_ERR_ALIGN;
    Entmax em = entmax_make(a->alpha);
    AttnBwdParams p;
    memset(&p, 0, sizeof(p));
    p.q = (const att_bf16*)a->q.ptr; p.k = (const att_bf16*)a->k.ptr; p.v = (const att_bf16*)a->v.ptr;
    p.o2 = (const att_bf16*)a->o2.ptr; p.dout = (const att_bf16*)a->dout.ptr;
    p.dq = (att_bf16*)a->dq.ptr; p.dk = (att_bf16*)a->dk.ptr; p.dv = (att_bf16*)a->dv.ptr;
    p.q_sb = a->q.sb; p.q_st = a->q.st; p.q_sh = a->q.sh;
    p.k_sb = a->k.sb; p.k_st = a->k.st; p.k_sh = a->k.sh;
    p.v_sb = a->v.sb; p.v_st = a->v.st; p.v_sh = a->v.sh;
    p.o2_sb = a->o2.sb; p.o2_st = a->o2.st; p.o2_sh = a->o2.sh;
    p.do_sb = a->dout.sb; p.do_st = a->dout.st; p.do_sh = a->dout.sh;
    p.dq_sb = a->dq.sb; p.dq_st = a->dq.st; p.dq_sh = a->dq.sh;
    p.dk_sb = a->dk.sb; p.dk_st = a->dk.st; p.dk_sh = a->dk.sh;
    p.dv_sb = a->dv.sb; p.dv_st = a->dv.st; p.dv_sh = a->dv.sh;
    p.stat = a->stat;
    p.n64 = attention_n64(a->T);
    p.mask_words = attention_mask_row_words(a->T);
    p.mask = (em.kind != ENTMAX_SOFTMAX && p.n64 <= ATT_NKT_CAP) ? a->mask : nullptr;
    p.delta = a->delta;
    p.H = a->H; p.T = a->T;
    p.a = em.a;
    p.scale = 1.0f / sqrtf((float)a->D);
    p.c = em.am1 * p.scale;
    p.sl2 = p.scale * 1.4426950408889634f;
    int D = a->D;
    int dev = 0;
    // attn_bwd_dq_kernel: K and V by TMA, boxes as in attn_out_kernel; attn_bwd_dkdv_kernel: Q and dO the same way
    const int tma = attn_device_tma(&dev);
    if (tma) {
        const int rows64 = D == 64 ? ATT_BN : 8;
        err = attn_encode_tmap(&p.tmap_k64, &a->k, a->B, a->T, a->H, D, rows64);
        if (!err) err = attn_encode_tmap(&p.tmap_v64, &a->v, a->B, a->T, a->H, D, rows64);
        if (!err) err = attn_encode_tmap(&p.tmap_q64, &a->q, a->B, a->T, a->H, D, rows64);
        if (!err) err = attn_encode_tmap(&p.tmap_do64, &a->dout, a->B, a->T, a->H, D, rows64);
        if (err) return err;
    }
    const int ns = attn_ring_stages(tma);
    int smem_dq = (2 * ATT_BM * D + 2 * ns * ATT_BN * D) * 2 + 2 * ns * 8 + ATT_BM * 4 +
                  (p.mask ? attn_live_list_bytes(p.mask_words) : 0);
    int smem_kv = (2 * ATT_BKV * D + 2 * ns * ATT_BQ * D) * 2 + 2 * ns * 8 + 2 * ns * ATT_BQ * 4 + (p.mask ? p.n64 : 0);
    p.BH = a->B * a->H;
    dim3 grid_dq = attn_grid((a->T + ATT_BM - 1) / ATT_BM, p.BH);
    dim3 grid_kv = attn_grid((a->T + ATT_BKV - 1) / ATT_BKV, p.BH);
    err = attn_launch(attn_pick_attn_bwd_dq_kernel(em.kind, D, a->causal), p, grid_dq, smem_dq, stream);
    if (err) return err;
    err = attn_launch(attn_pick_attn_bwd_dkdv_kernel(em.kind, D, a->causal), p, grid_kv, smem_kv, stream);
    if (err) return err;
    return cudaGetLastError() == cudaSuccess ? ATTN_OK : ATTN_ERR_CUDA;
}
