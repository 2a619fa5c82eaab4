/*
 train_gpt2.cu: the bf16 GPU trainer. It mirrors the fp32 CPU reference train_gpt2.cpp step by step: the same
 flags (llmc/args.h), files (llmc/checkpoint.h, llmc/dataloader.h), schedules and log lines, with alpha-entmax
 attention (alpha = 1 is softmax).

 Precision: parameters, gradients and activations are bf16; every matmul, reduction and optimizer update
 accumulates in fp32; AdamW keeps fp32 m, v and (-w 1, default) fp32 master weights, and writes the bf16
 parameters by stochastic rounding with deterministic seeds. Every reduction has a fixed order: two runs,
 and a run and its resume (-y 1), give identical bits.

 One training step, top to bottom (the step loop at the end of main):
   grads = 0, losses = 0
   for each micro-batch:
     upload the batch (pinned staging, async)
     forward:  encoder -> for each layer [LN1 (fused with the previous residual add), qkv matmul, attention
               on the packed qkv, attproj matmul, residual + LN2 (fused), fc matmul + GELU (fused epilogue),
               fcproj matmul, residual + next LN1 / final LN (fused)]
     LM head + loss, in chunks of LM_HEAD_CHUNK rows: logits = lnf . wte^T (tied), the fused classifier
               (softmax + cross-entropy + dlogits in place; losses += per token), dlnf = dlogits . wte,
               dwte += dlogits^T . lnf. Chunking keeps the logits buffer at 16K rows instead of B*T rows
               (1.6 GB instead of 6.6 GB at B=64, T=1024) for the same matmul speed.
     backward: final LN, then each layer in reverse (recomputing GELU with -r >= 1 and the LayerNorms with
               -r 2), encoder; parameter gradients accumulate
   loss = deterministic sum of the per-token losses; global grad norm -> clip factor (on the device)
   AdamW over the 16 tensors (weight decay on the 2-D ones), reading the clip factor on the device
   one host sync: read loss and grad norm, print the step line
 No cudaDeviceSynchronize inside a step, cuBLASLt plans cached, no per-step CPU work beyond reading the batch.

 Multi-GPU (NCCL, ZeRO-1) is not built yet: the places where it goes are marked "multi-GPU:". One process
 uses one GPU; -z 1 with one process is the same as -z 0.

 Build: make train_gpt2cu     Run: ./train_gpt2cu -i tinyshakespeare -e d12 -b 4 -t 1024
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <dlfcn.h>
#include <vector>

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

#include "llmc/cuda_common.cuh"
#include "llmc/matmul.cuh"
#include "llmc/layernorm.cuh"
#include "llmc/encoder.cuh"
#include "llmc/gelu.cuh"
#include "llmc/fused_classifier.cuh"
#include "llmc/adamw.cuh"
#include "llmc/global_norm.cuh"
#include "llmc/attention.cuh"   // flash alpha-entmax / softmax attention

// ============================================================================================================
// attention adapter: the only place that knows the attention kernels' interface.
// qkv (B,T,3,NH,HS) packed as the qkv matmul writes it, read in place through strides; out (B,T,NH,HS);
// saved for the backward per layer: stat (one fp32 per (b,h,t) row), the tile mask, and for
// entmax O2 = sum u v / sum u (B,T,NH,HS); dqkv is written packed like qkv.
// counters (eval only, may be NULL): 3 per layer, [2] += the number of nonzero entmax probabilities.

// what both directions share: the shapes, alpha, causal masking, and q, k, v read in place from the packed qkv
static AttnArgs attention_args_packed(const floatX* qkv, float alpha, int B, int T, int NH, int HS) {
    const long long C = (long long)NH * HS;
    AttnArgs a;
    memset(&a, 0, sizeof(a));
    a.B = B; a.T = T; a.H = NH; a.D = HS; a.alpha = alpha; a.causal = 1;
    a.q = {(void*)qkv, T * 3 * C, 3 * C, HS};
    a.k = {(void*)(qkv + C), T * 3 * C, 3 * C, HS};
    a.v = {(void*)(qkv + 2 * C), T * 3 * C, 3 * C, HS};
    return a;
}

static void attention_forward_layer(floatX* out, floatX* o2, float* stat, uint32_t* mask, const floatX* qkv, float alpha,
                                    int B, int T, int NH, int HS, unsigned long long* counters, cudaStream_t stream) {
    const long long C = (long long)NH * HS;
    AttnArgs a = attention_args_packed(qkv, alpha, B, T, NH, HS);
    a.o = {(void*)out, T * C, C, HS};
    if (alpha != 1.0f) a.o2 = {(void*)o2, T * C, C, HS};
    a.stat = stat;
    a.mask = mask;
    a.stats = counters;
    a.count_nonzero = counters != NULL;
    int err = attention_forward(&a, stream);
    if (err) fail("%s (B=%d T=%d heads=%d head size=%d alpha=%g)", attention_strerror(err), B, T, NH, HS, alpha);
}

static void attention_backward_layer(floatX* dqkv, const floatX* dout, const floatX* qkv, const floatX* out, const floatX* o2,
                                     const float* stat, const uint32_t* mask, float* delta, float alpha, int B, int T, int NH,
                                     int HS, cudaStream_t stream) {
    const long long C = (long long)NH * HS;
    AttnArgs a = attention_args_packed(qkv, alpha, B, T, NH, HS);
    a.o2 = {(void*)(alpha != 1.0f ? o2 : out), T * C, C, HS}; // softmax: the backward reads O here
    a.dout = {(void*)dout, T * C, C, HS};
    a.dq = {(void*)dqkv, T * 3 * C, 3 * C, HS};
    a.dk = {(void*)(dqkv + C), T * 3 * C, 3 * C, HS};
    a.dv = {(void*)(dqkv + 2 * C), T * 3 * C, 3 * C, HS};
    a.stat = (float*)stat;
    a.mask = (uint32_t*)mask;
    a.delta = delta;
    int err = attention_backward(&a, stream);
    if (err) fail("%s (backward, B=%d T=%d heads=%d head size=%d alpha=%g)", attention_strerror(err), B, T, NH, HS, alpha);
}

// rows of logits materialized at once (the LM head and the loss run chunk by chunk)
#define LM_HEAD_CHUNK 16384

// floats of attention scratch for the backward (delta; per call, reused by every layer)
static size_t attention_scratch_floats(int B, int T, int NH) { return (size_t)B * NH * T; }

// ============================================================================================================
// the model

typedef struct {
    floatX* encoded;     // (B,T,C)
    floatX* ln1;         // (L,B,T,C); one layer's worth with -r 2
    float* ln1_mean;     // (L,B,T)
    float* ln1_rstd;     // (L,B,T)
    floatX* qkv;         // (L,B,T,3C)
    floatX* atty;        // (L,B,T,C) attention output
    floatX* att_o2;      // (L,B,T,C) entmax only: O2 = sum u v / sum u, saved for the backward (NULL for softmax runs)
    float* att_stats;    // (L,B,NH,T) per-row threshold / log-sum-exp
    uint32_t* att_mask;  // (L, attention_mask_words) live-tile bits written by the forward, read by the backward
    floatX* residual2;   // (L,B,T,C)
    floatX* ln2;         // (L,B,T,C); one layer's worth with -r 2
    float* ln2_mean;     // (L,B,T)
    float* ln2_rstd;     // (L,B,T)
    floatX* fch;         // (L,B,T,4C) pre-GELU
    floatX* fch_gelu;    // (L,B,T,4C); one layer's worth with -r >= 1
    floatX* residual3;   // (L,B,T,C)
    floatX* lnf;         // (B,T,C)
    float* lnf_mean;     // (B,T)
    float* lnf_rstd;     // (B,T)
    floatX* logits;      // (min(B*T, LM_HEAD_CHUNK), Vp): one chunk of logits, then dlogits in place
    float* losses;       // (B,T) per-token losses, accumulated over micro-steps
    floatX* scratch_btc; // (B,T,C): attproj / fcproj outputs in the forward; dln, datty in the backward
    floatX* scratch_bt4c;// (B,T,4C): dfch, dqkv in the backward
    floatX* dresidual;   // (B,T,C): the residual-stream gradient
} Activations;

typedef struct {
    GPT2Config config;
    float alpha;                              // the final alpha, written to checkpoints
    size_t param_sizes[NUM_PARAMETER_TENSORS];
    size_t param_offsets[NUM_PARAMETER_TENSORS];
    size_t num_parameters;
    floatX* params;                           // all parameters (bf16), one buffer
    floatX* param_t[NUM_PARAMETER_TENSORS];
    floatX* grads;                            // same layout
    floatX* grad_t[NUM_PARAMETER_TENSORS];
    float* m;                                 // AdamW moments (fp32)
    float* v;
    float* master;                            // fp32 master weights (NULL with -w 0)
    // activations, sized once for (act_B, act_T); smaller B, T (eval, sampling) use a prefix of each slice
    int act_B, act_T, recompute;
    size_t mask_words;                        // per layer
    Activations acts;
    size_t act_bytes;
    // small device buffers
    float* dev_scalars;                       // [0] loss sum, [1] grad norm, [2] clip factor, [3] val loss sum
    float* gnorm_partials;
    float* ln_scratch;
    float* att_scratch;
    unsigned long long* nonzero;              // (L) attention nonzero counts (eval only)
    EncoderBackwardScratch enc;
    int* inputs_d;                            // (B,T)
    int* targets_d;                           // (B,T)
    // pinned host staging for the batch (two slots, so a slot is never rewritten while its copy is in flight)
    int* io_pinned;                           // [2][2][B*T]
    cudaEvent_t io_done[2];
    int io_slot;
    float* host_scalars;                      // pinned [4]
    // stochastic rounding seeds: a host xorshift state, saved in the state file
    uint64_t rng_state;
    uint64_t rng_state_last_update;
    cudaStream_t stream;
} GPT2;

// fp32 host copy of the initial parameters (from a descriptor or a checkpoint) -> device bf16 (+ master)
static void gpt2_upload_params_f32(GPT2* model, const float* host_f32) {
    size_t n = model->num_parameters;
    uint16_t* h = (uint16_t*)malloc_or_fail(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) h[i] = bf16_from_float(host_f32[i]);
    cudaCheck(cudaMemcpy(model->params, h, n * sizeof(uint16_t), cudaMemcpyHostToDevice));
    if (model->master) cudaCheck(cudaMemcpy(model->master, host_f32, n * sizeof(float), cudaMemcpyHostToDevice));
    free(h);
}

static void gpt2_check_config(const GPT2Config* c) {
    int C = c->channels, NH = c->num_heads;
    if (C % 8 != 0) fail("the GPU trainer needs channels %% 8 == 0 (16-byte vectors); this model has C = %d", C);
    if (c->padded_vocab_size % 8 != 0) fail("the GPU trainer needs the padded vocab %% 8 == 0; this model has %d", c->padded_vocab_size);
    if (C / NH != 64 && C / NH != 128) fail("the flash attention needs a head size of 64 or 128; this model has %d", C / NH);
}

// parameters, gradients, optimizer state; fills param views. Initial values are uploaded by the caller.
static void gpt2_alloc_params(GPT2* model, const GPT2Config* cfg, int master_weights) {
    memset(model, 0, sizeof(*model));
    model->config = *cfg;
    gpt2_check_config(cfg);
    gpt2_param_sizes(cfg, model->param_sizes);
    model->num_parameters = gpt2_num_parameters(cfg);
    size_t n = model->num_parameters, off = 0;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) { model->param_offsets[i] = off; off += model->param_sizes[i]; }
    model->params = (floatX*)cudaMallocOrFail(n * sizeof(floatX), "parameters");
    model->grads = (floatX*)cudaMallocOrFail(n * sizeof(floatX), "gradients");
    model->m = (float*)cudaMallocOrFail(n * sizeof(float), "AdamW m");
    model->v = (float*)cudaMallocOrFail(n * sizeof(float), "AdamW v");
    cudaCheck(cudaMemset(model->m, 0, n * sizeof(float)));
    cudaCheck(cudaMemset(model->v, 0, n * sizeof(float)));
    cudaCheck(cudaMemset(model->grads, 0, n * sizeof(floatX)));
    model->master = master_weights ? (float*)cudaMallocOrFail(n * sizeof(float), "fp32 master weights") : NULL;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) {
        model->param_t[i] = model->params + model->param_offsets[i];
        model->grad_t[i] = model->grads + model->param_offsets[i];
    }
    model->rng_state = 13371337ull;
    model->rng_state_last_update = model->rng_state;
    cudaCheck(cudaStreamCreate(&model->stream));
}

// a fresh model from a descriptor, initialised as llm.c does (fp32 draws, rounded to bf16; master = fp32 draws)
static void gpt2_build_from_config(GPT2* model, const GPT2Config* cfg, float alpha, int master_weights) {
    gpt2_alloc_params(model, cfg, master_weights);
    model->alpha = alpha;
    float* h = (float*)malloc_or_fail(model->num_parameters * sizeof(float));
    gpt2_init_params(cfg, h);
    gpt2_upload_params_f32(model, h);
    free(h);
}

// a model from a checkpoint: v3 (fp32, converted to bf16; master weights keep the fp32 values) or v5 (bf16)
static void gpt2_build_from_checkpoint(GPT2* model, const char* path, float* alpha, int master_weights) {
    GPT2Config cfg;
    int version;
    model_file_read_header(path, &cfg, &version, alpha);
    gpt2_alloc_params(model, &cfg, master_weights);
    model->alpha = *alpha;
    float* h = (float*)malloc_or_fail(model->num_parameters * sizeof(float));
    model_file_read_params_f32(path, &cfg, version, h);
    gpt2_upload_params_f32(model, h);
    free(h);
}

typedef struct { void** ptr; size_t bytes; } Carve;

// one cudaMalloc carved into 256-byte aligned tensors; returns the total bytes
static size_t carve_alloc(Carve* c, int n, const char* what) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (c[i].bytes + 255) & ~(size_t)255;
    char* base = (char*)cudaMallocOrFail(total, what);
    cudaCheck(cudaMemset(base, 0, total));
    size_t off = 0;
    for (int i = 0; i < n; i++) { *c[i].ptr = c[i].bytes ? base + off : NULL; off += (c[i].bytes + 255) & ~(size_t)255; }
    return total;
}

// entmax: whether any alpha of the run is not 1 (then O2 is stored per layer)
static void gpt2_alloc_activations(GPT2* model, int B, int T, int recompute, int entmax) {
    const GPT2Config* c = &model->config;
    size_t L = c->num_layers, C = c->channels, NH = c->num_heads, Vp = c->padded_vocab_size, BT = (size_t)B * T;
    model->act_B = B; model->act_T = T; model->recompute = recompute;
    model->mask_words = attention_mask_words(B, (int)NH, T);
    Activations* a = &model->acts;
    size_t bf = sizeof(floatX), f4 = sizeof(float);
    Carve cv[] = {
        {(void**)&a->encoded, BT * C * bf},
        {(void**)&a->ln1, (recompute >= 2 ? 1 : L) * BT * C * bf},
        {(void**)&a->ln1_mean, L * BT * f4}, {(void**)&a->ln1_rstd, L * BT * f4},
        {(void**)&a->qkv, L * BT * 3 * C * bf},
        {(void**)&a->atty, L * BT * C * bf},
        {(void**)&a->att_o2, entmax ? L * BT * C * bf : 0},
        {(void**)&a->att_stats, L * BT * NH * f4},
        {(void**)&a->att_mask, L * model->mask_words * sizeof(uint32_t)},
        {(void**)&a->residual2, L * BT * C * bf},
        {(void**)&a->ln2, (recompute >= 2 ? 1 : L) * BT * C * bf},
        {(void**)&a->ln2_mean, L * BT * f4}, {(void**)&a->ln2_rstd, L * BT * f4},
        {(void**)&a->fch, L * BT * 4 * C * bf},
        {(void**)&a->fch_gelu, (recompute >= 1 ? 1 : L) * BT * 4 * C * bf},
        {(void**)&a->residual3, L * BT * C * bf},
        {(void**)&a->lnf, BT * C * bf}, {(void**)&a->lnf_mean, BT * f4}, {(void**)&a->lnf_rstd, BT * f4},
        {(void**)&a->logits, (BT < LM_HEAD_CHUNK ? BT : LM_HEAD_CHUNK) * Vp * bf},
        {(void**)&a->losses, BT * f4},
        {(void**)&a->scratch_btc, BT * C * bf},
        {(void**)&a->scratch_bt4c, BT * 4 * C * bf},
        {(void**)&a->dresidual, BT * C * bf},
    };
    model->act_bytes = carve_alloc(cv, (int)(sizeof(cv) / sizeof(cv[0])), "activations");

    model->dev_scalars = (float*)cudaMallocOrFail(4 * sizeof(float), "scalars");
    cudaCheck(cudaMemset(model->dev_scalars, 0, 4 * sizeof(float)));
    model->gnorm_partials = (float*)cudaMallocOrFail(global_norm_num_partials() * sizeof(float), "grad norm partials");
    model->ln_scratch = (float*)cudaMallocOrFail(layernorm_backward_scratch_floats((int)C) * sizeof(float), "layernorm scratch");
    model->att_scratch = (float*)cudaMallocOrFail(attention_scratch_floats(B, T, (int)NH) * sizeof(float), "attention scratch");
    model->nonzero = (unsigned long long*)cudaMallocOrFail(3 * L * sizeof(unsigned long long), "attention counters");
    encoder_backward_scratch_init(&model->enc, (int)BT, (int)C, (int)Vp);
    model->inputs_d = (int*)cudaMallocOrFail(BT * sizeof(int), "inputs");
    model->targets_d = (int*)cudaMallocOrFail(BT * sizeof(int), "targets");
    cudaCheck(cudaMallocHost((void**)&model->io_pinned, 4 * BT * sizeof(int)));
    cudaCheck(cudaMallocHost((void**)&model->host_scalars, 4 * sizeof(float)));
    for (int i = 0; i < 2; i++) cudaCheck(cudaEventCreateWithFlags(&model->io_done[i], cudaEventDisableTiming));
    model->io_slot = 0;
    matmul_setup();
}

static void gpt2_free(GPT2* model) {
    cudaCheck(cudaStreamSynchronize(model->stream));
    cudaFreeCheck(&model->params); cudaFreeCheck(&model->grads); cudaFreeCheck(&model->m); cudaFreeCheck(&model->v);
    cudaFreeCheck(&model->master);
    if (model->acts.encoded) cudaCheck(cudaFree(model->acts.encoded));
    memset(&model->acts, 0, sizeof(model->acts));
    cudaFreeCheck(&model->dev_scalars); cudaFreeCheck(&model->gnorm_partials); cudaFreeCheck(&model->ln_scratch);
    cudaFreeCheck(&model->att_scratch); cudaFreeCheck(&model->nonzero);
    cudaFreeCheck(&model->inputs_d); cudaFreeCheck(&model->targets_d);
    if (model->enc.iota) encoder_backward_scratch_free(&model->enc);
    if (model->io_pinned) { cudaCheck(cudaFreeHost(model->io_pinned)); model->io_pinned = NULL; }
    if (model->host_scalars) { cudaCheck(cudaFreeHost(model->host_scalars)); model->host_scalars = NULL; }
    if (model->act_B) for (int i = 0; i < 2; i++) cudaCheck(cudaEventDestroy(model->io_done[i]));
    cudaCheck(cudaStreamDestroy(model->stream));
}

// copy a batch to the device without blocking the host: through a pinned slot whose previous copy is done
static void gpt2_upload_batch(GPT2* model, const int* inputs, const int* targets, int B, int T) {
    size_t BT = (size_t)B * T, cap = (size_t)model->act_B * model->act_T;
    int slot = model->io_slot;
    model->io_slot ^= 1;
    cudaCheck(cudaEventSynchronize(model->io_done[slot])); // the copy that last used this slot has finished
    int* in_h = model->io_pinned + (size_t)slot * 2 * cap;
    int* tg_h = in_h + cap;
    memcpy(in_h, inputs, BT * sizeof(int));
    if (targets) memcpy(tg_h, targets, BT * sizeof(int));
    cudaCheck(cudaMemcpyAsync(model->inputs_d, in_h, BT * sizeof(int), cudaMemcpyHostToDevice, model->stream));
    if (targets) cudaCheck(cudaMemcpyAsync(model->targets_d, tg_h, BT * sizeof(int), cudaMemcpyHostToDevice, model->stream));
    cudaCheck(cudaEventRecord(model->io_done[slot], model->stream));
}

// per-layer views (the layer stride is the ALLOCATION's B*T, so slices stay aligned for any smaller B, T)
#define LAYER(ptr, l, per_token) ((ptr) + (size_t)(l) * S * (per_token))

// Forward pass over the batch in inputs_d, up to the final LayerNorm (acts.lnf). nonzero != NULL counts the
// attention's nonzero probabilities per layer (evaluation).
static void gpt2_forward(GPT2* model, int B, int T, float alpha, unsigned long long* nonzero) {
    const GPT2Config* c = &model->config;
    const int L = c->num_layers, C = c->channels, NH = c->num_heads, HS = C / NH;
    if (B > model->act_B || T > model->act_T || (B * T > model->act_B * model->act_T)) fail("internal: forward at B=%d T=%d exceeds the allocation", B, T);
    const size_t S = (size_t)model->act_B * model->act_T; // layer stride in tokens
    const int BT = B * T;
    const int r = model->recompute;
    Activations* a = &model->acts;
    floatX* const* p = model->param_t;
    cudaStream_t s = model->stream;

    encoder_forward(a->encoded, model->inputs_d, p[P_WTE], p[P_WPE], B, T, C, s);
    layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, a->encoded, p[P_LN1W], p[P_LN1B], BT, C, s);
    for (int l = 0; l < L; l++) {
        const floatX* residual = l == 0 ? a->encoded : LAYER(a->residual3, l - 1, C);
        floatX* ln1 = r >= 2 ? a->ln1 : LAYER(a->ln1, l, C);
        floatX* qkv = LAYER(a->qkv, l, 3 * C);
        floatX* atty = LAYER(a->atty, l, C);
        floatX* o2 = a->att_o2 ? LAYER(a->att_o2, l, C) : NULL;
        float* stats = LAYER(a->att_stats, l, NH);
        uint32_t* mask = a->att_mask ? a->att_mask + (size_t)l * model->mask_words : NULL;
        floatX* residual2 = LAYER(a->residual2, l, C);
        floatX* ln2 = r >= 2 ? a->ln2 : LAYER(a->ln2, l, C);
        floatX* fch = LAYER(a->fch, l, 4 * C);
        floatX* fch_gelu = r >= 1 ? a->fch_gelu : LAYER(a->fch_gelu, l, 4 * C);
        floatX* residual3 = LAYER(a->residual3, l, C);

        matmul_forward(qkv, NULL, ln1, p[P_QKVW] + (size_t)l * 3 * C * C, p[P_QKVB] + (size_t)l * 3 * C, BT, C, 3 * C, false, s);
        if (alpha != 1.0f && o2 == NULL) fail("internal: entmax attention without O2 storage");
        attention_forward_layer(atty, o2, stats, mask, qkv, alpha, B, T, NH, HS, nonzero ? nonzero + 3 * l : NULL, s);
        matmul_forward(a->scratch_btc, NULL, atty, p[P_ATTPROJW] + (size_t)l * C * C, p[P_ATTPROJB] + (size_t)l * C, BT, C, C, false, s);
        fused_residual_layernorm_forward(residual2, ln2, LAYER(a->ln2_mean, l, 1), LAYER(a->ln2_rstd, l, 1), residual, a->scratch_btc,
                                         p[P_LN2W] + (size_t)l * C, p[P_LN2B] + (size_t)l * C, BT, C, s);
        matmul_forward(fch_gelu, fch, ln2, p[P_FCW] + (size_t)l * 4 * C * C, p[P_FCB] + (size_t)l * 4 * C, BT, C, 4 * C, true, s);
        matmul_forward(a->scratch_btc, NULL, fch_gelu, p[P_FCPROJW] + (size_t)l * 4 * C * C, p[P_FCPROJB] + (size_t)l * C, BT, 4 * C, C, false, s);
        if (l + 1 < L) { // residual + the NEXT layer's LN1, fused
            floatX* next_ln1 = r >= 2 ? a->ln1 : LAYER(a->ln1, l + 1, C);
            fused_residual_layernorm_forward(residual3, next_ln1, LAYER(a->ln1_mean, l + 1, 1), LAYER(a->ln1_rstd, l + 1, 1), residual2,
                                             a->scratch_btc, p[P_LN1W] + (size_t)(l + 1) * C, p[P_LN1B] + (size_t)(l + 1) * C, BT, C, s);
        } else {         // residual + the final LN
            fused_residual_layernorm_forward(residual3, a->lnf, a->lnf_mean, a->lnf_rstd, residual2, a->scratch_btc, p[P_LNFW], p[P_LNFB], BT, C, s);
        }
    }
}

// logits of rows [r0, r0 + n) (n <= LM_HEAD_CHUNK) into acts.logits: lnf . wte^T (tied LM head, no bias)
static void gpt2_logits(GPT2* model, int r0, int n) {
    const GPT2Config* c = &model->config;
    const int C = c->channels;
    matmul_forward(model->acts.logits, NULL, model->acts.lnf + (size_t)r0 * C, model->param_t[P_WTE], NULL, n, C,
                   c->padded_vocab_size, false, model->stream);
}

// LM head + loss over the B*T rows, chunk by chunk: losses[i] += cross-entropy of token i. With train:
// dlogits in place, then dlnf (into scratch_btc) = dlogits . wte and dwte += dlogits^T . lnf.
static void gpt2_lm_head_loss(GPT2* model, int B, int T, float dloss, bool train) {
    const GPT2Config* c = &model->config;
    const int C = c->channels, V = c->vocab_size, Vp = c->padded_vocab_size, BT = B * T;
    Activations* a = &model->acts;
    for (int r0 = 0; r0 < BT; r0 += LM_HEAD_CHUNK) {
        int n = BT - r0 < LM_HEAD_CHUNK ? BT - r0 : LM_HEAD_CHUNK;
        gpt2_logits(model, r0, n);
        fused_classifier(a->logits, a->losses + r0, model->targets_d + r0, dloss, n, V, Vp, train, model->stream);
        if (train)
            matmul_backward(a->scratch_btc + (size_t)r0 * C, model->grad_t[P_WTE], NULL, a->logits, a->lnf + (size_t)r0 * C,
                            model->param_t[P_WTE], NULL, n, C, Vp, false, model->stream);
    }
}

// Backward from dlnf (in scratch_btc, written by gpt2_lm_head_loss). Parameter gradients accumulate (+=).
static void gpt2_backward(GPT2* model, int B, int T, float alpha) {
    const GPT2Config* c = &model->config;
    const int L = c->num_layers, C = c->channels, NH = c->num_heads, HS = C / NH;
    const size_t S = (size_t)model->act_B * model->act_T;
    const int BT = B * T;
    const int r = model->recompute;
    Activations* a = &model->acts;
    floatX* const* p = model->param_t;
    floatX* const* g = model->grad_t;
    cudaStream_t s = model->stream;
    floatX* dres = a->dresidual;

    cudaCheck(cudaMemsetAsync(dres, 0, (size_t)BT * C * sizeof(floatX), s));
    layernorm_backward(dres, g[P_LNFW], g[P_LNFB], model->ln_scratch, a->scratch_btc, LAYER(a->residual3, L - 1, C), p[P_LNFW],
                       a->lnf_mean, a->lnf_rstd, BT, C, s);
    for (int l = L - 1; l >= 0; l--) {
        const floatX* residual = l == 0 ? a->encoded : LAYER(a->residual3, l - 1, C);
        floatX* ln1 = r >= 2 ? a->ln1 : LAYER(a->ln1, l, C);
        const floatX* qkv = LAYER(a->qkv, l, 3 * C);
        const floatX* atty = LAYER(a->atty, l, C);
        const floatX* o2 = a->att_o2 ? LAYER(a->att_o2, l, C) : NULL;
        const float* stats = LAYER(a->att_stats, l, NH);
        const uint32_t* mask = a->att_mask ? a->att_mask + (size_t)l * model->mask_words : NULL;
        const floatX* residual2 = LAYER(a->residual2, l, C);
        floatX* ln2 = r >= 2 ? a->ln2 : LAYER(a->ln2, l, C);
        const floatX* fch = LAYER(a->fch, l, 4 * C);
        floatX* fch_gelu = r >= 1 ? a->fch_gelu : LAYER(a->fch_gelu, l, 4 * C);
        size_t lC = (size_t)l * C;
        floatX* dfch = a->scratch_bt4c;
        floatX* dqkv = a->scratch_bt4c;
        floatX* dln = a->scratch_btc; // dln2, datty, dln1 in turn

        // MLP: the residual passes dres straight to fcproj's output
        if (r >= 1) gelu_forward(fch_gelu, fch, (size_t)BT * 4 * C, s);
        matmul_backward(dfch, g[P_FCPROJW] + lC * 4 * C, g[P_FCPROJB] + lC, dres, fch_gelu, p[P_FCPROJW] + lC * 4 * C, fch,
                        BT, 4 * C, C, true, s); // dfch = (dres . Wfcproj) * gelu'(fch)
        if (r >= 2) layernorm_forward(ln2, NULL, NULL, residual2, p[P_LN2W] + lC, p[P_LN2B] + lC, BT, C, s);
        matmul_backward(dln, g[P_FCW] + lC * 4 * C, g[P_FCB] + lC * 4, dfch, ln2, p[P_FCW] + lC * 4 * C, NULL, BT, C, 4 * C, false, s);
        layernorm_backward(dres, g[P_LN2W] + lC, g[P_LN2B] + lC, model->ln_scratch, dln, residual2, p[P_LN2W] + lC,
                           LAYER(a->ln2_mean, l, 1), LAYER(a->ln2_rstd, l, 1), BT, C, s);
        // attention
        matmul_backward(dln, g[P_ATTPROJW] + lC * C, g[P_ATTPROJB] + lC, dres, atty, p[P_ATTPROJW] + lC * C, NULL, BT, C, C, false, s);
        attention_backward_layer(dqkv, dln, qkv, atty, o2, stats, mask, model->att_scratch, alpha, B, T, NH, HS, s);
        if (r >= 2) layernorm_forward(ln1, NULL, NULL, residual, p[P_LN1W] + lC, p[P_LN1B] + lC, BT, C, s);
        matmul_backward(dln, g[P_QKVW] + lC * 3 * C, g[P_QKVB] + lC * 3, dqkv, ln1, p[P_QKVW] + lC * 3 * C, NULL, BT, C, 3 * C, false, s);
        layernorm_backward(dres, g[P_LN1W] + lC, g[P_LN1B] + lC, model->ln_scratch, dln, residual, p[P_LN1W] + lC,
                           LAYER(a->ln1_mean, l, 1), LAYER(a->ln1_rstd, l, 1), BT, C, s);
    }
    encoder_backward(g[P_WTE], g[P_WPE], &model->enc, dres, model->inputs_d, B, T, C, s);
    // multi-GPU: all-reduce (ZeRO-0) or reduce-scatter (ZeRO-1) of the gradients goes here, per layer as they
    // complete on the last micro-step, on a separate stream.
}

// AdamW over every tensor; the clip factor is read on the device (dev_scalars[2]). t = update number (1-based)
static void gpt2_update(GPT2* model, float lr, float weight_decay, int t) {
    const float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
    AdamWStep st = {lr, beta1, beta2, eps, 1.0f - powf(beta1, (float)t), 1.0f - powf(beta2, (float)t)};
    model->rng_state_last_update = model->rng_state;
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        size_t off = model->param_offsets[k];
        float wd = gpt2_param_is_decayed(k) ? weight_decay : 0.0f;
        uint32_t seed = seed_next(&model->rng_state);
        adamw_update(model->params + off, model->master ? model->master + off : NULL, model->grads + off, model->m + off,
                     model->v + off, model->param_sizes[k], &st, wd, model->dev_scalars + 2, seed, model->stream);
    }
    // multi-GPU (ZeRO-1): each rank updates its shard, then all-gathers the bf16 parameters.
}

// ============================================================================================================
// checkpoints: model_%08d.bin (bf16, v5) + state_%08d_00000.bin + DONE_%08d, as train_gpt2.cpp

static void device_to_file(FILE* f, const void* dev, size_t bytes, const char* path) {
    const size_t chunk = 64u << 20;
    void* h = malloc_or_fail(chunk < bytes ? chunk : bytes);
    for (size_t off = 0; off < bytes; off += chunk) {
        size_t n = bytes - off < chunk ? bytes - off : chunk;
        cudaCheck(cudaMemcpy(h, (const char*)dev + off, n, cudaMemcpyDeviceToHost));
        fwrite_or_fail(h, 1, n, f, path);
    }
    free(h);
}

static void file_to_device(FILE* f, void* dev, size_t bytes, const char* path) {
    const size_t chunk = 64u << 20;
    void* h = malloc_or_fail(chunk < bytes ? chunk : bytes);
    for (size_t off = 0; off < bytes; off += chunk) {
        size_t n = bytes - off < chunk ? bytes - off : chunk;
        fread_or_fail(h, 1, n, f, path);
        cudaCheck(cudaMemcpy((char*)dev + off, h, n, cudaMemcpyHostToDevice));
    }
    free(h);
}

static void save_checkpoint(GPT2* model, const DataLoader* train_loader, const char* dir, int step) {
    cudaCheck(cudaStreamSynchronize(model->stream));
    char model_path[4096], state_path[4096], done_path[4096], tmp[4200];
    checkpoint_paths(dir, step, 0, model_path, state_path, done_path);
    size_t n = model->num_parameters;
    uint16_t* h = (uint16_t*)malloc_or_fail(n * sizeof(uint16_t));
    cudaCheck(cudaMemcpy(h, model->params, n * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    model_file_write(model_path, &model->config, 5, model->alpha, h);
    free(h);
    snprintf(tmp, sizeof(tmp), "%s.tmp", state_path);
    FILE* f = fopen_or_fail(tmp, "wb");
    int hd[HEADER_INTS];
    memset(hd, 0, sizeof(hd));
    hd[0] = STATE_MAGIC; hd[1] = 1; hd[2] = 1; hd[3] = 0; // multi-GPU: nproc, rank
    hd[4] = model->master != NULL;
    hd[5] = train_loader->shuffle;
    hd[10] = step;
    put_u64(&hd[20], model->rng_state);
    put_u64(&hd[22], model->rng_state_last_update);
    put_u64(&hd[30], (uint64_t)train_loader->current_shard);
    put_u64(&hd[32], (uint64_t)train_loader->current_sample);
    fwrite_or_fail(hd, sizeof(int), HEADER_INTS, f, state_path);
    device_to_file(f, model->m, n * sizeof(float), state_path);
    device_to_file(f, model->v, n * sizeof(float), state_path);
    if (model->master) device_to_file(f, model->master, n * sizeof(float), state_path);
    dataloader_write_state(train_loader, f, state_path);
    atomic_commit(f, tmp, state_path);
    touch_done_file(done_path);
}

// returns the step of the checkpoint
static int load_state(GPT2* model, DataLoader* train_loader, const char* state_path) {
    FILE* f = fopen_or_fail(state_path, "rb");
    int h[HEADER_INTS];
    fread_or_fail(h, sizeof(int), HEADER_INTS, f, state_path);
    state_header_check(h, state_path, 1, 0);
    if (h[5] != train_loader->shuffle) fail("%s was written with shuffling %s; resume with the same -a", state_path, h[5] ? "on" : "off");
    size_t n = model->num_parameters;
    long expect = (long)(HEADER_BYTES + 2 * n * sizeof(float) + (h[4] ? n * sizeof(float) : 0));
    if (file_size_or_fail(state_path) < expect) fail("%s is truncated or belongs to a model of another shape", state_path);
    file_to_device(f, model->m, n * sizeof(float), state_path);
    file_to_device(f, model->v, n * sizeof(float), state_path);
    if (h[4] && model->master) {
        file_to_device(f, model->master, n * sizeof(float), state_path);
    } else if (h[4]) {
        fseek_or_fail(f, (long)(n * sizeof(float)), SEEK_CUR, state_path); // -w 0: the bf16 model file is the truth
    }
    // (!h[4] && master: the master copy stays the one made from the model file; a CPU-written v3 file is fp32)
    if (h[20] != 0 || h[21] != 0) {
        model->rng_state = get_u64(&h[20]);
        model->rng_state_last_update = get_u64(&h[22]);
    }
    dataloader_read_state(train_loader, f, state_path);
    fclose(f);
    return h[10];
}

// ============================================================================================================
// evaluation

// mean loss over the first n val batches; nonzero_frac[l] = share of nonzero attention probabilities,
// dead_frac[l] = share of the causal 64x64 tiles the attention skips (every probability zero there)
static float evaluate(GPT2* model, DataLoader* val_loader, int num_batches, int B, int T, float alpha, float* nonzero_frac,
                      float* dead_frac) {
    const int L = model->config.num_layers, NH = model->config.num_heads;
    cudaStream_t s = model->stream;
    dataloader_reset(val_loader);
    cudaCheck(cudaMemsetAsync(model->nonzero, 0, 3 * L * sizeof(unsigned long long), s));
    cudaCheck(cudaMemsetAsync(model->dev_scalars + 3, 0, sizeof(float), s));
    for (int i = 0; i < num_batches; i++) {
        dataloader_next_batch(val_loader);
        gpt2_upload_batch(model, val_loader->inputs, val_loader->targets, B, T);
        gpt2_forward(model, B, T, alpha, model->nonzero);
        cudaCheck(cudaMemsetAsync(model->acts.losses, 0, (size_t)B * T * sizeof(float), s));
        gpt2_lm_head_loss(model, B, T, 0.0f, false);
        deterministic_sum(model->dev_scalars + 3, model->acts.losses, B * T, true, s);
    }
    std::vector<unsigned long long> nz(3 * L);
    cudaCheck(cudaMemcpyAsync(nz.data(), model->nonzero, 3 * L * sizeof(unsigned long long), cudaMemcpyDeviceToHost, s));
    cudaCheck(cudaMemcpyAsync(model->host_scalars + 3, model->dev_scalars + 3, sizeof(float), cudaMemcpyDeviceToHost, s));
    cudaCheck(cudaStreamSynchronize(s));
    double cells = (double)B * NH * T * (T + 1) / 2.0 * num_batches;
    // softmax probabilities are all positive: the fraction is 1 by definition (the kernels do not count it)
    for (int l = 0; l < L; l++) {
        nonzero_frac[l] = alpha == 1.0f ? 1.0f : (float)(nz[3 * l + 2] / cells);
        dead_frac[l] = nz[3 * l + 1] ? (float)((double)nz[3 * l] / (double)nz[3 * l + 1]) : 0.0f;
    }
    return model->host_scalars[3] / ((float)num_batches * B * T);
}

// ---- HellaSwag (llm.c's eval file, conventions doc section 3.6): 4 rows per example, score = mean loss of
// the completion tokens, prediction = argmin, accuracy over all examples ("acc_norm", completion style).

typedef struct {
    std::vector<uint16_t> data; // the body as uint16
    int num_examples;
} EvalFile;

static void evalfile_load(EvalFile* ef, const char* path) {
    FILE* f = fopen_or_fail(path, "rb");
    int h[256];
    fread_or_fail(h, sizeof(int), 256, f, path);
    if (h[0] != 20240522) fail("%s is not an eval file (bad magic %d, expected 20240522)", path, h[0]);
    if (h[1] != 1) fail("%s has eval-file version %d, expected 1", path, h[1]);
    ef->num_examples = h[2];
    long size = file_size_or_fail(path);
    size_t n = (size_t)(size - 1024) / 2;
    ef->data.resize(n);
    fread_or_fail(ef->data.data(), sizeof(uint16_t), n, f, path);
    fclose(f);
}

static float hellaswag_eval(GPT2* model, const EvalFile* ef, int B, int T, float alpha, int* correct_out) {
    const int per_batch = B / 4;
    std::vector<int> inputs((size_t)B * T), targets((size_t)B * T);
    std::vector<float> losses((size_t)B * T);
    // per-row completion span [start, end) in target positions, and the example label
    std::vector<int> span_start(B), span_end(B), labels(per_batch);
    size_t pos = 0;
    int correct = 0, total = 0;
    while (total < ef->num_examples) {
        int in_batch = 0, maxlen = 1;
        std::fill(inputs.begin(), inputs.end(), GPT2_EOT);
        std::fill(targets.begin(), targets.end(), -1);
        for (; in_batch < per_batch && total + in_batch < ef->num_examples; in_batch++) {
            const uint16_t* d = ef->data.data();
            if (pos + 6 > ef->data.size() || d[pos] != 65535) fail("hellaswag eval file is corrupt near example %d", total + in_batch);
            size_t ex_bytes = d[pos + 1];
            int label = d[pos + 3], ncomp = d[pos + 4], ctx_len = d[pos + 5];
            if (ncomp != 4) fail("hellaswag eval file: example %d has %d completions, expected 4", total + in_batch, ncomp);
            const uint16_t* ctx = d + pos + 6;
            size_t cp = pos + 6 + ctx_len;
            labels[in_batch] = label;
            for (int k = 0; k < 4; k++) {
                int comp_len = d[cp];
                const uint16_t* comp = d + cp + 1;
                cp += 1 + comp_len;
                int row = in_batch * 4 + k;
                // keep the whole completion; cut the context from the left if the row is longer than T
                int keep_ctx = ctx_len;
                if (keep_ctx + comp_len > T) keep_ctx = T - comp_len;
                if (keep_ctx < 1) fail("hellaswag: a completion of %d tokens does not fit in -t %d", comp_len, T);
                int len = keep_ctx + comp_len;
                int* in = inputs.data() + (size_t)row * T;
                int* tg = targets.data() + (size_t)row * T;
                for (int i = 0; i < keep_ctx; i++) in[i] = ctx[ctx_len - keep_ctx + i];
                for (int i = 0; i < comp_len; i++) in[keep_ctx + i] = comp[i];
                // position i predicts token i+1: the completion tokens are predicted at keep_ctx-1 .. len-2
                for (int i = keep_ctx - 1; i < len - 1; i++) tg[i] = in[i + 1];
                span_start[row] = keep_ctx - 1;
                span_end[row] = len - 1;
                if (len > maxlen) maxlen = len;
            }
            if (label > 3 || cp != pos + ex_bytes / 2 || cp > ef->data.size()) fail("hellaswag eval file is corrupt at example %d", total + in_batch);
            pos += ex_bytes / 2; // the byte count covers the whole example, header fields included
        }
        // run only as many positions as the longest row needs (rounded up to 64): the model is causal
        int Tr = ((maxlen + 63) / 64) * 64;
        if (Tr > T) Tr = T;
        // repack rows from stride T to stride Tr
        std::vector<int> in_r((size_t)B * Tr), tg_r((size_t)B * Tr);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < Tr; t++) { in_r[(size_t)b * Tr + t] = inputs[(size_t)b * T + t]; tg_r[(size_t)b * Tr + t] = targets[(size_t)b * T + t]; }
        gpt2_upload_batch(model, in_r.data(), tg_r.data(), B, Tr);
        gpt2_forward(model, B, Tr, alpha, NULL);
        cudaCheck(cudaMemsetAsync(model->acts.losses, 0, (size_t)B * Tr * sizeof(float), model->stream));
        gpt2_lm_head_loss(model, B, Tr, 0.0f, false);
        cudaCheck(cudaMemcpyAsync(losses.data(), model->acts.losses, (size_t)B * Tr * sizeof(float), cudaMemcpyDeviceToHost, model->stream));
        cudaCheck(cudaStreamSynchronize(model->stream));
        for (int e = 0; e < in_batch; e++) {
            int best = 0;
            float best_score = INFINITY;
            for (int k = 0; k < 4; k++) {
                int row = e * 4 + k;
                double sum = 0;
                for (int i = span_start[row]; i < span_end[row]; i++) sum += losses[(size_t)row * Tr + i];
                float score = (float)(sum / (span_end[row] - span_start[row]));
                if (score < best_score) { best_score = score; best = k; }
            }
            correct += best == labels[e];
        }
        total += in_batch;
    }
    *correct_out = correct;
    return (float)correct / (float)total;
}

// ============================================================================================================
// sampling: like train_gpt2.cpp, a full forward per token at B = 1 (T rounded up to a multiple of 64)

static void print_sample(GPT2* model, Tokenizer* tok, int gen_tokens, int T, float alpha, uint64_t* rng) {
    const int V = model->config.vocab_size, Vp = model->config.padded_vocab_size;
    std::vector<int> tokens(gen_tokens + 1), window(T);
    std::vector<uint16_t> row(Vp);
    std::vector<float> probs(V);
    tokens[0] = GPT2_EOT;
    printf("generating:\n---\n");
    for (int t = 1; t <= gen_tokens; t++) {
        int ctx = t < T ? t : T;
        int Tr = ((ctx + 63) / 64) * 64;
        if (Tr > T) Tr = T;
        for (int i = 0; i < Tr; i++) window[i] = i < ctx ? tokens[t - ctx + i] : GPT2_EOT;
        gpt2_upload_batch(model, window.data(), NULL, 1, Tr);
        gpt2_forward(model, 1, Tr, alpha, NULL);
        gpt2_logits(model, 0, Tr);
        cudaCheck(cudaMemcpyAsync(row.data(), model->acts.logits + (size_t)(ctx - 1) * Vp, Vp * sizeof(uint16_t), cudaMemcpyDeviceToHost, model->stream));
        cudaCheck(cudaStreamSynchronize(model->stream));
        float mx = -INFINITY;
        for (int i = 0; i < V; i++) { probs[i] = float_from_bf16(row[i]); mx = fmaxf(mx, probs[i]); }
        double sum = 0;
        for (int i = 0; i < V; i++) { probs[i] = expf(probs[i] - mx); sum += probs[i]; }
        for (int i = 0; i < V; i++) probs[i] = (float)(probs[i] / sum);
        int next = sample_multinomial(probs.data(), V, xorshift_f32(rng));
        tokens[t] = next;
        if (tok->init_ok) fwrite(tokenizer_decode(tok, next), 1, tokenizer_token_len(tok, next), stdout);
        else printf("%d ", next);
        fflush(stdout);
    }
    printf("\n---\n");
}

// ============================================================================================================
// outlier detector for -sl / -sg: z-score of a value against the previous 128 values (NaN until full)

#define OUTLIER_WINDOW 128
typedef struct { double buf[OUTLIER_WINDOW]; int count, idx; } OutlierDetector;

static double outlier_update(OutlierDetector* d, double x) {
    double z = NAN;
    if (d->count == OUTLIER_WINDOW) {
        double mean = 0, var = 0;
        for (int i = 0; i < OUTLIER_WINDOW; i++) mean += d->buf[i];
        mean /= OUTLIER_WINDOW;
        for (int i = 0; i < OUTLIER_WINDOW; i++) var += (d->buf[i] - mean) * (d->buf[i] - mean);
        double sd = sqrt(var / OUTLIER_WINDOW);
        z = sd > 0 ? (x - mean) / sd : 0.0;
    } else {
        d->count++;
    }
    d->buf[d->idx] = x;
    d->idx = (d->idx + 1) % OUTLIER_WINDOW;
    return z;
}

// ============================================================================================================
// GPU facts for the step line: bf16 dense peak (MFU) and optional NVML state (-lg), NVML loaded at run time

static double gpu_bf16_peak_tflops(const char* name) {
    if (strstr(name, "H100") || strstr(name, "H200") || strstr(name, "GH200")) {
        if (strstr(name, "PCIe")) return 756.0;
        if (strstr(name, "NVL")) return 835.0;
        return 989.4; // SXM
    }
    if (strstr(name, "A100")) return 312.0;
    return -1.0; // unknown: MFU is printed as n/a
}

typedef struct { unsigned int gpu, memory; } NvmlUtilization;
static struct {
    int ok;
    void* dev;
    int (*utilization)(void*, NvmlUtilization*);
    int (*clock)(void*, int, unsigned int*);
    int (*power)(void*, unsigned int*);
    int (*temperature)(void*, int, unsigned int*);
    int (*throttle)(void*, unsigned long long*);
} g_nvml;

static void nvml_open() {
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    if (!lib) { printf("note: -lg needs libnvidia-ml.so.1, which was not found: GPU state logging is off\n"); return; }
    int (*init)(void) = (int (*)(void))dlsym(lib, "nvmlInit_v2");
    int (*by_pci)(const char*, void**) = (int (*)(const char*, void**))dlsym(lib, "nvmlDeviceGetHandleByPciBusId_v2");
    g_nvml.utilization = (int (*)(void*, NvmlUtilization*))dlsym(lib, "nvmlDeviceGetUtilizationRates");
    g_nvml.clock = (int (*)(void*, int, unsigned int*))dlsym(lib, "nvmlDeviceGetClockInfo");
    g_nvml.power = (int (*)(void*, unsigned int*))dlsym(lib, "nvmlDeviceGetPowerUsage");
    g_nvml.temperature = (int (*)(void*, int, unsigned int*))dlsym(lib, "nvmlDeviceGetTemperature");
    g_nvml.throttle = (int (*)(void*, unsigned long long*))dlsym(lib, "nvmlDeviceGetCurrentClocksEventReasons");
    if (!g_nvml.throttle) g_nvml.throttle = (int (*)(void*, unsigned long long*))dlsym(lib, "nvmlDeviceGetCurrentClocksThrottleReasons");
    char bus[64];
    if (!init || !by_pci || !g_nvml.utilization || !g_nvml.clock || !g_nvml.power || !g_nvml.temperature || init() != 0 ||
        cudaDeviceGetPCIBusId(bus, sizeof(bus), device_info()->device) != cudaSuccess || by_pci(bus, &g_nvml.dev) != 0) {
        printf("note: NVML did not initialise: GPU state logging is off\n");
        return;
    }
    g_nvml.ok = 1;
}

static void nvml_print() {
    if (!g_nvml.ok) return;
    NvmlUtilization u = {0, 0};
    unsigned int sm = 0, mw = 0, temp = 0;
    unsigned long long thr = 0;
    g_nvml.utilization(g_nvml.dev, &u);
    g_nvml.clock(g_nvml.dev, 1 /* NVML_CLOCK_SM */, &sm);
    g_nvml.power(g_nvml.dev, &mw);
    g_nvml.temperature(g_nvml.dev, 0 /* NVML_TEMPERATURE_GPU */, &temp);
    if (g_nvml.throttle) g_nvml.throttle(g_nvml.dev, &thr);
    printf("gpu: util %u%% | mem util %u%% | sm %u MHz | %.0f W | %u C | clock events 0x%llx\n", u.gpu, u.memory, sm, mw / 1000.0, temp, thr);
}

// ============================================================================================================

#ifndef TESTING
static double now_seconds() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void format_eta(char* buf, size_t n, double seconds) {
    if (!(seconds >= 0) || seconds > 1e8) { snprintf(buf, n, "?"); return; }
    long s = (long)(seconds + 0.5);
    if (s >= 3600) snprintf(buf, n, "%ldh%02ldm", s / 3600, (s / 60) % 60);
    else snprintf(buf, n, "%ldm%02lds", s / 60, s % 60);
}

int main(int argc, char** argv) {
    TrainArgs args;
    args_parse(&args, argc, argv, 1);
    // multi-GPU: process/NCCL init goes here (rank, nproc, local device); this build is one process, one GPU.
    const int nproc = 1, rank = 0;
    cudaCheck(cudaSetDevice(0));
    const DeviceInfo* dev = device_info();
    if (args.zero_stage == 1 && nproc == 1) printf("note: -z 1 with a single process is the same as -z 0\n");

    // the model: a new one from a descriptor, or a checkpoint (whose alpha is the default for -A)
    GPT2 model;
    GPT2Config cfg;
    const char* e = args.model;
    size_t elen = strlen(e);
    if (elen > 4 && strcmp(e + elen - 4, ".bin") == 0) {
        float ckpt_alpha;
        gpt2_build_from_checkpoint(&model, e, &ckpt_alpha, args.master_weights);
        if (!args.alpha_given) args.alpha = ckpt_alpha;
    } else if (gpt2_config_from_descriptor(e, &cfg)) {
        gpt2_build_from_config(&model, &cfg, args.alpha, args.master_weights);
    } else {
        fail("-e %s is neither a checkpoint (.bin) nor a model descriptor like d12", e);
    }
    model.alpha = args.alpha;
    int B = args.B, T = args.T;
    if (T > model.config.max_seq_len) fail("-t %d is larger than the model's maximum sequence length %d", T, model.config.max_seq_len);
    if (args.hellaswag && B < 4) fail("-h 1 needs -b 4 or more (each HellaSwag example takes 4 rows of the batch)");

    // data
    if (args.overfit_batch && args.val_data == NULL) fail("-a 1 trains on the first val batch: give val data with -j");
    DataLoader train_loader, val_loader;
    const char* train_pattern = args.overfit_batch ? args.val_data : args.train_data;
    dataloader_init(&train_loader, train_pattern, "train data", B, T, rank, nproc, !args.overfit_batch, model.config.vocab_size);
    int have_val = args.val_data != NULL && args.val_every > 0;
    int val_batches = 0;
    if (have_val) {
        dataloader_init(&val_loader, args.val_data, "val data", B, T, rank, nproc, 0, model.config.vocab_size);
        val_batches = dataloader_eval_batches(&val_loader, args.val_max_batches);
    }
    EvalFile hellaswag;
    const char* hellaswag_path = "data/hellaswag/hellaswag_val.bin";
    if (args.hellaswag) {
        if (!file_exists(hellaswag_path)) fail("-h 1 needs %s; make it with: python3 dev/data/hellaswag.py", hellaswag_path);
        evalfile_load(&hellaswag, hellaswag_path);
    }
    BatchPlan plan = args_batch_plan(&args, nproc, train_loader.total_samples);
    long tokens_per_step = plan.tokens_per_step;
    int grad_accum = plan.grad_accum, num_steps = plan.num_steps;
    LRScheduler sched = {args.lr_schedule, args.lr, args.warmup, args.final_lr_frac, num_steps};

    // output directory, resume
    int start_step = 0, resuming = 0;
    if (args.output_dir) make_dir_if_missing(args.output_dir);
    char resume_model[4096], resume_state[4096];
    if (args.resume && checkpoint_find_resume(args.output_dir, rank, resume_model, resume_state) >= 0) {
        float ckpt_alpha;
        gpt2_free(&model);
        gpt2_build_from_checkpoint(&model, resume_model, &ckpt_alpha, args.master_weights);
        model.alpha = args.alpha;
        start_step = load_state(&model, &train_loader, resume_state);
        resuming = 1;
        printf("resumed from %s (step %d)\n", resume_model, start_step);
    }
    int entmax_run = args.alpha != 1.0f || (args.anneal_steps > 0 && args.alpha0 != 1.0f);
    gpt2_alloc_activations(&model, B, T, args.recompute, entmax_run);
    Logger logger;
    logger_init(&logger, args.output_dir, resuming);
    Tokenizer tokenizer;
    tokenizer_init(&tokenizer, "data/gpt2_tokenizer.bin");
    if (!tokenizer.init_ok && args.sample_every > 0) printf("note: data/gpt2_tokenizer.bin not found: samples print token ids\n");
    if (args.gpu_log_every > 0) nvml_open();

    const double peak_tflops = gpu_bf16_peak_tflops(dev->name);
    const double flops_per_token = gpt2_flops_per_token(&model.config, T);
    size_t free_b, total_b;
    cudaCheck(cudaMemGetInfo(&free_b, &total_b));
    printf("device: %s, %d SMs, bf16 peak %s\n", dev->name, dev->num_sms, peak_tflops > 0 ? "known" : "unknown (MFU n/a)");
    printf("model: %d layers, %d heads, %d channels, %zu parameters, max T %d\n", model.config.num_layers,
           model.config.num_heads, model.config.channels, model.num_parameters, model.config.max_seq_len);
    printf("attention: alpha %g%s", args.alpha, args.alpha == 1.0f ? " (softmax)" : "");
    if (args.anneal_steps > 0) printf(", annealed from %g over %d steps", args.alpha0, args.anneal_steps);
    printf("\nbatch: B %d, T %d, %ld tokens per step (%d micro-steps), %d steps, %zu train batches per epoch\n",
           B, T, tokens_per_step, grad_accum, num_steps, train_loader.total_samples);
    printf("precision: bf16, fp32 master weights %s, recompute %d; activations %.2f GiB, GPU memory in use %.2f of %.2f GiB\n",
           model.master ? "on" : "off", args.recompute, model.act_bytes / 1073741824.0, (total_b - free_b) / 1073741824.0,
           total_b / 1073741824.0);

    float* nonzero = (float*)malloc_or_fail(model.config.num_layers * sizeof(float));
    float* dead = (float*)malloc_or_fail(model.config.num_layers * sizeof(float));
    uint64_t sample_rng = 1337;
    // TRAIN_PROFILE=1: device time of the step's phases (events on the stream; read at the step's one sync)
    const int profile = getenv("TRAIN_PROFILE") != NULL && atoi(getenv("TRAIN_PROFILE")) != 0;
    cudaEvent_t ev[6];
    if (profile) for (int i = 0; i < 6; i++) cudaCheck(cudaEventCreate(&ev[i]));
    OutlierDetector loss_outliers = {}, norm_outliers = {};
    const float dloss = 1.0f / ((float)B * T * grad_accum);
    double ema_ms = -1.0, sum_ms = 0.0;
    int timed_steps = 0;
    for (int step = start_step; step <= num_steps; step++) {
        int last_step = step == num_steps;
        float alpha = alpha_at_step(args.alpha, args.alpha0, args.anneal_steps, step);

        if (have_val && (step % args.val_every == 0 || last_step)) {
            float val_loss = evaluate(&model, &val_loader, val_batches, B, T, alpha, nonzero, dead);
            report_val(&logger, step, val_loss, nonzero, dead, model.config.num_layers);
        }
        if (args.hellaswag && args.val_every > 0 && ((step > 0 && step % args.val_every == 0) || last_step)) {
            int correct;
            float acc = hellaswag_eval(&model, &hellaswag, B, T, alpha, &correct);
            printf("HellaSwag: %d/%d = %f\n", correct, hellaswag.num_examples, acc);
            logger_eval(&logger, step, acc);
        }
        if (args.sample_every > 0 && ((step > 0 && step % args.sample_every == 0) || last_step)) {
            print_sample(&model, &tokenizer, args.gen_tokens, T, alpha, &sample_rng);
        }
        if (args.checkpoint_every > 0 && !resuming && ((step > 0 && step % args.checkpoint_every == 0) || last_step)) {
            save_checkpoint(&model, &train_loader, args.output_dir, step);
            checkpoint_delete_old(args.output_dir, step, args.checkpoint_every, args.checkpoint_keep, args.checkpoint_major, nproc);
        }
        resuming = 0;
        if (last_step) break;

        // ---- one optimizer step ----
        double t0 = now_seconds();
        cudaStream_t s = model.stream;
        if (profile) cudaCheck(cudaEventRecord(ev[0], s));
        cudaCheck(cudaMemsetAsync(model.grads, 0, model.num_parameters * sizeof(floatX), s));
        cudaCheck(cudaMemsetAsync(model.acts.losses, 0, (size_t)B * T * sizeof(float), s));
        for (int micro = 0; micro < grad_accum; micro++) {
            if (args.overfit_batch) dataloader_reset(&train_loader);
            dataloader_next_batch(&train_loader);
            gpt2_upload_batch(&model, train_loader.inputs, train_loader.targets, B, T);
            gpt2_forward(&model, B, T, alpha, NULL);
            if (profile && micro == 0) cudaCheck(cudaEventRecord(ev[1], s));
            gpt2_lm_head_loss(&model, B, T, dloss, true);
            if (profile && micro == 0) cudaCheck(cudaEventRecord(ev[2], s));
            gpt2_backward(&model, B, T, alpha);
            if (profile && micro == 0) cudaCheck(cudaEventRecord(ev[3], s));
        }
        // multi-GPU: average the loss over ranks here
        deterministic_sum(model.dev_scalars + 0, model.acts.losses, B * T, false, s);
        global_norm(model.dev_scalars + 1, model.gnorm_partials, model.grads, model.num_parameters, 1.0f, s);
        if (profile) cudaCheck(cudaEventRecord(ev[4], s));
        float lr = lr_at_step(&sched, step);
        bool check_outliers = args.skip_loss_z > 0.0f || args.skip_norm_z > 0.0f;
        if (!check_outliers) gpt2_update(&model, lr, args.weight_decay, step + 1);
        if (profile) cudaCheck(cudaEventRecord(ev[5], s));
        cudaCheck(cudaMemcpyAsync(model.host_scalars, model.dev_scalars, 3 * sizeof(float), cudaMemcpyDeviceToHost, s));
        cudaCheck(cudaStreamSynchronize(s)); // the step's one host sync
        float loss = model.host_scalars[0] / ((float)B * T * grad_accum);
        float norm = model.host_scalars[1];
        double zl = outlier_update(&loss_outliers, loss), zn = outlier_update(&norm_outliers, norm);
        const char* skipped = "";
        if (check_outliers) {
            if ((args.skip_loss_z > 0.0f && zl > args.skip_loss_z) || (args.skip_norm_z > 0.0f && zn > args.skip_norm_z) || !isfinite(loss) || !isfinite(norm)) {
                skipped = " | update skipped (outlier)";
            } else {
                gpt2_update(&model, lr, args.weight_decay, step + 1);
                cudaCheck(cudaStreamSynchronize(s));
            }
        }
        double dt = now_seconds() - t0;
        if (step > start_step) { sum_ms += dt * 1e3; timed_steps++; } // the first step includes warm-up
        ema_ms = ema_ms < 0 ? dt * 1e3 : 0.9 * ema_ms + 0.1 * dt * 1e3;
        double tok_s = tokens_per_step / dt;
        char mfu[32], eta[32];
        if (peak_tflops > 0) snprintf(mfu, sizeof(mfu), "%.1f%%", 100.0 * flops_per_token * tok_s / (peak_tflops * 1e12));
        else snprintf(mfu, sizeof(mfu), "n/a");
        format_eta(eta, sizeof(eta), ema_ms * 1e-3 * (num_steps - step - 1));
        printf("step %4d/%d | loss %.6f | norm %.4f | lr %.2e | alpha %.3f | %.1f ms | %.0f tok/s | MFU %s | ETA %s%s\n", step + 1, num_steps,
               loss, norm, lr, alpha, dt * 1e3, tok_s, mfu, eta, skipped);
        logger_train(&logger, step, loss, lr, norm);
        if (args.gpu_log_every > 0 && (step + 1) % args.gpu_log_every == 0) nvml_print();
        if (profile) {
            float ph[5];
            for (int i = 0; i < 5; i++) cudaCheck(cudaEventElapsedTime(&ph[i], ev[i], ev[i + 1]));
            printf("profile (device ms, first micro-step): forward %.2f | lm head+loss+lm head bwd %.2f | backward %.2f | loss+norm %.2f | update %.2f\n",
                   ph[0], ph[1], ph[2], ph[3], ph[4]);
        }
    }
    if (timed_steps > 0) {
        double ms = sum_ms / timed_steps;
        char mfu[32];
        double tok_s = tokens_per_step / (ms * 1e-3);
        if (peak_tflops > 0) snprintf(mfu, sizeof(mfu), "%.1f%%", 100.0 * flops_per_token * tok_s / (peak_tflops * 1e12));
        else snprintf(mfu, sizeof(mfu), "n/a");
        cudaCheck(cudaMemGetInfo(&free_b, &total_b));
        printf("average over %d steps (the first excluded): %.2f ms/step, %.0f tok/s, MFU %s; GPU memory in use %.2f GiB\n", timed_steps, ms,
               tok_s, mfu, (total_b - free_b) / 1073741824.0);
    }

    free(nonzero);
    free(dead);
    logger_free(&logger);
    tokenizer_free(&tokenizer);
    dataloader_free(&train_loader);
    if (have_val) dataloader_free(&val_loader);
    matmul_teardown();
    gpt2_free(&model);
    return 0;
}
#endif
