/*
 train_gpt2.cpp: the fp32 CPU reference trainer. GPT-2 exactly as llm.c (pre-LN, tanh GELU, tied embeddings,
 padded vocab 50304, LayerNorm eps 1e-5) with alpha-entmax attention (alpha = 1 is softmax). It is the oracle
 for everything on the GPU: the same flags, files and training loop as train_gpt2cu, written for clarity.

 A training step, top to bottom:
   for each micro-batch: forward (encoder, L blocks, final LayerNorm, logits, cross-entropy), backward
   gradient norm and clip factor -> AdamW update with the scheduled lr -> log
 Build: make train_gpt2      Run: ./train_gpt2 (defaults: d12 from scratch, alpha 1.5, Tiny Shakespeare)
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "llmc/utils.h"
#include "llmc/entmax.h"
#include "llmc/rand.h"
#include "llmc/model.h"
#include "llmc/checkpoint.h"
#include "llmc/dataloader.h"
#include "llmc/schedulers.h"
#include "llmc/args.h"
#include "llmc/logger.h"
#include "llmc/sampler.h"
#include "llmc/tokenizer.h"

// ============================================================================================================
// layers: forward and backward. Shapes: B batch, T time, C channels, OC output channels, NH heads.
// Backward functions ACCUMULATE (+=) into parameter and activation gradients.

// out[b,t,:] = wte[inp[b,t],:] + wpe[t,:]
void encoder_forward(float* out, const int* inp, const float* wte, const float* wpe, int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float* o = out + ((size_t)b * T + t) * C;
            const float* we = wte + (size_t)inp[b * T + t] * C;
            const float* pe = wpe + (size_t)t * C;
            for (int i = 0; i < C; i++) o[i] = we[i] + pe[i];
        }
    }
}

void encoder_backward(float* dwte, float* dwpe, const float* dout, const int* inp, int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float* d = dout + ((size_t)b * T + t) * C;
            float* dwe = dwte + (size_t)inp[b * T + t] * C;
            float* dpe = dwpe + (size_t)t * C;
            for (int i = 0; i < C; i++) { dwe[i] += d[i]; dpe[i] += d[i]; }
        }
    }
}

// y = (x - mean) * rstd * w + b over the C channels of each of the N rows, eps 1e-5
void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w, const float* bias, int N, int C) {
    const float eps = 1e-5f;
    for (int n = 0; n < N; n++) {
        const float* x = inp + (size_t)n * C;
        float m = 0.0f;
        for (int i = 0; i < C; i++) m += x[i];
        m /= C;
        float v = 0.0f;
        for (int i = 0; i < C; i++) { float d = x[i] - m; v += d * d; }
        v /= C;
        float s = 1.0f / sqrtf(v + eps);
        float* o = out + (size_t)n * C;
        for (int i = 0; i < C; i++) o[i] = (s * (x[i] - m)) * w[i] + bias[i];
        mean[n] = m;
        rstd[n] = s;
    }
}

// with xhat = (x - mean) rstd and g = dout * w:  dx = rstd (g - mean(g) - xhat mean(g xhat))
void layernorm_backward(float* dinp, float* dw, float* dbias, const float* dout, const float* inp, const float* w,
                        const float* mean, const float* rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float* d = dout + (size_t)n * C;
        const float* x = inp + (size_t)n * C;
        float* dx = dinp + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        float g_mean = 0.0f, gx_mean = 0.0f;
        for (int i = 0; i < C; i++) {
            float xhat = (x[i] - m) * s;
            float g = w[i] * d[i];
            g_mean += g;
            gx_mean += g * xhat;
        }
        g_mean /= C;
        gx_mean /= C;
        for (int i = 0; i < C; i++) {
            float xhat = (x[i] - m) * s;
            float g = w[i] * d[i];
            dbias[i] += d[i];
            dw[i] += xhat * d[i];
            dx[i] += s * (g - g_mean - xhat * gx_mean);
        }
    }
}

// out (N,OC) = inp (N,C) @ weight (OC,C)^T + bias (OC). Each output is one dot product; `omp simd` lets the
// compiler vectorise it (a fixed summation order for a given build: results are deterministic). Outputs are
// computed in blocks of 64 weight rows so that the block stays in cache while every input row streams past.
static inline float dot(const float* a, const float* b, int n) {
    float s = 0.0f;
    #pragma omp simd reduction(+:s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

// y[0..n) += g * x[0..n)
static inline void axpy(float* y, float g, const float* x, int n) {
    #pragma omp simd
    for (int i = 0; i < n; i++) y[i] += g * x[i];
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC) {
    const int OB = 64;
    #pragma omp parallel for schedule(static)
    for (int o0 = 0; o0 < OC; o0 += OB) {
        int o1 = o0 + OB < OC ? o0 + OB : OC;
        for (int n = 0; n < N; n++) {
            const float* x = inp + (size_t)n * C;
            float* y = out + (size_t)n * OC;
            for (int o = o0; o < o1; o++) y[o] = (bias ? bias[o] : 0.0f) + dot(x, weight + (size_t)o * C, C);
        }
    }
}

// dinp += dout @ weight;  dweight += dout^T @ inp;  dbias += sum over rows of dout
void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp, const float* weight,
                     int N, int C, int OC) {
    // dinp: rows in blocks of 8, so that each weight row is read once per block
    const int R = 8;
    #pragma omp parallel for schedule(static)
    for (int n0 = 0; n0 < N; n0 += R) {
        int n1 = n0 + R < N ? n0 + R : N;
        for (int o = 0; o < OC; o++) {
            const float* wrow = weight + (size_t)o * C;
            for (int n = n0; n < n1; n++) axpy(dinp + (size_t)n * C, dout[(size_t)n * OC + o], wrow, C);
        }
    }
    // dweight and dbias: each output row o is owned by one thread and summed over n in order
    #pragma omp parallel for schedule(static)
    for (int o = 0; o < OC; o++) {
        float* dwrow = dweight + (size_t)o * C;
        float db = 0.0f;
        for (int n = 0; n < N; n++) {
            float g = dout[(size_t)n * OC + o];
            db += g;
            axpy(dwrow, g, inp + (size_t)n * C, C);
        }
        if (dbias) dbias[o] += db;
    }
}

// Causal self-attention with alpha-entmax (alpha = 1: softmax), one row (b, t, h) at a time:
//   s_j = q_t . k_j / sqrt(hs) for j <= t (j > t masked),  p = entmax_alpha(s),  out_t = sum_j p_j v_j
// inp is the packed qkv activation (B, T, 3, NH, hs); out is (B, T, NH, hs); att keeps p as (B, NH, T, T).
// nonzero (may be NULL) receives the number of p > 0 cells (of B*NH*T*(T+1)/2 causal cells).
void attention_forward(float* out, float* att, const float* inp, const Entmax* em, int B, int T, int C, int NH, double* nonzero) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    double nz = 0.0;
    #pragma omp parallel for collapse(2) reduction(+:nz)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float* s = (float*)malloc_or_fail(T * sizeof(float));
            for (int t = 0; t < T; t++) {
                const float* q = inp + ((size_t)b * T + t) * 3 * C + h * hs;
                for (int j = 0; j <= t; j++) {
                    const float* k = inp + ((size_t)b * T + j) * 3 * C + C + h * hs;
                    float dot = 0.0f;
                    for (int i = 0; i < hs; i++) dot += q[i] * k[i];
                    s[j] = dot * scale;
                }
                float* p = att + (((size_t)b * NH + h) * T + t) * T;
                entmax_row_forward(em, s, p, t + 1);
                for (int j = t + 1; j < T; j++) p[j] = 0.0f;
                float* o = out + ((size_t)b * T + t) * C + h * hs;
                for (int i = 0; i < hs; i++) o[i] = 0.0f;
                for (int j = 0; j <= t; j++) {
                    if (p[j] == 0.0f) continue;
                    nz += 1.0;
                    const float* v = inp + ((size_t)b * T + j) * 3 * C + 2 * C + h * hs;
                    for (int i = 0; i < hs; i++) o[i] += p[j] * v[i];
                }
            }
            free(s);
        }
    }
    if (nonzero) *nonzero = nz;
}

// dp_j = dout_t . v_j;  dv_j += p_j dout_t;  ds = u (dp - sum(u dp)/sum(u)) with u = p^(2-alpha);
// dq_t += scale sum_j ds_j k_j;  dk_j += scale ds_j q_t. Parallel over (b, h): each owns its slices.
void attention_backward(float* dinp, const float* dout, const float* inp, const float* att, const Entmax* em,
                        int B, int T, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float* dp = (float*)malloc_or_fail(T * sizeof(float));
            float* ds = (float*)malloc_or_fail(T * sizeof(float));
            for (int t = 0; t < T; t++) {
                const float* p = att + (((size_t)b * NH + h) * T + t) * T;
                const float* d = dout + ((size_t)b * T + t) * C + h * hs;
                for (int j = 0; j <= t; j++) {
                    const float* v = inp + ((size_t)b * T + j) * 3 * C + 2 * C + h * hs;
                    float* dv = dinp + ((size_t)b * T + j) * 3 * C + 2 * C + h * hs;
                    float acc = 0.0f;
                    for (int i = 0; i < hs; i++) { acc += d[i] * v[i]; dv[i] += p[j] * d[i]; }
                    dp[j] = acc;
                }
                entmax_row_backward(em, p, dp, ds, t + 1, 0);
                const float* q = inp + ((size_t)b * T + t) * 3 * C + h * hs;
                float* dq = dinp + ((size_t)b * T + t) * 3 * C + h * hs;
                for (int j = 0; j <= t; j++) {
                    if (ds[j] == 0.0f) continue;
                    const float* k = inp + ((size_t)b * T + j) * 3 * C + C + h * hs;
                    float* dk = dinp + ((size_t)b * T + j) * 3 * C + C + h * hs;
                    float g = ds[j] * scale;
                    for (int i = 0; i < hs; i++) { dq[i] += g * k[i]; dk[i] += g * q[i]; }
                }
            }
            free(dp);
            free(ds);
        }
    }
}

// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
#define GELU_SCALE 0.7978845608028654f
void gelu_forward(float* out, const float* inp, size_t N) {
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(GELU_SCALE * (x + 0.044715f * x * x * x)));
    }
}

void gelu_backward(float* dinp, const float* inp, const float* dout, size_t N) {
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float u = GELU_SCALE * (x + 0.044715f * x * x * x);
        float th = tanhf(u);
        float sech2 = 1.0f - th * th;
        float grad = 0.5f * (1.0f + th) + 0.5f * x * sech2 * GELU_SCALE * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] += grad * dout[i];
    }
}

void residual_forward(float* out, const float* a, const float* b, size_t N) {
    for (size_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}

void residual_backward(float* da, float* db, const float* dout, size_t N) {
    for (size_t i = 0; i < N; i++) { da[i] += dout[i]; db[i] += dout[i]; }
}

// softmax over the V real columns of each row of logits (the padded columns V..Vp get probability 0)
void softmax_forward(float* probs, const float* logits, int N, int V, int Vp) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float* l = logits + (size_t)n * Vp;
        float* p = probs + (size_t)n * Vp;
        float m = -INFINITY;
        for (int i = 0; i < V; i++) m = fmaxf(m, l[i]);
        float sum = 0.0f;
        for (int i = 0; i < V; i++) { p[i] = expf(l[i] - m); sum += p[i]; }
        for (int i = 0; i < V; i++) p[i] /= sum;
        for (int i = V; i < Vp; i++) p[i] = 0.0f;
    }
}

// loss = -log p[target];  dlogits = (p - onehot(target)) * dloss
void crossentropy_softmax_backward(float* dlogits, const float* probs, const int* targets, float dloss, int N, int V, int Vp) {
    #pragma omp parallel for
    for (int n = 0; n < N; n++) {
        float* dl = dlogits + (size_t)n * Vp;
        const float* p = probs + (size_t)n * Vp;
        int y = targets[n];
        for (int i = 0; i < V; i++) dl[i] += (p[i] - (i == y ? 1.0f : 0.0f)) * dloss;
    }
}

// ============================================================================================================
// the model

// activations of one forward pass at (B, T), all fp32
enum { A_ENCODED, A_LN1, A_LN1_MEAN, A_LN1_RSTD, A_QKV, A_ATTY, A_ATT, A_ATTPROJ, A_RESIDUAL2, A_LN2, A_LN2_MEAN,
       A_LN2_RSTD, A_FCH, A_FCH_GELU, A_FCPROJ, A_RESIDUAL3, A_LNF, A_LNF_MEAN, A_LNF_RSTD, A_LOGITS, A_PROBS,
       A_LOSSES, NUM_ACTIVATION_TENSORS };

typedef struct {
    GPT2Config config;
    float alpha;                            // the final alpha, written to checkpoints
    size_t param_sizes[NUM_PARAMETER_TENSORS];
    size_t num_parameters;
    float* params;                          // all parameters, one buffer
    float* param_t[NUM_PARAMETER_TENSORS];  // views into params
    float* grads;
    float* grad_t[NUM_PARAMETER_TENSORS];
    float* m;                               // AdamW first moment
    float* v;                               // AdamW second moment
    // activations for up to act_B x act_T
    int act_B, act_T;
    size_t act_sizes[NUM_ACTIVATION_TENSORS];
    float* acts;
    float* act_t[NUM_ACTIVATION_TENSORS];
    float* grad_acts;
    float* grad_act_t[NUM_ACTIVATION_TENSORS];
    // results of the last forward
    int B, T;
    float mean_loss;                        // -1 when the forward had no targets
    double* nonzero_per_layer;              // nonzero attention probabilities per layer (L)
} GPT2;

static void point_tensors(float* base, const size_t* sizes, int n, float** views) {
    for (int i = 0; i < n; i++) { views[i] = base; base += sizes[i]; }
}

static void gpt2_alloc_params(GPT2* model) {
    gpt2_param_sizes(&model->config, model->param_sizes);
    model->num_parameters = gpt2_num_parameters(&model->config);
    model->params = (float*)malloc_or_fail(model->num_parameters * sizeof(float));
    point_tensors(model->params, model->param_sizes, NUM_PARAMETER_TENSORS, model->param_t);
    model->nonzero_per_layer = (double*)calloc_or_fail(model->config.num_layers, sizeof(double));
}

// a fresh model from a descriptor config, initialised as llm.c does
void gpt2_build_from_config(GPT2* model, const GPT2Config* cfg, float alpha) {
    memset(model, 0, sizeof(*model));
    model->config = *cfg;
    model->alpha = alpha;
    gpt2_alloc_params(model);
    gpt2_init_params(cfg, model->params);
}

// a model from a checkpoint (fp32 v3 or bf16 v5); *alpha receives the checkpoint's alpha
void gpt2_build_from_checkpoint(GPT2* model, const char* path, float* alpha) {
    memset(model, 0, sizeof(*model));
    int version;
    model_file_read_header(path, &model->config, &version, alpha);
    model->alpha = *alpha;
    gpt2_alloc_params(model);
    model_file_read_params_f32(path, &model->config, version, model->params);
}

static void gpt2_alloc_activations(GPT2* model, int B, int T) {
    size_t L = model->config.num_layers, C = model->config.channels, NH = model->config.num_heads;
    size_t Vp = model->config.padded_vocab_size, BT = (size_t)B * T;
    size_t* s = model->act_sizes;
    s[A_ENCODED] = BT * C;
    s[A_LN1] = L * BT * C; s[A_LN1_MEAN] = L * BT; s[A_LN1_RSTD] = L * BT;
    s[A_QKV] = L * BT * 3 * C;
    s[A_ATTY] = L * BT * C;
    s[A_ATT] = L * B * NH * (size_t)T * T;
    s[A_ATTPROJ] = L * BT * C;
    s[A_RESIDUAL2] = L * BT * C;
    s[A_LN2] = L * BT * C; s[A_LN2_MEAN] = L * BT; s[A_LN2_RSTD] = L * BT;
    s[A_FCH] = L * BT * 4 * C; s[A_FCH_GELU] = L * BT * 4 * C;
    s[A_FCPROJ] = L * BT * C;
    s[A_RESIDUAL3] = L * BT * C;
    s[A_LNF] = BT * C; s[A_LNF_MEAN] = BT; s[A_LNF_RSTD] = BT;
    s[A_LOGITS] = BT * Vp; s[A_PROBS] = BT * Vp;
    s[A_LOSSES] = BT;
    size_t total = 0;
    for (int i = 0; i < NUM_ACTIVATION_TENSORS; i++) total += s[i];
    free(model->acts);
    free(model->grad_acts);
    model->acts = (float*)malloc_or_fail(total * sizeof(float));
    model->grad_acts = NULL; // allocated by the first backward
    point_tensors(model->acts, s, NUM_ACTIVATION_TENSORS, model->act_t);
    model->act_B = B;
    model->act_T = T;
}

// Forward pass on inputs (B,T); with targets, also the mean cross-entropy loss. The activation buffers are
// laid out for (act_B, act_T); they are (re)allocated when a call needs a different shape.
void gpt2_forward(GPT2* model, const int* inputs, const int* targets, int B, int T, float alpha) {
    GPT2Config* c = &model->config;
    int L = c->num_layers, C = c->channels, NH = c->num_heads, V = c->vocab_size, Vp = c->padded_vocab_size;
    if (T > c->max_seq_len) fail("sequence length %d exceeds the model's maximum %d", T, c->max_seq_len);
    for (int i = 0; i < B * T; i++) {
        if (inputs[i] < 0 || inputs[i] >= V) fail("input token %d out of range [0, %d)", inputs[i], V);
        if (targets && (targets[i] < 0 || targets[i] >= V)) fail("target token %d out of range [0, %d)", targets[i], V);
    }
    if (model->acts == NULL || B != model->act_B || T != model->act_T) gpt2_alloc_activations(model, B, T);
    model->B = B;
    model->T = T;
    Entmax em = entmax_make(alpha);
    float* const* a = model->act_t;
    float* const* p = model->param_t;
    size_t BT = (size_t)B * T;

    encoder_forward(a[A_ENCODED], inputs, p[P_WTE], p[P_WPE], B, T, C);
    for (int l = 0; l < L; l++) {
        const float* residual = l == 0 ? a[A_ENCODED] : a[A_RESIDUAL3] + (size_t)(l - 1) * BT * C;
        float* ln1 = a[A_LN1] + l * BT * C;
        float* qkv = a[A_QKV] + l * BT * 3 * C;
        float* atty = a[A_ATTY] + l * BT * C;
        float* att = a[A_ATT] + (size_t)l * B * NH * T * T;
        float* attproj = a[A_ATTPROJ] + l * BT * C;
        float* residual2 = a[A_RESIDUAL2] + l * BT * C;
        float* ln2 = a[A_LN2] + l * BT * C;
        float* fch = a[A_FCH] + l * BT * 4 * C;
        float* fch_gelu = a[A_FCH_GELU] + l * BT * 4 * C;
        float* fcproj = a[A_FCPROJ] + l * BT * C;
        float* residual3 = a[A_RESIDUAL3] + l * BT * C;

        layernorm_forward(ln1, a[A_LN1_MEAN] + l * BT, a[A_LN1_RSTD] + l * BT, residual, p[P_LN1W] + l * C, p[P_LN1B] + l * C, (int)BT, C);
        matmul_forward(qkv, ln1, p[P_QKVW] + (size_t)l * 3 * C * C, p[P_QKVB] + l * 3 * C, (int)BT, C, 3 * C);
        attention_forward(atty, att, qkv, &em, B, T, C, NH, &model->nonzero_per_layer[l]);
        matmul_forward(attproj, atty, p[P_ATTPROJW] + (size_t)l * C * C, p[P_ATTPROJB] + l * C, (int)BT, C, C);
        residual_forward(residual2, residual, attproj, BT * C);
        layernorm_forward(ln2, a[A_LN2_MEAN] + l * BT, a[A_LN2_RSTD] + l * BT, residual2, p[P_LN2W] + l * C, p[P_LN2B] + l * C, (int)BT, C);
        matmul_forward(fch, ln2, p[P_FCW] + (size_t)l * 4 * C * C, p[P_FCB] + l * 4 * C, (int)BT, C, 4 * C);
        gelu_forward(fch_gelu, fch, BT * 4 * C);
        matmul_forward(fcproj, fch_gelu, p[P_FCPROJW] + (size_t)l * C * 4 * C, p[P_FCPROJB] + l * C, (int)BT, 4 * C, C);
        residual_forward(residual3, residual2, fcproj, BT * C);
    }
    const float* last = a[A_RESIDUAL3] + (size_t)(L - 1) * BT * C;
    layernorm_forward(a[A_LNF], a[A_LNF_MEAN], a[A_LNF_RSTD], last, p[P_LNFW], p[P_LNFB], (int)BT, C);
    matmul_forward(a[A_LOGITS], a[A_LNF], p[P_WTE], NULL, (int)BT, C, Vp); // tied LM head
    softmax_forward(a[A_PROBS], a[A_LOGITS], (int)BT, V, Vp);
    if (targets) {
        double sum = 0.0;
        for (size_t i = 0; i < BT; i++) {
            float loss = -logf(a[A_PROBS][i * Vp + targets[i]]);
            a[A_LOSSES][i] = loss;
            sum += loss;
        }
        model->mean_loss = (float)(sum / (double)BT);
    } else {
        model->mean_loss = -1.0f;
    }
}

void gpt2_zero_grad(GPT2* model) {
    if (model->grads) memset(model->grads, 0, model->num_parameters * sizeof(float));
}

// Backward of the last forward (which must have had targets). Parameter gradients accumulate, so several
// micro-batches add up; dloss scales the mean loss of this micro-batch (1/grad_accum_steps).
void gpt2_backward(GPT2* model, const int* inputs, const int* targets, float alpha, float dloss_scale) {
    if (model->mean_loss < 0.0f) fail("internal: backward without a forward with targets");
    GPT2Config* c = &model->config;
    int B = model->B, T = model->T;
    int L = c->num_layers, C = c->channels, NH = c->num_heads, V = c->vocab_size, Vp = c->padded_vocab_size;
    size_t BT = (size_t)B * T;
    if (model->grads == NULL) {
        model->grads = (float*)calloc_or_fail(model->num_parameters, sizeof(float));
        point_tensors(model->grads, model->param_sizes, NUM_PARAMETER_TENSORS, model->grad_t);
    }
    size_t total = 0;
    for (int i = 0; i < NUM_ACTIVATION_TENSORS; i++) total += model->act_sizes[i];
    if (model->grad_acts == NULL) {
        model->grad_acts = (float*)malloc_or_fail(total * sizeof(float));
        point_tensors(model->grad_acts, model->act_sizes, NUM_ACTIVATION_TENSORS, model->grad_act_t);
    }
    memset(model->grad_acts, 0, total * sizeof(float)); // activation gradients start from zero every backward
    Entmax em = entmax_make(alpha);
    float* const* a = model->act_t;
    float* const* da = model->grad_act_t;
    float* const* p = model->param_t;
    float* const* dp = model->grad_t;

    float dloss = dloss_scale / (float)BT; // d(mean loss)/d(loss_i)
    crossentropy_softmax_backward(da[A_LOGITS], a[A_PROBS], targets, dloss, (int)BT, V, Vp);
    matmul_backward(da[A_LNF], dp[P_WTE], NULL, da[A_LOGITS], a[A_LNF], p[P_WTE], (int)BT, C, Vp);
    const float* last = a[A_RESIDUAL3] + (size_t)(L - 1) * BT * C;
    float* dlast = da[A_RESIDUAL3] + (size_t)(L - 1) * BT * C;
    layernorm_backward(dlast, dp[P_LNFW], dp[P_LNFB], da[A_LNF], last, p[P_LNFW], a[A_LNF_MEAN], a[A_LNF_RSTD], (int)BT, C);

    for (int l = L - 1; l >= 0; l--) {
        const float* residual = l == 0 ? a[A_ENCODED] : a[A_RESIDUAL3] + (size_t)(l - 1) * BT * C;
        float* dresidual = l == 0 ? da[A_ENCODED] : da[A_RESIDUAL3] + (size_t)(l - 1) * BT * C;
        size_t lC = (size_t)l * BT * C;
        // forward activations of this layer
        const float* ln1 = a[A_LN1] + lC;
        const float* qkv = a[A_QKV] + 3 * lC;
        const float* atty = a[A_ATTY] + lC;
        const float* att = a[A_ATT] + (size_t)l * B * NH * T * T;
        const float* residual2 = a[A_RESIDUAL2] + lC;
        const float* ln2 = a[A_LN2] + lC;
        const float* fch = a[A_FCH] + 4 * lC;
        const float* fch_gelu = a[A_FCH_GELU] + 4 * lC;
        // their gradients
        float* dln1 = da[A_LN1] + lC;
        float* dqkv = da[A_QKV] + 3 * lC;
        float* datty = da[A_ATTY] + lC;
        float* dattproj = da[A_ATTPROJ] + lC;
        float* dresidual2 = da[A_RESIDUAL2] + lC;
        float* dln2 = da[A_LN2] + lC;
        float* dfch = da[A_FCH] + 4 * lC;
        float* dfch_gelu = da[A_FCH_GELU] + 4 * lC;
        float* dfcproj = da[A_FCPROJ] + lC;
        float* dresidual3 = da[A_RESIDUAL3] + lC;

        residual_backward(dresidual2, dfcproj, dresidual3, BT * C);
        matmul_backward(dfch_gelu, dp[P_FCPROJW] + (size_t)l * C * 4 * C, dp[P_FCPROJB] + l * C, dfcproj, fch_gelu, p[P_FCPROJW] + (size_t)l * C * 4 * C, (int)BT, 4 * C, C);
        gelu_backward(dfch, fch, dfch_gelu, BT * 4 * C);
        matmul_backward(dln2, dp[P_FCW] + (size_t)l * 4 * C * C, dp[P_FCB] + l * 4 * C, dfch, ln2, p[P_FCW] + (size_t)l * 4 * C * C, (int)BT, C, 4 * C);
        layernorm_backward(dresidual2, dp[P_LN2W] + l * C, dp[P_LN2B] + l * C, dln2, residual2, p[P_LN2W] + l * C, a[A_LN2_MEAN] + l * BT, a[A_LN2_RSTD] + l * BT, (int)BT, C);
        residual_backward(dresidual, dattproj, dresidual2, BT * C);
        matmul_backward(datty, dp[P_ATTPROJW] + (size_t)l * C * C, dp[P_ATTPROJB] + l * C, dattproj, atty, p[P_ATTPROJW] + (size_t)l * C * C, (int)BT, C, C);
        attention_backward(dqkv, datty, qkv, att, &em, B, T, C, NH);
        matmul_backward(dln1, dp[P_QKVW] + (size_t)l * 3 * C * C, dp[P_QKVB] + l * 3 * C, dqkv, ln1, p[P_QKVW] + (size_t)l * 3 * C * C, (int)BT, C, 3 * C);
        layernorm_backward(dresidual, dp[P_LN1W] + l * C, dp[P_LN1B] + l * C, dln1, residual, p[P_LN1W] + l * C, a[A_LN1_MEAN] + l * BT, a[A_LN1_RSTD] + l * BT, (int)BT, C);
    }
    encoder_backward(dp[P_WTE], dp[P_WPE], da[A_ENCODED], inputs, B, T, C);
}

// global L2 norm of the gradients (accumulated in double, serially: deterministic)
float gpt2_grad_norm(const GPT2* model) {
    double s = 0.0;
    for (size_t i = 0; i < model->num_parameters; i++) s += (double)model->grads[i] * model->grads[i];
    return (float)sqrt(s);
}

// AdamW (beta 0.9/0.95, eps 1e-8), decoupled weight decay on the 2-D tensors, gradients scaled by `grad_scale`
// (the clip factor); t = number of this update (1-based) for the bias corrections
void gpt2_update(GPT2* model, float lr, float weight_decay, float grad_scale, int t) {
    const float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
    if (model->m == NULL) {
        model->m = (float*)calloc_or_fail(model->num_parameters, sizeof(float));
        model->v = (float*)calloc_or_fail(model->num_parameters, sizeof(float));
    }
    float bc1 = 1.0f - powf(beta1, (float)t), bc2 = 1.0f - powf(beta2, (float)t);
    size_t offset = 0;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        float wd = gpt2_param_is_decayed(k) ? weight_decay : 0.0f;
        for (size_t i = offset; i < offset + model->param_sizes[k]; i++) {
            float g = model->grads[i] * grad_scale;
            float m = beta1 * model->m[i] + (1.0f - beta1) * g;
            float v = beta2 * model->v[i] + (1.0f - beta2) * g * g;
            model->m[i] = m;
            model->v[i] = v;
            float mhat = m / bc1, vhat = v / bc2;
            model->params[i] -= lr * (mhat / (sqrtf(vhat) + eps) + wd * model->params[i]);
        }
        offset += model->param_sizes[k];
    }
}

void gpt2_free(GPT2* model) {
    free(model->params); free(model->grads); free(model->m); free(model->v);
    free(model->acts); free(model->grad_acts); free(model->nonzero_per_layer);
}

// ============================================================================================================
// checkpoints: model_%08d.bin (fp32, v3) + state_%08d_00000.bin + DONE_%08d

void save_checkpoint(const GPT2* model, const DataLoader* train_loader, const char* dir, int step) {
    char model_path[4096], state_path[4096], done_path[4096], tmp[4200];
    checkpoint_paths(dir, step, 0, model_path, state_path, done_path);
    model_file_write(model_path, &model->config, 3, model->alpha, model->params);
    snprintf(tmp, sizeof(tmp), "%s.tmp", state_path);
    FILE* f = fopen_or_fail(tmp, "wb");
    int h[HEADER_INTS];
    memset(h, 0, sizeof(h));
    h[0] = STATE_MAGIC; h[1] = 1; h[2] = 1; h[3] = 0;
    h[4] = 0; // the CPU trainer's parameters are the fp32 weights: no separate master copy
    h[5] = train_loader->shuffle;
    h[10] = step;
    put_u64(&h[30], (uint64_t)train_loader->current_shard);
    put_u64(&h[32], (uint64_t)train_loader->current_sample);
    fwrite_or_fail(h, sizeof(int), HEADER_INTS, f, state_path);
    int has_moments = model->m != NULL;
    for (size_t i = 0; i < 2; i++) {
        const float* buf = i == 0 ? model->m : model->v;
        if (has_moments) fwrite_or_fail(buf, sizeof(float), model->num_parameters, f, state_path);
        else for (size_t j = 0; j < model->num_parameters; j++) { float z = 0.0f; fwrite_or_fail(&z, sizeof(float), 1, f, state_path); }
    }
    dataloader_write_state(train_loader, f, state_path);
    atomic_commit(f, tmp, state_path);
    touch_done_file(done_path);
}

// returns the step of the checkpoint
int load_state(GPT2* model, DataLoader* train_loader, const char* state_path) {
    FILE* f = fopen_or_fail(state_path, "rb");
    int h[HEADER_INTS];
    fread_or_fail(h, sizeof(int), HEADER_INTS, f, state_path);
    state_header_check(h, state_path, 1, 0);
    if (h[5] != train_loader->shuffle) fail("%s was written with shuffling %s; resume with the same -a", state_path, h[5] ? "on" : "off");
    size_t n = model->num_parameters;
    long expect = (long)(HEADER_BYTES + 2 * n * sizeof(float) + (h[4] ? n * sizeof(float) : 0));
    if (file_size_or_fail(state_path) < expect) fail("%s is truncated or belongs to a model of another shape", state_path);
    if (model->m == NULL) {
        model->m = (float*)calloc_or_fail(n, sizeof(float));
        model->v = (float*)calloc_or_fail(n, sizeof(float));
    }
    fread_or_fail(model->m, sizeof(float), n, f, state_path);
    fread_or_fail(model->v, sizeof(float), n, f, state_path);
    if (h[4]) fread_or_fail(model->params, sizeof(float), n, f, state_path); // fp32 master weights of a GPU run
    dataloader_read_state(train_loader, f, state_path);
    fclose(f);
    return h[10];
}

// ============================================================================================================
// sampling: generate gen_tokens tokens starting from EOT, feeding the last (up to) T tokens each time

void print_sample(GPT2* model, Tokenizer* tok, int gen_tokens, int T, float alpha, uint64_t* rng) {
    int V = model->config.vocab_size, Vp = model->config.padded_vocab_size;
    int* tokens = (int*)malloc_or_fail((gen_tokens + 1) * sizeof(int));
    tokens[0] = GPT2_EOT;
    printf("generating:\n---\n");
    for (int t = 1; t <= gen_tokens; t++) {
        int ctx = t < T ? t : T;
        const int* window = tokens + (t - ctx);
        gpt2_forward(model, window, NULL, 1, ctx, alpha);
        const float* probs = model->act_t[A_PROBS] + (size_t)(ctx - 1) * Vp;
        int next = sample_multinomial(probs, V, xorshift_f32(rng));
        tokens[t] = next;
        if (tok->init_ok) fwrite(tokenizer_decode(tok, next), 1, tokenizer_token_len(tok, next), stdout);
        else printf("%d ", next);
        fflush(stdout);
    }
    printf("\n---\n");
    free(tokens);
}

// ============================================================================================================
// evaluation: mean loss over the first n val batches; also the attention nonzero fraction per layer

float evaluate(GPT2* model, DataLoader* val_loader, int num_batches, int B, int T, float alpha, float* nonzero_frac) {
    int L = model->config.num_layers, NH = model->config.num_heads;
    dataloader_reset(val_loader);
    double loss = 0.0;
    for (int l = 0; l < L; l++) nonzero_frac[l] = 0.0f;
    for (int i = 0; i < num_batches; i++) {
        dataloader_next_batch(val_loader);
        gpt2_forward(model, val_loader->inputs, val_loader->targets, B, T, alpha);
        loss += model->mean_loss;
        double cells = (double)B * NH * T * (T + 1) / 2.0;
        for (int l = 0; l < L; l++) nonzero_frac[l] += (float)(model->nonzero_per_layer[l] / cells / num_batches);
    }
    return (float)(loss / num_batches);
}

// ============================================================================================================

#ifndef TESTING
static double now_seconds() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char** argv) {
    TrainArgs args;
    args_parse(&args, argc, argv, 0);

    // the model: a new one from a descriptor, or a checkpoint (whose alpha is the default for -A)
    GPT2 model;
    GPT2Config cfg;
    const char* e = args.model;
    size_t elen = strlen(e);
    if (elen > 4 && strcmp(e + elen - 4, ".bin") == 0) {
        float ckpt_alpha;
        gpt2_build_from_checkpoint(&model, e, &ckpt_alpha);
        if (!args.alpha_given) args.alpha = ckpt_alpha;
    } else if (gpt2_config_from_descriptor(e, &cfg)) {
        gpt2_build_from_config(&model, &cfg, args.alpha);
    } else {
        fail("-e %s is neither a checkpoint (.bin) nor a model descriptor like d12", e);
    }
    model.alpha = args.alpha;
    int B = args.B, T = args.T;
    if (T > model.config.max_seq_len) fail("-t %d is larger than the model's maximum sequence length %d", T, model.config.max_seq_len);

    // data
    if (args.overfit_batch && args.val_data == NULL) fail("-a 1 trains on the first val batch: give val data with -j");
    DataLoader train_loader, val_loader;
    const char* train_pattern = args.overfit_batch ? args.val_data : args.train_data;
    dataloader_init(&train_loader, train_pattern, "train data", B, T, 0, 1, !args.overfit_batch, model.config.vocab_size);
    int have_val = args.val_data != NULL && args.val_every > 0;
    int val_batches = 0;
    if (have_val) {
        dataloader_init(&val_loader, args.val_data, "val data", B, T, 0, 1, 0, model.config.vocab_size);
        val_batches = dataloader_eval_batches(&val_loader, args.val_max_batches);
    }
    BatchPlan plan = args_batch_plan(&args, 1, train_loader.total_samples);
    long tokens_per_step = plan.tokens_per_step;
    int grad_accum = plan.grad_accum, num_steps = plan.num_steps;
    LRScheduler sched = {args.lr_schedule, args.lr, args.warmup, args.final_lr_frac, num_steps};

    // output directory, resume
    int start_step = 0, resuming = 0;
    if (args.output_dir) make_dir_if_missing(args.output_dir);
    char resume_model[4096], resume_state[4096];
    if (args.resume && checkpoint_find_resume(args.output_dir, 0, resume_model, resume_state) >= 0) {
        float ckpt_alpha;
        gpt2_free(&model);
        gpt2_build_from_checkpoint(&model, resume_model, &ckpt_alpha);
        model.alpha = args.alpha;
        start_step = load_state(&model, &train_loader, resume_state);
        resuming = 1;
        printf("resumed from %s (step %d)\n", resume_model, start_step);
    }
    Logger logger;
    logger_init(&logger, args.output_dir, resuming);
    Tokenizer tokenizer;
    tokenizer_init(&tokenizer, "data/gpt2_tokenizer.bin");
    if (!tokenizer.init_ok && args.sample_every > 0) printf("note: data/gpt2_tokenizer.bin not found: samples print token ids\n");

    printf("model: %d layers, %d heads, %d channels, %zu parameters, max T %d\n", model.config.num_layers,
           model.config.num_heads, model.config.channels, model.num_parameters, model.config.max_seq_len);
    printf("attention: alpha %g%s", args.alpha, args.alpha == 1.0f ? " (softmax)" : "");
    if (args.anneal_steps > 0) printf(", annealed from %g over %d steps", args.alpha0, args.anneal_steps);
    printf("\nbatch: B %d, T %d, %ld tokens per step (%d micro-steps), %d steps, %zu train batches per epoch\n",
           B, T, tokens_per_step, grad_accum, num_steps, train_loader.total_samples);
#ifdef _OPENMP
    printf("threads: %d\n", omp_get_max_threads());
#endif

    float* nonzero = (float*)malloc_or_fail(model.config.num_layers * sizeof(float));
    uint64_t sample_rng = 1337;
    for (int step = start_step; step <= num_steps; step++) {
        int last_step = step == num_steps;
        float alpha = alpha_at_step(args.alpha, args.alpha0, args.anneal_steps, step);

        if (have_val && (step % args.val_every == 0 || last_step)) {
            float val_loss = evaluate(&model, &val_loader, val_batches, B, T, alpha, nonzero);
            report_val(&logger, step, val_loss, nonzero, NULL, model.config.num_layers);
        }
        if (args.sample_every > 0 && ((step > 0 && step % args.sample_every == 0) || last_step)) {
            print_sample(&model, &tokenizer, args.gen_tokens, T, alpha, &sample_rng);
        }
        if (args.checkpoint_every > 0 && !resuming && ((step > 0 && step % args.checkpoint_every == 0) || last_step)) {
            save_checkpoint(&model, &train_loader, args.output_dir, step);
            checkpoint_delete_old(args.output_dir, step, args.checkpoint_every, args.checkpoint_keep, args.checkpoint_major, 1);
        }
        resuming = 0;
        if (last_step) break;

        // ---- one optimizer step ----
        double t0 = now_seconds();
        gpt2_zero_grad(&model);
        double loss = 0.0;
        for (int micro = 0; micro < grad_accum; micro++) {
            if (args.overfit_batch) dataloader_reset(&train_loader);
            dataloader_next_batch(&train_loader);
            gpt2_forward(&model, train_loader.inputs, train_loader.targets, B, T, alpha);
            gpt2_backward(&model, train_loader.inputs, train_loader.targets, alpha, 1.0f / grad_accum);
            loss += model.mean_loss;
        }
        loss /= grad_accum;
        float norm = gpt2_grad_norm(&model);
        float clip = norm > 1.0f ? 1.0f / norm : 1.0f;
        float lr = lr_at_step(&sched, step);
        gpt2_update(&model, lr, args.weight_decay, clip, step + 1);
        double dt = now_seconds() - t0;
        printf("step %4d/%d | loss %.6f | norm %.4f | lr %.2e | alpha %.3f | %.1f ms | %.0f tok/s\n", step + 1, num_steps,
               loss, norm, lr, alpha, dt * 1e3, tokens_per_step / dt);
        logger_train(&logger, step, (float)loss, lr, norm);
    }

    free(nonzero);
    logger_free(&logger);
    tokenizer_free(&tokenizer);
    dataloader_free(&train_loader);
    if (have_val) dataloader_free(&val_loader);
    gpt2_free(&model);
    return 0;
}
#endif
