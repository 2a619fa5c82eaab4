/*
 args.h: the command line of both trainers. llm.c's flags with llm.c's meanings, plus the attention's alpha:
 every flag is "-x value" (1-2 letters). Values are checked here; a bad one is one error line and exit 1.
 Flags that only the GPU trainer implements are rejected by the CPU trainer (no silently ignored flags).
*/
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <errno.h>
#include "utils.h"
#include "entmax.h"
#include "schedulers.h"
#include "dataloader.h"

typedef struct {
    // data and model
    const char* train_data;   // -i  glob of train shards, or a dataset name (tinyshakespeare, enwiki, fineweb, fineweb-edu)
    const char* val_data;     // -j  glob of val shards (default: the -i dataset's val shards)
    const char* model;        // -e  dN (from scratch) or a checkpoint .bin
    const char* output_dir;   // -o  main.log, checkpoints, DONE_ files
    // batch
    int B;                    // -b  micro-batch size per process
    int T;                    // -t  sequence length
    long total_batch_tokens;  // -d  tokens per optimizer step (-1: B*T*nproc); gradient accumulation covers the rest
    int max_steps;            // -x  optimizer steps (-1: one epoch of the train data)
    // optimizer
    int lr_schedule;          // -k  cosine | linear | constant | wsd
    float lr;                 // -l  peak learning rate
    int warmup;               // -u  warmup steps
    float final_lr_frac;      // -q  final lr as a fraction of the peak
    float weight_decay;       // -c  AdamW weight decay (2-D tensors only)
    // evaluation, sampling, checkpoints
    int val_every;            // -v  val loss every N steps (0: never)
    int val_max_batches;      // -m  val batches per evaluation (-1: the whole val split)
    int sample_every;         // -s  print a text sample every N steps (0: never)
    int gen_tokens;           // -g  length of the text sample in tokens
    int checkpoint_every;     // -n  checkpoint every N steps (0: never; needs -o)
    int checkpoint_keep;      // -nk keep only the last N checkpoints (0: all)
    int checkpoint_major;     // -nm checkpoints at multiples of N are never deleted (0: none)
    int resume;               // -y  1: resume from the last complete checkpoint in -o
    int overfit_batch;        // -a  1: train on one fixed batch (the first val batch)
    // attention
    float alpha;              // -A  entmax alpha in [1, 2] (1 = softmax); default 1.5, or the checkpoint's alpha
    int alpha_given;
    float alpha0;             // -A0 initial alpha of a linear anneal to -A
    int alpha0_given;
    int anneal_steps;         // -An steps of the anneal
    // GPU trainer only
    int recompute;            // -r  0: none, 1: recompute GELU, 2: GELU and both LayerNorms
    int master_weights;       // -w  keep fp32 master weights
    int zero_stage;           // -z  ZeRO stage (0 or 1)
    int hellaswag;            // -h  HellaSwag eval every -v steps
    int gpu_log_every;        // -lg log GPU state every N steps (-1: off)
    float skip_loss_z;        // -sl skip the update when the loss z-score exceeds this (0: off)
    float skip_norm_z;        // -sg skip the update when the grad-norm z-score exceeds this (0: off)
} TrainArgs;

static inline void args_defaults(TrainArgs* a, int is_gpu) {
    memset(a, 0, sizeof(*a));
    a->train_data = "tinyshakespeare";
    a->val_data = NULL;
    a->model = "d12";
    a->output_dir = NULL;
    a->B = 4;
    a->T = is_gpu ? 1024 : 64;   // the CPU reference is for small runs
    a->total_batch_tokens = -1;
    a->max_steps = is_gpu ? -1 : 40;
    a->lr_schedule = LR_COSINE;
    a->lr = 3e-4f;
    a->warmup = 0;
    a->final_lr_frac = 1.0f;
    a->weight_decay = 0.0f;
    a->val_every = 20;
    a->val_max_batches = 20;
    a->sample_every = 20;
    a->gen_tokens = 64;
    a->alpha = 1.5f;
    a->recompute = 1;
    a->master_weights = 1;
    a->gpu_log_every = -1;
}

static inline void args_usage(const char* prog, int is_gpu) {
    printf("usage: %s [-flag value ...]\n", prog);
    printf("  -i  train data: glob of shards or a dataset name (tinyshakespeare, enwiki, fineweb, fineweb-edu) [tinyshakespeare]\n");
    printf("  -j  val data glob [the -i dataset's val shards]\n");
    printf("  -e  model: dN for a new depth-N GPT-2 (d12 = 124M) or a checkpoint .bin [d12]\n");
    printf("  -o  output dir for main.log and checkpoints [none]\n");
    printf("  -b  micro-batch size [4]    -t  sequence length [%d]    -d  tokens per step [-1 = B*T*processes]\n", is_gpu ? 1024 : 64);
    printf("  -x  optimizer steps [%d; -1 = one epoch]\n", is_gpu ? -1 : 40);
    printf("  -k  lr schedule cosine|linear|constant|wsd [cosine]    -l  peak lr [3e-4]    -u  warmup steps [0]\n");
    printf("  -q  final lr fraction [1.0]    -c  weight decay [0]\n");
    printf("  -v  val every N steps [20; 0 = never]    -m  val batches [20; -1 = all]\n");
    printf("  -s  sample every N steps [20; 0 = never]    -g  sample length [64]\n");
    printf("  -n  checkpoint every N steps [0 = never]    -nk keep last N [0 = all]    -nm never delete multiples of N [0]\n");
    printf("  -y  resume from the last checkpoint in -o [0]    -a  overfit one batch [0]\n");
    printf("  -A  attention alpha in [1,2], 1 = softmax [1.5, or the checkpoint's]\n");
    printf("  -A0 anneal alpha linearly from this value ...   -An ... over this many steps\n");
    if (is_gpu) {
        printf("  -r  recompute 0|1 (GELU)|2 (GELU+LayerNorm) [1]    -w  fp32 master weights [1]    -z  ZeRO stage 0|1 [0]\n");
        printf("  -h  HellaSwag eval [0]    -lg log GPU state every N steps [-1 = off]\n");
        printf("  -sl skip update if loss z-score > x [0 = off]    -sg skip update if grad-norm z-score > x [0 = off]\n");
    }
}

static inline int parse_int_or_fail(const char* flag, const char* s) {
    errno = 0;
    char* end;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < -2147483647L || v > 2147483647L)
        fail("flag %s expects an integer, got '%s'", flag, s);
    return (int)v;
}

static inline long parse_long_or_fail(const char* flag, const char* s) {
    errno = 0;
    char* end;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') fail("flag %s expects an integer, got '%s'", flag, s);
    return v;
}

static inline float parse_float_or_fail(const char* flag, const char* s) {
    errno = 0;
    char* end;
    float v = strtof(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v)) fail("flag %s expects a number, got '%s'", flag, s);
    return v;
}

static inline void require_range_int(const char* flag, int v, int lo, int hi, const char* meaning) {
    if (v < lo || v > hi) fail("flag %s %d is out of range: %s", flag, v, meaning);
}

static inline void args_parse(TrainArgs* a, int argc, char** argv, int is_gpu) {
    args_defaults(a, is_gpu);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) { args_usage(argv[0], is_gpu); exit(0); }
    }
    for (int i = 1; i < argc; i += 2) {
        const char* f = argv[i];
        if (f[0] != '-' || strlen(f) < 2 || strlen(f) > 3) fail("expected a flag like -b, got '%s' (see --help)", f);
        if (i + 1 >= argc) fail("flag %s needs a value (see --help)", f);
        const char* v = argv[i + 1];
        const char* k = f + 1;
        int gpu_flag = 0;
        if (strcmp(k, "i") == 0) a->train_data = v;
        else if (strcmp(k, "j") == 0) a->val_data = v;
        else if (strcmp(k, "e") == 0) a->model = v;
        else if (strcmp(k, "o") == 0) a->output_dir = v;
        else if (strcmp(k, "b") == 0) a->B = parse_int_or_fail(f, v);
        else if (strcmp(k, "t") == 0) a->T = parse_int_or_fail(f, v);
        else if (strcmp(k, "d") == 0) a->total_batch_tokens = parse_long_or_fail(f, v);
        else if (strcmp(k, "x") == 0) a->max_steps = parse_int_or_fail(f, v);
        else if (strcmp(k, "k") == 0) {
            a->lr_schedule = lr_schedule_from_name(v);
            if (a->lr_schedule < 0) fail("flag -k: unknown lr schedule '%s' (cosine, linear, constant or wsd)", v);
        }
        else if (strcmp(k, "l") == 0) a->lr = parse_float_or_fail(f, v);
        else if (strcmp(k, "u") == 0) a->warmup = parse_int_or_fail(f, v);
        else if (strcmp(k, "q") == 0) a->final_lr_frac = parse_float_or_fail(f, v);
        else if (strcmp(k, "c") == 0) a->weight_decay = parse_float_or_fail(f, v);
        else if (strcmp(k, "v") == 0) a->val_every = parse_int_or_fail(f, v);
        else if (strcmp(k, "m") == 0) a->val_max_batches = parse_int_or_fail(f, v);
        else if (strcmp(k, "s") == 0) a->sample_every = parse_int_or_fail(f, v);
        else if (strcmp(k, "g") == 0) a->gen_tokens = parse_int_or_fail(f, v);
        else if (strcmp(k, "n") == 0) a->checkpoint_every = parse_int_or_fail(f, v);
        else if (strcmp(k, "nk") == 0) a->checkpoint_keep = parse_int_or_fail(f, v);
        else if (strcmp(k, "nm") == 0) a->checkpoint_major = parse_int_or_fail(f, v);
        else if (strcmp(k, "y") == 0) a->resume = parse_int_or_fail(f, v);
        else if (strcmp(k, "a") == 0) a->overfit_batch = parse_int_or_fail(f, v);
        else if (strcmp(k, "A") == 0) { a->alpha = parse_float_or_fail(f, v); a->alpha_given = 1; }
        else if (strcmp(k, "A0") == 0) { a->alpha0 = parse_float_or_fail(f, v); a->alpha0_given = 1; }
        else if (strcmp(k, "An") == 0) a->anneal_steps = parse_int_or_fail(f, v);
        else if (strcmp(k, "r") == 0) { gpu_flag = 1; a->recompute = parse_int_or_fail(f, v); }
        else if (strcmp(k, "w") == 0) { gpu_flag = 1; a->master_weights = parse_int_or_fail(f, v); }
        else if (strcmp(k, "z") == 0) { gpu_flag = 1; a->zero_stage = parse_int_or_fail(f, v); }
        else if (strcmp(k, "h") == 0) { gpu_flag = 1; a->hellaswag = parse_int_or_fail(f, v); }
        else if (strcmp(k, "lg") == 0) { gpu_flag = 1; a->gpu_log_every = parse_int_or_fail(f, v); }
        else if (strcmp(k, "sl") == 0) { gpu_flag = 1; a->skip_loss_z = parse_float_or_fail(f, v); }
        else if (strcmp(k, "sg") == 0) { gpu_flag = 1; a->skip_norm_z = parse_float_or_fail(f, v); }
        else fail("unknown flag %s (see --help)", f);
        if (gpu_flag && !is_gpu) fail("flag %s belongs to the GPU trainer train_gpt2cu; the CPU reference does not implement it", f);
    }
    // values that cannot mean anything
    if (a->B < 1) fail("flag -b %d: the batch size must be at least 1", a->B);
    if (a->T < 1) fail("flag -t %d: the sequence length must be at least 1", a->T);
    if (a->total_batch_tokens != -1 && a->total_batch_tokens < 1) fail("flag -d %ld: tokens per step must be positive (or -1)", a->total_batch_tokens);
    if (a->max_steps < -1) fail("flag -x %d: use -1 for one epoch or a number of steps >= 0", a->max_steps);
    if (a->lr < 0.0f) fail("flag -l %g: the learning rate cannot be negative", a->lr);
    if (a->warmup < 0) fail("flag -u %d: warmup steps cannot be negative", a->warmup);
    if (a->final_lr_frac < 0.0f || a->final_lr_frac > 1.0f) fail("flag -q %g: the final lr fraction must be in [0, 1]", a->final_lr_frac);
    if (a->weight_decay < 0.0f) fail("flag -c %g: weight decay cannot be negative", a->weight_decay);
    if (a->val_every < 0) fail("flag -v %d: use 0 for never or a positive interval", a->val_every);
    if (a->val_max_batches < -1 || a->val_max_batches == 0) fail("flag -m %d: use -1 for the whole val split or a positive count", a->val_max_batches);
    if (a->sample_every < 0) fail("flag -s %d: use 0 for never or a positive interval", a->sample_every);
    if (a->gen_tokens < 1) fail("flag -g %d: the sample length must be at least 1", a->gen_tokens);
    if (a->checkpoint_every < 0) fail("flag -n %d: use 0 for never or a positive interval", a->checkpoint_every);
    if (a->checkpoint_every > 0 && a->output_dir == NULL) fail("flag -n needs an output directory: add -o DIR");
    if (a->resume && a->output_dir == NULL) fail("flag -y 1 needs the output directory to resume from: add -o DIR");
    if (a->checkpoint_keep < 0 || a->checkpoint_major < 0) fail("flags -nk and -nm cannot be negative");
    require_range_int("-y", a->resume, 0, 1, "0 (fresh run) or 1 (resume)");
    require_range_int("-a", a->overfit_batch, 0, 1, "0 or 1");
    if (!entmax_alpha_is_valid(a->alpha)) fail("flag -A %g: alpha must be in [1, 2] (1 = softmax, 1.5 = entmax15, 2 = sparsemax)", a->alpha);
    if (a->alpha0_given && !entmax_alpha_is_valid(a->alpha0)) fail("flag -A0 %g: alpha must be in [1, 2]", a->alpha0);
    if (a->anneal_steps < 0) fail("flag -An %d: the anneal length cannot be negative", a->anneal_steps);
    if (a->alpha0_given != (a->anneal_steps > 0)) fail("flags -A0 and -An go together: anneal from -A0 to -A over -An > 0 steps");
    if (is_gpu) {
        require_range_int("-r", a->recompute, 0, 2, "0 (none), 1 (GELU) or 2 (GELU and LayerNorm)");
        require_range_int("-w", a->master_weights, 0, 1, "0 or 1");
        require_range_int("-z", a->zero_stage, 0, 1, "ZeRO stage 0 or 1 (stages 2 and 3 are not implemented)");
        require_range_int("-h", a->hellaswag, 0, 1, "0 or 1");
        if (a->gpu_log_every < -1 || a->gpu_log_every == 0) fail("flag -lg %d: use -1 for off or a positive interval", a->gpu_log_every);
        if (a->skip_loss_z < 0.0f || a->skip_norm_z < 0.0f) fail("flags -sl and -sg cannot be negative (0 = off)");
    }
    // dataset names -> shard globs
    const DatasetName* train_name = dataset_lookup(a->train_data);
    if (train_name) {
        a->train_data = train_name->train_glob;
        if (a->val_data == NULL) a->val_data = train_name->val_glob;
        dataset_require(train_name, a->train_data);
        if (a->val_data == train_name->val_glob && a->val_every > 0) dataset_require(train_name, a->val_data);
    }
    if (a->val_data != NULL) {
        const DatasetName* val_name = dataset_lookup(a->val_data);
        if (val_name) { a->val_data = val_name->val_glob; dataset_require(val_name, a->val_data); }
    }
}

// The run's shape: tokens per optimizer step (-d; default B*T*nproc), micro-steps per step (gradient
// accumulation), and the number of steps (-x, or -1: one epoch of the train data).
typedef struct {
    long tokens_per_step;
    int grad_accum;
    int num_steps;
} BatchPlan;

static inline BatchPlan args_batch_plan(const TrainArgs* a, int nproc, size_t train_samples_per_epoch) {
    BatchPlan p;
    long micro = (long)a->B * a->T * nproc;
    p.tokens_per_step = a->total_batch_tokens == -1 ? micro : a->total_batch_tokens;
    if (p.tokens_per_step % micro != 0) fail("-d %ld must be a multiple of B*T*processes = %ld", p.tokens_per_step, micro);
    p.grad_accum = (int)(p.tokens_per_step / micro);
    p.num_steps = a->max_steps;
    if (p.num_steps == -1) {
        p.num_steps = (int)(train_samples_per_epoch / p.grad_accum);
        if (p.num_steps < 1) fail("one epoch of the train data is less than one step of -d %ld tokens", p.tokens_per_step);
    }
    return p;
}
