/*
 model.h: the GPT-2 model description shared by the CPU and GPU trainers: the config, the 16 parameter
 tensors in llm.c's order and layout, the `-e dN` descriptor, and llm.c's initialisation.

 GPT-2 as llm.c: pre-LayerNorm blocks, learned position embeddings, tanh GELU, 4C MLP, biases everywhere,
 LayerNorm eps 1e-5, the token embedding wte tied to the LM head, vocabulary padded to a multiple of 128.
 Parameter tensors (PyTorch nn.Linear layout (out, in), per-layer tensors stacked along a leading L axis):
   wte (Vp,C)  wpe (maxT,C)  ln1w (L,C)  ln1b (L,C)  qkvw (L,3C,C)  qkvb (L,3C)  attprojw (L,C,C)
   attprojb (L,C)  ln2w (L,C)  ln2b (L,C)  fcw (L,4C,C)  fcb (L,4C)  fcprojw (L,C,4C)  fcprojb (L,C)
   lnfw (C)  lnfb (C)
*/
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "utils.h"
#include "rand.h"

#define NUM_PARAMETER_TENSORS 16
#define GPT2_EOT 50256
#define GPT2_VOCAB 50257
#define GPT2_PADDED_VOCAB 50304
#define GPT2_MAX_SEQ_LEN 1024

typedef struct {
    int max_seq_len;       // maxT, 1024
    int vocab_size;        // V, 50257
    int padded_vocab_size; // Vp, 50304 (multiple of 128)
    int num_layers;        // L
    int num_heads;         // NH
    int channels;          // C
} GPT2Config;

enum { P_WTE, P_WPE, P_LN1W, P_LN1B, P_QKVW, P_QKVB, P_ATTPROJW, P_ATTPROJB, P_LN2W, P_LN2B,
       P_FCW, P_FCB, P_FCPROJW, P_FCPROJB, P_LNFW, P_LNFB };

static const char* const PARAMETER_NAMES[NUM_PARAMETER_TENSORS] = {
    "wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"};

// number of elements of each parameter tensor
static inline void gpt2_param_sizes(const GPT2Config* c, size_t sizes[NUM_PARAMETER_TENSORS]) {
    size_t Vp = c->padded_vocab_size, C = c->channels, maxT = c->max_seq_len, L = c->num_layers;
    sizes[P_WTE] = Vp * C;
    sizes[P_WPE] = maxT * C;
    sizes[P_LN1W] = L * C;
    sizes[P_LN1B] = L * C;
    sizes[P_QKVW] = L * 3 * C * C;
    sizes[P_QKVB] = L * 3 * C;
    sizes[P_ATTPROJW] = L * C * C;
    sizes[P_ATTPROJB] = L * C;
    sizes[P_LN2W] = L * C;
    sizes[P_LN2B] = L * C;
    sizes[P_FCW] = L * 4 * C * C;
    sizes[P_FCB] = L * 4 * C;
    sizes[P_FCPROJW] = L * C * 4 * C;
    sizes[P_FCPROJB] = L * C;
    sizes[P_LNFW] = C;
    sizes[P_LNFB] = C;
}

static inline size_t gpt2_num_parameters(const GPT2Config* c) {
    size_t sizes[NUM_PARAMETER_TENSORS], n = 0;
    gpt2_param_sizes(c, sizes);
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) n += sizes[i];
    return n;
}

// AdamW weight decay applies to the 2-D tensors only: the embeddings and the four matmul weights
static inline int gpt2_param_is_decayed(int tensor) {
    return tensor == P_WTE || tensor == P_WPE || tensor == P_QKVW || tensor == P_ATTPROJW ||
           tensor == P_FCW || tensor == P_FCPROJW;
}

// "dN" (or "gpt2:dN"): N layers, 64*N channels, N heads (d12 = GPT-2 124M). Returns 0 if not a descriptor.
static inline int gpt2_config_from_descriptor(const char* desc, GPT2Config* c) {
    if (strncmp(desc, "gpt2:", 5) == 0) desc += 5;
    if (desc[0] != 'd' || desc[1] == '\0') return 0;
    char* end;
    long depth = strtol(desc + 1, &end, 10);
    if (*end != '\0') return 0;
    if (depth < 1 || depth > 128) fail("model depth in '-e d%ld' must be between 1 and 128", depth);
    c->max_seq_len = GPT2_MAX_SEQ_LEN;
    c->vocab_size = GPT2_VOCAB;
    c->padded_vocab_size = GPT2_PADDED_VOCAB;
    c->num_layers = (int)depth;
    c->num_heads = (int)depth;
    c->channels = (int)depth * 64;
    return 1;
}

// Consistency checks for a config read from a file or built for a test: returns NULL or a message.
static inline const char* gpt2_config_problem(const GPT2Config* c) {
    if (c->max_seq_len < 1 || c->max_seq_len > 1 << 20) return "max_seq_len out of range";
    if (c->vocab_size < 1 || c->padded_vocab_size < c->vocab_size) return "vocab sizes inconsistent";
    if (c->num_layers < 1 || c->num_layers > 1024) return "num_layers out of range";
    if (c->num_heads < 1 || c->channels < 1 || c->channels % c->num_heads != 0) return "channels must be a positive multiple of num_heads";
    if (c->channels > 1 << 16) return "channels out of range";
    return NULL;
}

// llm.c's initialisation, drawn in PyTorch's module order with mt19937 seeded 42:
// wte (first V rows) and wpe ~ N(0, 0.02); per layer qkvw, attprojw, fcw, fcprojw ~ N(0, 0.02), the two
// residual projections (attprojw, fcprojw) scaled by 1/sqrt(2L); biases 0; LayerNorm weights 1, biases 0.
// `params` is one fp32 buffer holding all tensors in order.
static inline void gpt2_init_params(const GPT2Config* c, float* params) {
    size_t sizes[NUM_PARAMETER_TENSORS];
    gpt2_param_sizes(c, sizes);
    float* t[NUM_PARAMETER_TENSORS];
    float* p = params;
    for (int i = 0; i < NUM_PARAMETER_TENSORS; i++) { t[i] = p; p += sizes[i]; }
    memset(params, 0, gpt2_num_parameters(c) * sizeof(float));
    size_t L = c->num_layers, C = c->channels;
    for (size_t i = 0; i < L * C; i++) { t[P_LN1W][i] = 1.0f; t[P_LN2W][i] = 1.0f; }
    for (size_t i = 0; i < C; i++) t[P_LNFW][i] = 1.0f;
    mt19937 rng;
    mt_seed(&rng, 42);
    float residual_std = 0.02f / sqrtf(2.0f * (float)L);
    mt_normal_fill(&rng, t[P_WTE], (size_t)c->vocab_size * C, 0.0f, 0.02f);
    mt_normal_fill(&rng, t[P_WPE], (size_t)c->max_seq_len * C, 0.0f, 0.02f);
    for (size_t l = 0; l < L; l++) {
        mt_normal_fill(&rng, t[P_QKVW] + l * 3 * C * C, 3 * C * C, 0.0f, 0.02f);
        mt_normal_fill(&rng, t[P_ATTPROJW] + l * C * C, C * C, 0.0f, residual_std);
        mt_normal_fill(&rng, t[P_FCW] + l * 4 * C * C, 4 * C * C, 0.0f, 0.02f);
        mt_normal_fill(&rng, t[P_FCPROJW] + l * 4 * C * C, 4 * C * C, 0.0f, residual_std);
    }
}

// FLOPs per token for MFU (llm.c's formula): 6 N + 6 L C T (attention counted as dense)
static inline double gpt2_flops_per_token(const GPT2Config* c, int T) {
    return 6.0 * (double)gpt2_num_parameters(c) + 6.0 * c->num_layers * c->channels * (double)T;
}
