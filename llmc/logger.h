/*
 logger.h: main.log in the output directory, llm.c's line format:
   s:<step> trl:<train loss> lr:<lr> norm:<grad norm>
   s:<step> tel:<val loss>
   s:<step> eval:<hellaswag accuracy>
 plus ours, after each validation (dead: and deadl: from the GPU trainer):
   s:<step> nz:<mean attention nonzero fraction> nzl:<per layer, comma separated>
            dead:<mean fraction of 64x64 attention tiles skipped> deadl:<per layer>
 A fresh run (-y 0) truncates the log; a resumed run (-y 1) appends.
*/
#pragma once

#include <stdio.h>
#include "utils.h"

typedef struct {
    FILE* f; // NULL: logging off (no -o)
} Logger;

static inline void logger_init(Logger* lg, const char* dir, int resuming) {
    lg->f = NULL;
    if (dir == NULL) return;
    char path[4096];
    snprintf(path, sizeof(path), "%s/main.log", dir);
    lg->f = fopen_or_fail(path, resuming ? "a" : "w");
}

static inline void logger_train(Logger* lg, int step, float loss, float lr, float norm) {
    if (!lg->f) return;
    fprintf(lg->f, "s:%d trl:%.6f lr:%.6e norm:%.4f\n", step, loss, lr, norm);
    fflush(lg->f);
}

static inline void logger_val(Logger* lg, int step, float loss) {
    if (!lg->f) return;
    fprintf(lg->f, "s:%d tel:%.6f\n", step, loss);
    fflush(lg->f);
}

static inline void logger_eval(Logger* lg, int step, float acc) {
    if (!lg->f) return;
    fprintf(lg->f, "s:%d eval:%.6f\n", step, acc);
    fflush(lg->f);
}

static inline double mean_of(const float* x, int n) {
    double m = 0.0;
    for (int i = 0; i < n; i++) m += x[i];
    return m / n;
}

// " <key>:<mean> <key>l:<x[0]>,<x[1]>,..." (one value per layer)
static inline void logger_per_layer(FILE* f, const char* key, const float* x, int L) {
    fprintf(f, " %s:%.6f %sl:", key, mean_of(x, L), key);
    for (int l = 0; l < L; l++) fprintf(f, l ? ",%.6f" : "%.6f", x[l]);
}

static inline void logger_nonzero(Logger* lg, int step, const float* nonzero, const float* dead, int L) {
    if (!lg->f) return;
    fprintf(lg->f, "s:%d", step);
    logger_per_layer(lg->f, "nz", nonzero, L);
    if (dead) logger_per_layer(lg->f, "dead", dead, L);
    fprintf(lg->f, "\n");
    fflush(lg->f);
}

// after a validation: one line on stdout, and the tel: and nz: lines in main.log. dead == NULL: no tiles (the
// CPU trainer); softmax reports nonzero 1 and no skipped tile.
static inline void report_val(Logger* lg, int step, float val_loss, const float* nonzero, const float* dead, int L) {
    if (dead) printf("val loss %f | attention nonzero %.4f | tiles skipped %.4f\n", val_loss, mean_of(nonzero, L), mean_of(dead, L));
    else printf("val loss %f | attention nonzero %.4f\n", val_loss, mean_of(nonzero, L));
    logger_val(lg, step, val_loss);
    logger_nonzero(lg, step, nonzero, dead, L);
}

static inline void logger_free(Logger* lg) { if (lg->f) fclose(lg->f); lg->f = NULL; }
