/*
 dataloader.h: llm.c's token shards and data loader, plus `-i NAME` dataset names.

 Shard file: header of 256 int32 (h[0] = 20240520 magic, h[1] = 1 version, h[2] = number of tokens), then the
 tokens as uint16. The file size must be exactly 1024 + 2 * ntok.
 One "sample" is a global batch of nproc*B*T tokens; rank r reads B*T+1 tokens starting at token
 sample*nproc*B*T + r*B*T, inputs are the first B*T and targets the same shifted by one.
 Samples per shard = (ntok - 1) / (nproc*B*T); every shard must hold at least nproc*B*T + 1 tokens.
 Training loaders shuffle: each epoch permutes the shard order and each shard permutes its samples, with
 mt19937 seeded 42 + rank. Validation loaders read sequentially from the start of the first shard.
*/
#pragma once

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "utils.h"
#include "rand.h"

#define SHARD_MAGIC 20240520
#define SHARD_HEADER_BYTES 1024

typedef struct {
    // configuration
    int nproc, rank;
    size_t B, T;
    int shuffle;
    int vocab_size;           // tokens must be < vocab_size
    // shards
    glob_t glob_result;
    int num_shards;
    size_t total_samples;     // over all shards (one epoch)
    // position
    int current_shard;        // index into the (possibly permuted) shard order
    size_t current_sample;    // index into the (possibly permuted) sample order of the current shard
    FILE* file;
    size_t shard_num_samples;
    // shuffling
    mt19937 rng;
    int* shard_order;         // num_shards
    int* sample_order;        // shard_num_samples (capacity sample_order_cap)
    size_t sample_order_cap;
    // batch buffers
    uint16_t* buffer;         // B*T+1
    int* inputs;              // B*T
    int* targets;             // B*T
} DataLoader;

// token count of a shard after validating its header and size
static inline size_t shard_read_ntok(const char* path) {
    FILE* f = fopen_or_fail(path, "rb");
    int h[256];
    size_t got = fread(h, sizeof(int), 256, f);
    fclose(f);
    if (got != 256) fail("%s is too short to be a token shard (truncated?)", path);
    if (h[0] != SHARD_MAGIC) fail("%s is not a token shard (bad magic %d, expected %d)", path, h[0], SHARD_MAGIC);
    if (h[1] != 1) fail("%s has shard version %d; only version 1 (GPT-2 uint16 tokens) is supported", path, h[1]);
    if (h[2] < 0) fail("%s has a negative token count", path);
    size_t ntok = (size_t)h[2];
    long size = file_size_or_fail(path);
    if ((size_t)size != SHARD_HEADER_BYTES + 2 * ntok)
        fail("%s has %ld bytes but its header promises %zu tokens (%zu bytes): truncated or corrupt", path, size, ntok, SHARD_HEADER_BYTES + 2 * ntok);
    return ntok;
}

static inline void dataloader_open_shard(DataLoader* dl) {
    int file_index = dl->shuffle ? dl->shard_order[dl->current_shard] : dl->current_shard;
    const char* path = dl->glob_result.gl_pathv[file_index];
    if (dl->file) fclose(dl->file);
    dl->file = fopen_or_fail(path, "rb");
    size_t ntok = shard_read_ntok(path);
    dl->shard_num_samples = (ntok - 1) / ((size_t)dl->nproc * dl->B * dl->T);
    if (dl->shuffle && dl->shard_num_samples > dl->sample_order_cap) {
        free(dl->sample_order);
        dl->sample_order = (int*)malloc_or_fail(dl->shard_num_samples * sizeof(int));
        dl->sample_order_cap = dl->shard_num_samples;
    }
}

// start of an epoch: first shard, first sample, fresh permutations when shuffling
static inline void dataloader_reset(DataLoader* dl) {
    dl->current_shard = 0;
    dl->current_sample = 0;
    if (dl->shuffle) mt_permutation(&dl->rng, dl->shard_order, dl->num_shards);
    dataloader_open_shard(dl);
    if (dl->shuffle) mt_permutation(&dl->rng, dl->sample_order, (int)dl->shard_num_samples);
}

// `what` names the loader in error messages ("train data", "val data")
static inline void dataloader_init(DataLoader* dl, const char* pattern, const char* what, size_t B, size_t T,
                                   int rank, int nproc, int shuffle, int vocab_size) {
    memset(dl, 0, sizeof(*dl));
    dl->nproc = nproc; dl->rank = rank; dl->B = B; dl->T = T; dl->shuffle = shuffle; dl->vocab_size = vocab_size;
    int g = glob(pattern, 0, NULL, &dl->glob_result);
    if (g != 0 || dl->glob_result.gl_pathc == 0) {
        if (strpbrk(pattern, "*?[") == NULL) fail("%s file %s does not exist", what, pattern);
        fail("no %s files match '%s'", what, pattern);
    }
    dl->num_shards = (int)dl->glob_result.gl_pathc;
    size_t need = (size_t)nproc * B * T + 1;
    for (int i = 0; i < dl->num_shards; i++) {
        const char* path = dl->glob_result.gl_pathv[i];
        size_t ntok = shard_read_ntok(path);
        if (ntok < need)
            fail("%s holds %zu tokens, fewer than one batch needs (%d x B=%zu x T=%zu + 1 = %zu): use a smaller -b/-t or a larger shard",
                 path, ntok, nproc, B, T, need);
        dl->total_samples += (ntok - 1) / ((size_t)nproc * B * T);
    }
    dl->buffer = (uint16_t*)malloc_or_fail((B * T + 1) * sizeof(uint16_t));
    dl->inputs = (int*)malloc_or_fail(B * T * sizeof(int));
    dl->targets = (int*)malloc_or_fail(B * T * sizeof(int));
    dl->shard_order = (int*)malloc_or_fail(dl->num_shards * sizeof(int));
    mt_seed(&dl->rng, 42 + rank);
    dataloader_reset(dl);
}

static inline void dataloader_advance_shard(DataLoader* dl) {
    if (dl->current_shard == dl->num_shards - 1) { dataloader_reset(dl); return; } // next epoch
    dl->current_shard++;
    dl->current_sample = 0;
    dataloader_open_shard(dl);
    if (dl->shuffle) mt_permutation(&dl->rng, dl->sample_order, (int)dl->shard_num_samples);
}

// load the next batch into dl->inputs / dl->targets
static inline void dataloader_next_batch(DataLoader* dl) {
    if (dl->current_sample >= dl->shard_num_samples) dataloader_advance_shard(dl);
    size_t sample = dl->shuffle ? (size_t)dl->sample_order[dl->current_sample] : dl->current_sample;
    size_t BT = dl->B * dl->T;
    size_t offset = SHARD_HEADER_BYTES + (sample * dl->nproc + dl->rank) * BT * sizeof(uint16_t);
    int file_index = dl->shuffle ? dl->shard_order[dl->current_shard] : dl->current_shard;
    const char* path = dl->glob_result.gl_pathv[file_index];
    fseek_or_fail(dl->file, (long)offset, SEEK_SET, path);
    fread_or_fail(dl->buffer, sizeof(uint16_t), BT + 1, dl->file, path);
    for (size_t i = 0; i < BT + 1; i++) {
        if (dl->buffer[i] >= dl->vocab_size) fail("%s contains token id %d >= vocab size %d: corrupt shard", path, dl->buffer[i], dl->vocab_size);
    }
    for (size_t i = 0; i < BT; i++) { dl->inputs[i] = dl->buffer[i]; dl->targets[i] = dl->buffer[i + 1]; }
    dl->current_sample++;
}

// -- training-state (de)serialisation: position plus the shuffle state, for bit-exact resume --------------

static inline void dataloader_write_state(const DataLoader* dl, FILE* f, const char* path) {
    size_t pos[2] = {(size_t)dl->current_shard, dl->current_sample};
    fwrite_or_fail(pos, sizeof(size_t), 2, f, path);
    if (!dl->shuffle) return;
    size_t n = (size_t)dl->num_shards;
    fwrite_or_fail(&n, sizeof(size_t), 1, f, path);
    fwrite_or_fail(dl->shard_order, sizeof(int), n, f, path);
    fwrite_or_fail(&dl->shard_num_samples, sizeof(size_t), 1, f, path);
    fwrite_or_fail(dl->sample_order, sizeof(int), dl->shard_num_samples, f, path);
    fwrite_or_fail(&dl->rng, sizeof(mt19937), 1, f, path);
}

static inline void dataloader_read_state(DataLoader* dl, FILE* f, const char* path) {
    size_t pos[2];
    fread_or_fail(pos, sizeof(size_t), 2, f, path);
    if (pos[0] >= (size_t)dl->num_shards) fail("%s refers to shard %zu but only %d shards match now: same -i as the run that wrote it?", path, pos[0], dl->num_shards);
    dl->current_shard = (int)pos[0];
    if (dl->shuffle) {
        size_t n;
        fread_or_fail(&n, sizeof(size_t), 1, f, path);
        if (n != (size_t)dl->num_shards) fail("%s was written with %zu train shards, now %d match -i", path, n, dl->num_shards);
        fread_or_fail(dl->shard_order, sizeof(int), n, f, path);
        for (size_t i = 0; i < n; i++) if (dl->shard_order[i] < 0 || dl->shard_order[i] >= dl->num_shards) fail("%s has a corrupt shard order", path);
    }
    dataloader_open_shard(dl);
    if (dl->shuffle) {
        size_t ns;
        fread_or_fail(&ns, sizeof(size_t), 1, f, path);
        if (ns != dl->shard_num_samples) fail("%s does not match the current shard (%zu samples vs %zu): same -i/-b/-t as the run that wrote it?", path, ns, dl->shard_num_samples);
        fread_or_fail(dl->sample_order, sizeof(int), ns, f, path);
        fread_or_fail(&dl->rng, sizeof(mt19937), 1, f, path);
    }
    if (pos[1] > dl->shard_num_samples) fail("%s has a sample position past the end of its shard", path);
    dl->current_sample = pos[1];
}

// batches per evaluation: -m max_batches (-1: all), capped at what the split holds
static inline int dataloader_eval_batches(const DataLoader* dl, int max_batches) {
    if (max_batches < 0 || (size_t)max_batches > dl->total_samples) return (int)dl->total_samples;
    return max_batches;
}

static inline void dataloader_free(DataLoader* dl) {
    if (dl->file) fclose(dl->file);
    globfree(&dl->glob_result);
    free(dl->buffer); free(dl->inputs); free(dl->targets); free(dl->shard_order); free(dl->sample_order);
}

// -- dataset names for -i / -j ---------------------------------------------------------------------------

typedef struct {
    const char* name;
    const char* train_glob;
    const char* val_glob;
    const char* how_to_prepare;
} DatasetName;

static const DatasetName KNOWN_DATASETS[] = {
    {"tinyshakespeare", "data/tinyshakespeare/tiny_shakespeare_train.bin", "data/tinyshakespeare/tiny_shakespeare_val.bin",
     "bash dev/data/prepare_tinyshakespeare.sh"},
    {"enwiki", "data/enwiki/enwiki_train_*.bin", "data/enwiki/enwiki_val_*.bin", "bash dev/data/prepare_enwiki.sh"},
    {"fineweb", "data/fineweb10B/fineweb_train_*.bin", "data/fineweb10B/fineweb_val_*.bin",
     "python3 dev/data/fineweb.py (on a machine with internet)"},
    {"fineweb-edu", "data/edu_fineweb10B/edu_fineweb_train_*.bin", "data/edu_fineweb10B/edu_fineweb_val_*.bin",
     "python3 dev/data/fineweb.py --edu (on a machine with internet)"},
};

// If `name` is a known dataset name, return it (else NULL).
static inline const DatasetName* dataset_lookup(const char* name) {
    for (size_t i = 0; i < sizeof(KNOWN_DATASETS) / sizeof(KNOWN_DATASETS[0]); i++)
        if (strcmp(name, KNOWN_DATASETS[i].name) == 0) return &KNOWN_DATASETS[i];
    return NULL;
}

// fail with the preparation command when a named dataset has no files yet
static inline void dataset_require(const DatasetName* d, const char* pattern) {
    glob_t g;
    int r = glob(pattern, 0, NULL, &g);
    size_t n = r == 0 ? g.gl_pathc : 0;
    if (r == 0) globfree(&g);
    if (n == 0) fail("dataset '%s' is not prepared (no files match %s); prepare it with: %s", d->name, pattern, d->how_to_prepare);
}
