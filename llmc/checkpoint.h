/*
 checkpoint.h: llm.c's model checkpoint and training-state files, the DONE_ protocol, atomic writes.

 Model file (little endian): header of 256 int32, then every parameter tensor in model.h's order.
   h[0] = 20240326 (magic)   h[1] = 3 (all fp32) or 5 (all bf16)   h[2] = maxT   h[3] = V   h[4] = L
   h[5] = NH   h[6] = C   h[7] = Vp
   h[8] = our one addition: the float32 bits of the final attention alpha. 0 (what llm.c writes) or 1.0
          means softmax, so llm.c's checkpoints load as softmax models and our softmax checkpoints load in
          llm.c's tools. No other header slot is used.
 State file state_%08d_%05d.bin (step, rank): header of 256 int32
   h[0] = 20240527   h[1] = 1   h[2] = num processes   h[3] = rank   h[4] = has fp32 master weights
   h[5] = train loader shuffles   h[10] = step   h[20..21] = stochastic-rounding rng state (uint64)
   h[22..23] = rng state of the last update (uint64)   h[30..31] = current shard   h[32..33] = current sample
   then AdamW m (fp32), v (fp32), fp32 master weights if h[4], then the data loader's shuffle state.
 Every file is written to "<name>.tmp" and renamed; DONE_%08d (empty) is created last, and resume (-y 1)
 takes the largest step that has a DONE_ file, so a half-written checkpoint is never used.
*/
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <dirent.h>
#include "utils.h"
#include "model.h"
#include "entmax.h"

#define MODEL_MAGIC 20240326
#define STATE_MAGIC 20240527
#define HEADER_INTS 256
#define HEADER_BYTES (HEADER_INTS * sizeof(int))

static inline float float_from_bits(int bits) { float f; memcpy(&f, &bits, 4); return f; }
static inline int bits_from_float(float f) { int b; memcpy(&b, &f, 4); return b; }

// round-to-nearest-even fp32 -> bf16, and back
static inline uint16_t bf16_from_float(float f) {
    uint32_t u; memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static inline float float_from_bf16(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }

// Read a model checkpoint header; fails with one line on any problem.
static inline void model_file_read_header(const char* path, GPT2Config* cfg, int* version, float* alpha) {
    FILE* f = fopen_or_fail(path, "rb");
    int h[HEADER_INTS];
    size_t got = fread(h, sizeof(int), HEADER_INTS, f);
    fclose(f);
    if (got != HEADER_INTS) fail("%s is too short to be a model checkpoint (truncated?)", path);
    if (h[0] != MODEL_MAGIC) fail("%s is not a GPT-2 model checkpoint (bad magic %d, expected %d)", path, h[0], MODEL_MAGIC);
    if (h[1] != 3 && h[1] != 5)
        fail("%s has checkpoint version %d; only 3 (fp32) and 5 (bf16) with padded vocab are supported "
             "(re-export it with llm.c's current train_gpt2.py)", path, h[1]);
    cfg->max_seq_len = h[2]; cfg->vocab_size = h[3]; cfg->num_layers = h[4];
    cfg->num_heads = h[5]; cfg->channels = h[6]; cfg->padded_vocab_size = h[7];
    const char* problem = gpt2_config_problem(cfg);
    if (problem) fail("%s has an invalid model header (%s)", path, problem);
    float a = h[8] == 0 ? 1.0f : float_from_bits(h[8]);
    if (!entmax_alpha_is_valid(a)) fail("%s has an invalid attention alpha in header[8] (%g); it must be in [1, 2]", path, a);
    *version = h[1];
    *alpha = a;
    size_t bytes = HEADER_BYTES + gpt2_num_parameters(cfg) * (h[1] == 3 ? 4 : 2);
    long actual = file_size_or_fail(path);
    if ((size_t)actual < bytes) fail("%s is truncated or does not match its header's model shape (%ld bytes, the header promises %zu)", path, actual, bytes);
    if ((size_t)actual > bytes) fail("%s is larger than its header promises (%ld bytes, expected %zu): wrong file?", path, actual, bytes);
}

// Read all parameters as fp32 into `params` (gpt2_num_parameters(cfg) floats; bf16 files are widened).
static inline void model_file_read_params_f32(const char* path, const GPT2Config* cfg, int version, float* params) {
    FILE* f = fopen_or_fail(path, "rb");
    fseek_or_fail(f, HEADER_BYTES, SEEK_SET, path);
    size_t n = gpt2_num_parameters(cfg);
    if (version == 3) {
        fread_or_fail(params, sizeof(float), n, f, path);
    } else {
        const size_t chunk = 1 << 20;
        uint16_t* buf = (uint16_t*)malloc_or_fail(chunk * sizeof(uint16_t));
        for (size_t i = 0; i < n; i += chunk) {
            size_t m = n - i < chunk ? n - i : chunk;
            fread_or_fail(buf, sizeof(uint16_t), m, f, path);
            for (size_t j = 0; j < m; j++) params[i + j] = float_from_bf16(buf[j]);
        }
        free(buf);
    }
    fclose(f);
}

static inline void model_header_fill(int h[HEADER_INTS], const GPT2Config* cfg, int version, float alpha) {
    memset(h, 0, HEADER_BYTES);
    h[0] = MODEL_MAGIC; h[1] = version; h[2] = cfg->max_seq_len; h[3] = cfg->vocab_size;
    h[4] = cfg->num_layers; h[5] = cfg->num_heads; h[6] = cfg->channels; h[7] = cfg->padded_vocab_size;
    h[8] = bits_from_float(alpha);
}

// Write a checkpoint atomically. version 3: `data` holds fp32 params; version 5: `data` holds bf16 params.
static inline void model_file_write(const char* path, const GPT2Config* cfg, int version, float alpha, const void* data) {
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE* f = fopen_or_fail(tmp, "wb");
    int h[HEADER_INTS];
    model_header_fill(h, cfg, version, alpha);
    fwrite_or_fail(h, sizeof(int), HEADER_INTS, f, path);
    fwrite_or_fail(data, version == 3 ? 4 : 2, gpt2_num_parameters(cfg), f, path);
    atomic_commit(f, tmp, path);
}

// ----------------------------------------------------------------------------------------------------------
// state file header helpers

static inline void state_header_check(const int h[HEADER_INTS], const char* path, int nproc, int rank) {
    if (h[0] != STATE_MAGIC) fail("%s is not a training state file (bad magic %d, expected %d)", path, h[0], STATE_MAGIC);
    if (h[1] != 1) fail("%s has state version %d, expected 1", path, h[1]);
    if (h[2] != nproc) fail("%s was written by a run with %d processes; resume with the same number (now %d)", path, h[2], nproc);
    if (h[3] != rank) fail("%s belongs to rank %d, not %d", path, h[3], rank);
}

static inline void put_u64(int* h, uint64_t v) { memcpy(h, &v, 8); }
static inline uint64_t get_u64(const int* h) { uint64_t v; memcpy(&v, h, 8); return v; }

// ----------------------------------------------------------------------------------------------------------
// checkpoint directory: file names, DONE_ files, resume step, rolling deletion

static inline void checkpoint_paths(const char* dir, int step, int rank, char* model_path, char* state_path, char* done_path) {
    snprintf(model_path, 4096, "%s/model_%08d.bin", dir, step);
    snprintf(state_path, 4096, "%s/state_%08d_%05d.bin", dir, step, rank);
    snprintf(done_path, 4096, "%s/DONE_%08d", dir, step);
}

static inline void touch_done_file(const char* done_path) {
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", done_path);
    FILE* f = fopen_or_fail(tmp, "wb");
    atomic_commit(f, tmp, done_path);
}

// largest N with a DONE_%08d file in dir, or -1
static inline int checkpoint_find_max_step(const char* dir) {
    DIR* d = opendir(dir);
    if (d == NULL) return -1;
    int best = -1;
    struct dirent* e;
    while ((e = readdir(d)) != NULL) {
        const char* n = e->d_name;
        if (strncmp(n, "DONE_", 5) != 0 || strlen(n) != 13) continue;
        char* end;
        long s = strtol(n + 5, &end, 10);
        if (*end == '\0' && s > best) best = (int)s;
    }
    closedir(d);
    return best;
}

// -y 1: the step of the last complete checkpoint in dir and its model and state file names (this rank's state),
// or -1 with a note when there is none (the run then starts from scratch)
static inline int checkpoint_find_resume(const char* dir, int rank, char* model_path, char* state_path) {
    int step = checkpoint_find_max_step(dir);
    if (step < 0) { printf("no complete checkpoint in %s: starting from scratch\n", dir); return -1; }
    char done_path[4096];
    checkpoint_paths(dir, step, rank, model_path, state_path, done_path);
    return step;
}

// -nk K: keep the last K checkpoints (taken every `every` steps); -nm M: steps divisible by M are kept forever
static inline void checkpoint_delete_old(const char* dir, int step, int every, int keep, int major_every, int nproc) {
    if (keep <= 0 || every <= 0) return;
    int old = step - keep * every;
    if (old <= 0) return;
    if (major_every > 0 && old % major_every == 0) return;
    char m[4096], s[4096], dn[4096];
    checkpoint_paths(dir, old, 0, m, s, dn);
    remove(dn); // DONE first, so a crash in between never leaves a DONE_ without its files
    remove(m);
    for (int r = 0; r < nproc; r++) { checkpoint_paths(dir, old, r, m, s, dn); remove(s); }
}
