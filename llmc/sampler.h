/*
 sampler.h: drawing a token from the model's output distribution for the text samples printed during
 training. Plain multinomial sampling: walk the cumulative distribution until it passes a uniform coin.
*/
#pragma once

// probabilities p[0..n) summing to ~1; coin uniform in [0,1)
static inline int sample_multinomial(const float* p, int n, float coin) {
    float cdf = 0.0f;
    for (int i = 0; i < n; i++) {
        cdf += p[i];
        if (coin < cdf) return i;
    }
    return n - 1; // rounding: the cdf ended just below the coin
}
