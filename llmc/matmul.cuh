/*
 matmul.cuh: the linear layers, through cuBLASLt (bf16 inputs/outputs, fp32 accumulation), plus a
 deterministic bias-gradient column reduction.

 Row-major shapes (PyTorch nn.Linear layout):
   forward   out (BT, OC) = inp (BT, C) . weight (OC, C)^T + bias (OC)
             optional fused GELU:  pre_gelu = inp . W^T + b,  out = gelu(pre_gelu)   (epilogue GELU_AUX_BIAS)
   backward  dinp (BT, C)   = dout (BT, OC) . weight (OC, C)                (overwritten)
             optional fused GELU backward: dinp *= gelu'(pre_gelu)          (epilogue DGELU)
             dweight (OC, C) += dout^T . inp                                (accumulated, beta = 1)
             dbias (OC)      += column sums of dout                         (accumulated)
 cuBLASLt is column-major: a row-major (R, K) matrix is a column-major (K, R) one, so every product is
 computed transposed: out^T (OC, BT) = W(C,OC)^T-as-stored ... see the calls below for the exact mapping.

 Descriptor cache: llm.c rebuilds the matmul descriptor, the four layouts and runs the heuristic query on
 every call. Here a plan (descriptor + layouts + chosen algorithm) is built once per distinct
 (m, n, k, transposes, epilogue, beta, alignment) and reused; per call only the bias/aux pointers are set.

 Bias gradient, deterministic, two versions (dev/cuda/matmul.cu measures both):
   1 (default) a column-reduction kernel: fixed grid, each thread sums 8 columns over a fixed set of rows in
     fp32, the block combines its row groups in order, one fp32 partial per block row; a second kernel adds
     the partials in order into the bf16 dbias.
   2 cuBLASLt's BGRADB epilogue on the dweight product (reduction over k = BT), written to a scratch
     vector (fp32 if cuBLASLt offers it, else bf16), then added into dbias. matmul_set_bias_grad_mode(2);
     g_mm.bgradb_type records what ran (0 = fell back to the kernel, 1 = fp32, 2 = bf16).
   Measured on H100 (cuBLASLt 13.0, B*T = 65536): no fp32 BGRADB algorithm exists, and the bf16 one makes the
   dweight product 0.01-0.04 ms slower than product + kernel, so version 1 is the default.
 GELU epilogues (dev/cuda/matmul.cu, same shapes): fc forward 0.60 ms fused vs 0.72 with the GELU kernel;
 fcproj backward with DGELU 1.05 ms vs 1.31 with the GELU-backward kernel.
*/
#pragma once

#include <cublasLt.h>
#include "cuda_common.cuh"
#include "gelu.cuh"

static inline void cublas_check_(cublasStatus_t st, const char* what, const char* file, int line) {
    if (st != CUBLAS_STATUS_SUCCESS)
        fail("cuBLASLt: %s (%s) at %s:%d in %s", cublasLtGetStatusName(st), cublasLtGetStatusString(st), file, line, what);
}
#define cublasCheck(call) cublas_check_((call), #call, __FILE__, __LINE__)

// ----------------------------------------------------------------------------------------------------------
// context and plan cache

#define MATMUL_WORKSPACE_BYTES (32u << 20)
#define MATMUL_MAX_PLANS 512

enum MatmulEpilogue {
    MM_EPI_NONE = 0,
    MM_EPI_BIAS = 1,      // D = AB + bias
    MM_EPI_GELU_BIAS = 2, // aux = AB + bias, D = gelu(aux)   (bias may be absent: GELU_AUX)
    MM_EPI_DGELU = 3,     // D = AB * gelu'(aux)
    MM_EPI_BGRADB = 4,    // D = AB (+ beta D), bias = column sums of B over k
};

typedef struct {
    int m, n, k, trans_a, trans_b, accumulate, epi, has_bias, bias_f32, align;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
} MatmulPlan;

typedef struct {
    cublasLtHandle_t handle;
    void* workspace;
    MatmulPlan plans[MATMUL_MAX_PLANS];
    int nplans;
    int bias_grad_mode;   // 1 kernel, 2 BGRADB
    int bgradb_type;      // what the last BGRADB request used: 0 kernel fallback, 1 fp32 vector, 2 bf16 vector
    float* bias_scratch;  // fp32 partials of the bias-grad kernel / BGRADB output
    size_t bias_scratch_floats;
} MatmulContext;

static MatmulContext g_mm = {NULL, NULL, {}, 0, 1, 0, NULL, 0};

static inline void matmul_setup() {
    if (g_mm.handle != NULL) return;
    cublasCheck(cublasLtCreate(&g_mm.handle));
    g_mm.workspace = cudaMallocOrFail(MATMUL_WORKSPACE_BYTES, "cuBLASLt workspace");
    // bias-grad scratch: up to 4 blocks per SM rows of partials for OC up to 16384 columns
    g_mm.bias_scratch_floats = (size_t)device_info()->num_sms * 4 * 256 + 16384 * 2;
    g_mm.bias_scratch = (float*)cudaMallocOrFail(g_mm.bias_scratch_floats * sizeof(float), "bias-grad scratch");
    g_mm.nplans = 0;
}

static inline void matmul_teardown() {
    if (g_mm.handle == NULL) return;
    for (int i = 0; i < g_mm.nplans; i++) {
        MatmulPlan* p = &g_mm.plans[i];
        cublasLtMatmulDescDestroy(p->desc);
        cublasLtMatrixLayoutDestroy(p->la);
        cublasLtMatrixLayoutDestroy(p->lb);
        cublasLtMatrixLayoutDestroy(p->ld);
    }
    g_mm.nplans = 0;
    cudaFreeCheck(&g_mm.workspace);
    cudaFreeCheck(&g_mm.bias_scratch);
    cublasLtDestroy(g_mm.handle);
    g_mm.handle = NULL;
}

static inline void matmul_set_bias_grad_mode(int mode) { g_mm.bias_grad_mode = mode; }

// largest power of two (<= 256) dividing the address
static inline int ptr_align_(const void* p) {
    uintptr_t a = (uintptr_t)p;
    int al = 256;
    while (al > 1 && (a % al) != 0) al >>= 1;
    return al;
}

static MatmulPlan* matmul_plan_(int m, int n, int k, int trans_a, int trans_b, int accumulate, int epi, int has_bias,
                                int bias_f32, int align) {
    for (int i = 0; i < g_mm.nplans; i++) {
        MatmulPlan* p = &g_mm.plans[i];
        if (p->m == m && p->n == n && p->k == k && p->trans_a == trans_a && p->trans_b == trans_b && p->accumulate == accumulate &&
            p->epi == epi && p->has_bias == has_bias && p->bias_f32 == bias_f32 && p->align == align)
            return p;
    }
    if (g_mm.nplans == MATMUL_MAX_PLANS) fail("matmul: more than %d distinct matmul shapes (raise MATMUL_MAX_PLANS)", MATMUL_MAX_PLANS);
    MatmulPlan* p = &g_mm.plans[g_mm.nplans];
    p->m = m; p->n = n; p->k = k; p->trans_a = trans_a; p->trans_b = trans_b; p->accumulate = accumulate;
    p->epi = epi; p->has_bias = has_bias; p->bias_f32 = bias_f32; p->align = align;

    cublasCheck(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    // stored shapes (column-major): A is (m,k) or (k,m) when transposed; B is (k,n) or (n,k)
    cublasCheck(cublasLtMatrixLayoutCreate(&p->la, CUDA_R_16BF, trans_a ? k : m, trans_a ? m : k, trans_a ? k : m));
    cublasCheck(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_16BF, trans_b ? n : k, trans_b ? k : n, trans_b ? n : k));
    cublasCheck(cublasLtMatrixLayoutCreate(&p->ld, CUDA_R_16BF, m, n, m));

    cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_DEFAULT;
    if (epi == MM_EPI_BIAS) e = CUBLASLT_EPILOGUE_BIAS;
    else if (epi == MM_EPI_GELU_BIAS) e = has_bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
    else if (epi == MM_EPI_DGELU) e = CUBLASLT_EPILOGUE_DGELU;
    else if (epi == MM_EPI_BGRADB) e = CUBLASLT_EPILOGUE_BGRADB;
    cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof(e)));
    if (epi == MM_EPI_GELU_BIAS || epi == MM_EPI_DGELU) {
        int64_t ld_aux = m;
        cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld_aux, sizeof(ld_aux)));
    }
    if (has_bias || epi == MM_EPI_BGRADB) {
        cudaDataType_t bt = bias_f32 ? CUDA_R_32F : CUDA_R_16BF;
        cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)));
    }

    cublasLtMatmulPreference_t pref;
    cublasCheck(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = MATMUL_WORKSPACE_BYTES;
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    uint32_t al = (uint32_t)align;
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al, sizeof(al)));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al, sizeof(al)));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al, sizeof(al)));
    cublasCheck(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al, sizeof(al)));
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(g_mm.handle, p->desc, p->la, p->lb, p->ld, p->ld, pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0) {
        cublasLtMatmulDescDestroy(p->desc);
        cublasLtMatrixLayoutDestroy(p->la); cublasLtMatrixLayoutDestroy(p->lb); cublasLtMatrixLayoutDestroy(p->ld);
        return NULL; // the caller decides whether a fallback exists
    }
    p->algo = res.algo;
    g_mm.nplans++;
    return p;
}

// D (m, n; column-major, ld = m) = op(A) op(B) [+ D if accumulate], with the given epilogue.
// Returns false only when no algorithm supports the request (callers with a fallback use that).
static inline bool matmul_lt_try(floatX* d, const floatX* a, const floatX* b, int m, int n, int k, bool trans_a, bool trans_b,
                                 bool accumulate, int epi, const void* bias, bool bias_f32, const floatX* aux, cudaStream_t stream) {
    if (g_mm.handle == NULL) matmul_setup();
    int align = ptr_align_(d);
    int t = ptr_align_(a); if (t < align) align = t;
    t = ptr_align_(b); if (t < align) align = t;
    if (aux != NULL) { t = ptr_align_(aux); if (t < align) align = t; }
    if (align < 16) fail("matmul: operands must be 16-byte aligned");
    const int has_bias = (bias != NULL && epi != MM_EPI_BGRADB) ? 1 : 0;
    MatmulPlan* p = matmul_plan_(m, n, k, trans_a, trans_b, accumulate, epi, has_bias, bias_f32 ? 1 : 0, align);
    if (p == NULL) return false;
    if (bias != NULL) cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    if (aux != NULL) cublasCheck(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof(aux)));
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    cublasCheck(cublasLtMatmul(g_mm.handle, p->desc, &alpha, a, p->la, b, p->lb, &beta, d, p->ld, d, p->ld, &p->algo,
                               g_mm.workspace, MATMUL_WORKSPACE_BYTES, stream));
    return true;
}

static inline void matmul_lt(floatX* d, const floatX* a, const floatX* b, int m, int n, int k, bool trans_a, bool trans_b,
                             bool accumulate, int epi, const void* bias, bool bias_f32, const floatX* aux, cudaStream_t stream) {
    if (!matmul_lt_try(d, a, b, m, n, k, trans_a, trans_b, accumulate, epi, bias, bias_f32, aux, stream))
        fail("matmul: cuBLASLt has no algorithm for m=%d n=%d k=%d epilogue=%d", m, n, k, epi);
}

// ----------------------------------------------------------------------------------------------------------
// bias gradient: deterministic column sums

#define BG_ROWS 8 // threadIdx.y extent

// grid (ceil(OC / 256), gy); block (32, BG_ROWS). partials[gy][OC]
__global__ void __launch_bounds__(32 * BG_ROWS)
bias_grad_partials_kernel(float* __restrict__ partials, const floatX* __restrict__ dout, int BT, int OC) {
    __shared__ float red[BG_ROWS][32 * x128::size + 4];
    const int c = (blockIdx.x * 32 + threadIdx.x) * x128::size;
    float acc[x128::size] = {0};
    if (c < OC) {
        for (int r = blockIdx.y * BG_ROWS + threadIdx.y; r < BT; r += gridDim.y * BG_ROWS) {
            x128 d = load128(dout + (size_t)r * OC + c);
#pragma unroll
            for (int k = 0; k < x128::size; k++) acc[k] += (float)d[k];
        }
    }
#pragma unroll
    for (int k = 0; k < x128::size; k++) red[threadIdx.y][threadIdx.x * x128::size + k] = acc[k];
    __syncthreads();
    // 256 threads, 256 columns of this block: thread (y,x) -> column y*32 + x, rows summed in order
    const int col_local = threadIdx.y * 32 + threadIdx.x;
    const int col = blockIdx.x * 32 * x128::size + col_local;
    if (col < OC) {
        float s = 0.0f;
#pragma unroll
        for (int y = 0; y < BG_ROWS; y++) s += red[y][col_local];
        partials[(size_t)blockIdx.y * OC + col] = s;
    }
}

__global__ void bias_add_bf16_kernel(floatX* dbias, const floatX* src, int OC) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c < OC) dbias[c] = (floatX)((float)dbias[c] + (float)src[c]);
}

// dbias[c] += sum_g partials[g][c] (g in order); also used with gy = 1 to add a BGRADB result
__global__ void bias_grad_reduce_kernel(floatX* dbias, const float* partials, int gy, int OC) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= OC) return;
    float s = 0.0f;
    for (int g = 0; g < gy; g++) s += partials[(size_t)g * OC + c];
    dbias[c] = (floatX)((float)dbias[c] + s);
}

static inline int bias_grad_gy_(int BT, int OC) {
    int gx = ceil_div(OC, 32 * x128::size);
    int gy = device_info()->num_sms * 4 / gx;
    if (gy < 1) gy = 1;
    int rows_max = ceil_div(BT, BG_ROWS);
    if (gy > rows_max) gy = rows_max;
    return gy;
}

static inline void bias_grad(floatX* dbias, const floatX* dout, int BT, int OC, cudaStream_t stream) {
    if (OC % x128::size != 0) fail("bias_grad: OC = %d must be a multiple of %d", OC, x128::size);
    int gx = ceil_div(OC, 32 * x128::size), gy = bias_grad_gy_(BT, OC);
    if ((size_t)gy * OC > g_mm.bias_scratch_floats) fail("bias_grad: OC = %d too large for the scratch", OC);
    bias_grad_partials_kernel<<<dim3(gx, gy), dim3(32, BG_ROWS), 0, stream>>>(g_mm.bias_scratch, dout, BT, OC);
    cudaCheckLast();
    bias_grad_reduce_kernel<<<ceil_div(OC, 256), 256, 0, stream>>>(dbias, g_mm.bias_scratch, gy, OC);
    cudaCheckLast();
}

// ----------------------------------------------------------------------------------------------------------
// the linear layer

// out = inp . W^T + bias; with pre_gelu != NULL: pre_gelu = inp . W^T + bias, out = gelu(pre_gelu).
// fuse_gelu = false computes pre_gelu with the bias epilogue and runs the GELU kernel after it.
static inline void matmul_forward(floatX* out, floatX* pre_gelu, const floatX* inp, const floatX* weight, const floatX* bias,
                                  int BT, int C, int OC, bool fuse_gelu, cudaStream_t stream) {
    // column-major: out^T (OC, BT) = W (stored (C,OC) col-major, transposed -> (OC,C)) . inp^T (C, BT)
    if (pre_gelu == NULL) {
        matmul_lt(out, weight, inp, OC, BT, C, true, false, false, bias ? MM_EPI_BIAS : MM_EPI_NONE, bias, false, NULL, stream);
    } else if (fuse_gelu) {
        matmul_lt(out, weight, inp, OC, BT, C, true, false, false, MM_EPI_GELU_BIAS, bias, false, pre_gelu, stream);
    } else {
        matmul_lt(pre_gelu, weight, inp, OC, BT, C, true, false, false, bias ? MM_EPI_BIAS : MM_EPI_NONE, bias, false, NULL, stream);
        gelu_forward(out, pre_gelu, (size_t)BT * OC, stream);
    }
}

// dinp = dout . W (overwritten; if pre_gelu != NULL also times gelu'(pre_gelu), fused or by the GELU kernel);
// dweight += dout^T . inp; dbias += colsum(dout) (dbias may be NULL). dinp may be NULL (not needed).
static inline void matmul_backward(floatX* dinp, floatX* dweight, floatX* dbias, const floatX* dout, const floatX* inp,
                                   const floatX* weight, const floatX* pre_gelu, int BT, int C, int OC, bool fuse_gelu,
                                   cudaStream_t stream) {
    if (dinp != NULL) {
        // dinp^T (C, BT) = W (stored (C,OC) col-major) . dout^T (OC, BT)
        if (pre_gelu != NULL && fuse_gelu) {
            matmul_lt(dinp, weight, dout, C, BT, OC, false, false, false, MM_EPI_DGELU, NULL, false, pre_gelu, stream);
        } else {
            matmul_lt(dinp, weight, dout, C, BT, OC, false, false, false, MM_EPI_NONE, NULL, false, NULL, stream);
            if (pre_gelu != NULL) gelu_backward_inplace(dinp, pre_gelu, (size_t)BT * C, stream);
        }
    }
    // dW^T (C, OC) += inp^T (C, BT) . dout (stored (OC,BT) col-major, transposed -> (BT, OC))
    if (dbias != NULL && g_mm.bias_grad_mode == 2) {
        float* bg = g_mm.bias_scratch;
        if (matmul_lt_try(dweight, inp, dout, C, OC, BT, false, true, true, MM_EPI_BGRADB, bg, true, NULL, stream)) {
            g_mm.bgradb_type = 1;
            bias_grad_reduce_kernel<<<ceil_div(OC, 256), 256, 0, stream>>>(dbias, bg, 1, OC);
            cudaCheckLast();
            return;
        }
        if (matmul_lt_try(dweight, inp, dout, C, OC, BT, false, true, true, MM_EPI_BGRADB, bg, false, NULL, stream)) {
            g_mm.bgradb_type = 2;
            bias_add_bf16_kernel<<<ceil_div(OC, 256), 256, 0, stream>>>(dbias, (const floatX*)bg, OC);
            cudaCheckLast();
            return;
        }
        g_mm.bgradb_type = 0; // no BGRADB algorithm: fall through to the kernel
    }
    matmul_lt(dweight, inp, dout, C, OC, BT, false, true, true, MM_EPI_NONE, NULL, false, NULL, stream);
    if (dbias != NULL) bias_grad(dbias, dout, BT, OC, stream);
}
