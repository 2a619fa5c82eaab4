/*
 logger.h: main.log in the output directory, llm.c's line format:
   s:<step> trl:<train loss> lr:<lr> norm:<grad norm>
   s:<step> tel:<val loss>
   s:<step> eval:<hellaswag accuracy>
 plus ours, after each validation: s:<step> nz:<mean attention nonzero fraction> nzl:<per layer, comma separated>
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

static inline void logger_nonzero(Logger* lg, int step, const float* per_layer, int L) {
    if (!lg->f) return;
    double mean = 0.0;
    for (int l = 0; l < L; l++) mean += per_layer[l];
    fprintf(lg->f, "s:%d nz:%.6f nzl:", step, mean / L);
    for (int l = 0; l < L; l++) fprintf(lg->f, l ? ",%.6f" : "%.6f", per_layer[l]);
    fprintf(lg->f, "\n");
    fflush(lg->f);
}

// after a validation: one line on stdout, and the tel: and nz: lines in main.log
static inline void report_val(Logger* lg, int step, float val_loss, const float* nonzero_per_layer, int L) {
    double nz = 0.0;
    for (int l = 0; l < L; l++) nz += nonzero_per_layer[l];
    printf("val loss %f | attention nonzero %.4f\n", val_loss, nz / L);
    logger_val(lg, step, val_loss);
    logger_nonzero(lg, step, nonzero_per_layer, L);
}

static inline void logger_free(Logger* lg) { if (lg->f) fclose(lg->f); lg->f = NULL; }
