/*
 schedulers.h: learning-rate schedules (llm.c's four) and the alpha annealing of the entmax attention.

 warmup (all but constant): lr = peak * (step+1) / warmup for step < warmup
 cosine:   lr = min + 0.5 (1 + cos(pi r)) (peak - min),  r = (step - warmup) / (total - warmup), min = peak * final_frac
 linear:   lr = peak - r (peak - min)
 constant: lr = peak
 wsd:      warmup, stable at peak until 0.8 total, then lr = min + (1 - sqrt(r')) (peak - min), r' over the last 20%
 alpha:    with -A0 a0 -An S, alpha(step) = a0 + (alpha - a0) * min(step, S) / S; otherwise alpha
*/
#pragma once

#include <math.h>
#include <string.h>
#include "utils.h"

enum { LR_COSINE, LR_LINEAR, LR_CONSTANT, LR_WSD };

typedef struct {
    int type;
    float peak;
    int warmup;
    float final_frac;
    int total; // number of optimizer steps
} LRScheduler;

// returns -1 for an unknown name
static inline int lr_schedule_from_name(const char* name) {
    if (strcmp(name, "cosine") == 0) return LR_COSINE;
    if (strcmp(name, "linear") == 0) return LR_LINEAR;
    if (strcmp(name, "constant") == 0) return LR_CONSTANT;
    if (strcmp(name, "wsd") == 0) return LR_WSD;
    return -1;
}

static inline float clamp01(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }

static inline float lr_at_step(const LRScheduler* s, int step) {
    if (s->type == LR_CONSTANT) return s->peak;
    if (step < s->warmup) return s->peak * (float)(step + 1) / (float)s->warmup;
    float min_lr = s->peak * s->final_frac;
    if (s->type == LR_WSD) {
        int decay_start = (int)(0.8f * (float)s->total);
        if (step < decay_start || s->total - decay_start <= 0) return s->peak;
        float r = clamp01((float)(step - decay_start) / (float)(s->total - decay_start));
        return min_lr + (1.0f - sqrtf(r)) * (s->peak - min_lr);
    }
    int span = s->total - s->warmup;
    float r = span > 0 ? clamp01((float)(step - s->warmup) / (float)span) : 1.0f;
    if (s->type == LR_LINEAR) return s->peak - r * (s->peak - min_lr);
    return min_lr + 0.5f * (1.0f + cosf((float)M_PI * r)) * (s->peak - min_lr);
}

// alpha of the attention at `step` (anneal_steps <= 0: no annealing)
static inline float alpha_at_step(float alpha, float alpha0, int anneal_steps, int step) {
    if (anneal_steps <= 0 || step >= anneal_steps) return alpha;
    return alpha0 + (alpha - alpha0) * (float)step / (float)anneal_steps;
}
