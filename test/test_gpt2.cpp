/*
 test_gpt2.cpp: tests of the CPU reference trainer's model code (train_gpt2.cpp, included with TESTING).
   1. whole-model gradient check against finite differences on a tiny config, for alpha 1 (softmax), 1.25,
      1.5 and 2: along each parameter tensor's gradient direction and along random whole-model directions
   2. determinism: two forward+backward passes give bit-identical gradients
   3. checkpoint files: v3 round trip is exact, v5 round trip equals bf16 rounding, header[8] holds alpha,
      an llm.c header (h[8] = 0) loads as softmax
   4. schedules: lr and alpha annealing endpoints; mt19937 against the standard reference value
 Prints one line per check and "N passed, M failed"; exit code 1 on failure.
*/
#define TESTING
#include "../train_gpt2.cpp"

static int g_passed = 0, g_failed = 0;

static void check(int ok, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (ok) g_passed++; else g_failed++;
}

// tiny config: 2 layers, 2 heads of size 16, vocab 61 padded to 64, max T 16
static GPT2Config tiny_config() {
    GPT2Config c;
    c.max_seq_len = 16; c.vocab_size = 61; c.padded_vocab_size = 64;
    c.num_layers = 2; c.num_heads = 2; c.channels = 32;
    return c;
}

// random weights large enough that the attention scores are O(1)..O(5), so entmax rows are sparse
static void randomize(GPT2* model, uint32_t seed) {
    mt19937 rng;
    mt_seed(&rng, seed);
    float* noise = (float*)malloc_or_fail(model->num_parameters * sizeof(float));
    mt_normal_fill(&rng, noise, model->num_parameters, 0.0f, 1.0f);
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        float scale = (k == P_QKVW) ? 0.35f : (k == P_LN1W || k == P_LN2W || k == P_LNFW) ? 0.2f : 0.1f;
        size_t off = model->param_t[k] - model->params;
        for (size_t i = 0; i < model->param_sizes[k]; i++) model->params[off + i] += scale * noise[off + i];
    }
    free(noise);
}

static double loss_at(GPT2* model, const int* x, const int* y, int B, int T, float alpha) {
    gpt2_forward(model, x, y, B, T, alpha);
    return model->mean_loss;
}

// derivative of the loss along direction d (unit norm) at the current parameters, by Richardson-extrapolated
// central differences: D = (4 D(h/2) - D(h)) / 3, error O(h^4) instead of O(h^2)
static double directional_fd(GPT2* model, const float* d, const int* x, const int* y, int B, int T, float alpha, double h) {
    size_t n = model->num_parameters;
    float* saved = (float*)malloc_or_fail(n * sizeof(float));
    memcpy(saved, model->params, n * sizeof(float));
    double D[2];
    for (int r = 0; r < 2; r++) {
        double hh = r == 0 ? h : h / 2;
        for (size_t i = 0; i < n; i++) model->params[i] = saved[i] + (float)(hh * d[i]);
        double lp = loss_at(model, x, y, B, T, alpha);
        for (size_t i = 0; i < n; i++) model->params[i] = saved[i] - (float)(hh * d[i]);
        double lm = loss_at(model, x, y, B, T, alpha);
        D[r] = (lp - lm) / (2 * hh);
    }
    memcpy(model->params, saved, n * sizeof(float));
    free(saved);
    return (4 * D[1] - D[0]) / 3;
}

static void gradient_check(float alpha) {
    GPT2Config cfg = tiny_config();
    GPT2 model;
    gpt2_build_from_config(&model, &cfg, alpha);
    randomize(&model, 1234);
    const int B = 2, T = 12;
    int x[B * T], y[B * T];
    mt19937 rng;
    mt_seed(&rng, 99);
    for (int i = 0; i < B * T; i++) { x[i] = (int)mt_below(&rng, cfg.vocab_size); y[i] = (int)mt_below(&rng, cfg.vocab_size); }

    gpt2_forward(&model, x, y, B, T, alpha);
    // nonzero fraction: alpha > 1 must give a sparse attention on these weights (else the check is weak)
    double cells = (double)B * cfg.num_heads * T * (T + 1) / 2.0, nz = 0.0;
    for (int l = 0; l < cfg.num_layers; l++) nz += model.nonzero_per_layer[l];
    nz /= cells * cfg.num_layers;
    if (alpha > 1.0f) check(nz < 0.9, "alpha %.2f: attention is sparse on the test weights (nonzero fraction %.3f)", alpha, nz);
    gpt2_zero_grad(&model);
    gpt2_backward(&model, x, y, alpha, 1.0f);

    size_t n = model.num_parameters;
    float* d = (float*)calloc_or_fail(n, sizeof(float));
    double worst = 0.0;
    const char* worst_name = "";
    for (int k = 0; k < NUM_PARAMETER_TENSORS; k++) {
        size_t off = model.param_t[k] - model.params;
        double gnorm = 0.0;
        for (size_t i = 0; i < model.param_sizes[k]; i++) gnorm += (double)model.grads[off + i] * model.grads[off + i];
        gnorm = sqrt(gnorm);
        if (k == P_WPE) {
            // rows t >= T of wpe are unused: their gradient must be exactly zero
            int zero = 1;
            for (size_t i = (size_t)T * cfg.channels; i < model.param_sizes[k]; i++) zero &= model.grads[off + i] == 0.0f;
            check(zero, "alpha %.2f: unused wpe rows have zero gradient", alpha);
        }
        if (gnorm == 0.0) { check(0, "alpha %.2f: %s has an all-zero gradient", alpha, PARAMETER_NAMES[k]); continue; }
        memset(d, 0, n * sizeof(float));
        for (size_t i = 0; i < model.param_sizes[k]; i++) d[off + i] = (float)(model.grads[off + i] / gnorm);
        // Step: large enough that the loss change is far above the fp32 rounding of the loss, small enough that
        // the strongly curved directions (the embeddings) stay in the Richardson error's O(h^4) regime. Entmax
        // is only C^1 (alpha in (1,2): p = x^a has a jump in a higher derivative where an entry enters the
        // support) or piecewise linear (alpha 2): a step that crosses a support change leaves an O(h^2) error
        // that extrapolation cannot remove, hence smaller steps and a looser tolerance there.
        double h = (alpha == 1.0f ? 1e-2 : alpha == 2.0f ? 1e-3 : 3e-3) / fmax(1.0, gnorm * gnorm);
        double tol = alpha == 1.0f ? 2e-3 : alpha == 2.0f ? 1e-2 : 5e-3;
        double fd = directional_fd(&model, d, x, y, B, T, alpha, h);
        double rel = fabs(fd - gnorm) / gnorm;
        if (rel > worst) { worst = rel; worst_name = PARAMETER_NAMES[k]; }
        check(rel < tol, "alpha %.2f: %-8s |g| = %.5e, finite difference %.5e, rel err %.1e", alpha, PARAMETER_NAMES[k], gnorm, fd, rel);
    }
    double total_norm = gpt2_grad_norm(&model);
    // random directions through all parameters at once
    mt19937 drng;
    mt_seed(&drng, 7);
    for (int trial = 0; trial < 3; trial++) {
        mt_normal_fill(&drng, d, n, 0.0f, 1.0f);
        for (size_t i = (size_t)cfg.vocab_size * cfg.channels; i < model.param_sizes[P_WTE]; i++) d[i] = 0.0f; // padded rows: no effect
        double dn = 0.0, gd = 0.0;
        for (size_t i = 0; i < n; i++) dn += (double)d[i] * d[i];
        dn = sqrt(dn);
        for (size_t i = 0; i < n; i++) { d[i] = (float)(d[i] / dn); gd += (double)d[i] * model.grads[i]; }
        double fd = directional_fd(&model, d, x, y, B, T, alpha, alpha == 2.0f ? 1e-3 : 1e-2);
        // g.d of a random unit direction is ~|g|/sqrt(n): measure the error relative to the whole gradient's norm
        double err = fabs(fd - gd) / total_norm;
        check(err < (alpha == 2.0f ? 1e-3 : 1e-4), "alpha %.2f: random direction %d: g.d = %.5e, finite difference %.5e, error / |g| %.1e", alpha, trial, gd, fd, err);
    }
    printf("     alpha %.2f: worst per-tensor relative error %.1e (%s)\n", alpha, worst, worst_name);
    free(d);
    gpt2_free(&model);
}

static void determinism_check() {
    GPT2Config cfg = tiny_config();
    GPT2 a, b;
    gpt2_build_from_config(&a, &cfg, 1.5f);
    gpt2_build_from_config(&b, &cfg, 1.5f);
    randomize(&a, 5);
    randomize(&b, 5);
    const int B = 3, T = 16;
    int x[B * T], y[B * T];
    for (int i = 0; i < B * T; i++) { x[i] = (i * 7) % cfg.vocab_size; y[i] = (i * 13 + 5) % cfg.vocab_size; }
    gpt2_forward(&a, x, y, B, T, 1.5f); gpt2_zero_grad(&a); gpt2_backward(&a, x, y, 1.5f, 1.0f);
    gpt2_forward(&b, x, y, B, T, 1.5f); gpt2_zero_grad(&b); gpt2_backward(&b, x, y, 1.5f, 1.0f);
    check(memcmp(a.grads, b.grads, a.num_parameters * sizeof(float)) == 0 && a.mean_loss == b.mean_loss,
          "two forward+backward passes are bit-identical");
    gpt2_free(&a);
    gpt2_free(&b);
}

static void checkpoint_check() {
    GPT2Config cfg = tiny_config();
    GPT2 m;
    gpt2_build_from_config(&m, &cfg, 1.25f);
    randomize(&m, 11);
    const char* p3 = "build/test_ckpt_v3.bin";
    const char* p5 = "build/test_ckpt_v5.bin";
    model_file_write(p3, &cfg, 3, 1.25f, m.params);
    GPT2 r;
    float alpha;
    gpt2_build_from_checkpoint(&r, p3, &alpha);
    check(alpha == 1.25f && memcmp(r.params, m.params, m.num_parameters * sizeof(float)) == 0 &&
          memcmp(&r.config, &cfg, sizeof(cfg)) == 0, "v3 checkpoint round trip is exact, alpha %.2f", alpha);
    gpt2_free(&r);
    uint16_t* half = (uint16_t*)malloc_or_fail(m.num_parameters * 2);
    for (size_t i = 0; i < m.num_parameters; i++) half[i] = bf16_from_float(m.params[i]);
    model_file_write(p5, &cfg, 5, 2.0f, half);
    gpt2_build_from_checkpoint(&r, p5, &alpha);
    int ok = alpha == 2.0f;
    for (size_t i = 0; i < m.num_parameters; i++) ok &= r.params[i] == float_from_bf16(half[i]) && fabsf(r.params[i] - m.params[i]) <= fabsf(m.params[i]) * 0.0040f;
    check(ok, "v5 (bf16) checkpoint round trip equals bf16 rounding, alpha %.2f", alpha);
    gpt2_free(&r);
    // an llm.c checkpoint has h[8] = 0: it loads as a softmax model
    FILE* f = fopen_or_fail(p3, "r+b");
    int zero = 0;
    fseek(f, 8 * sizeof(int), SEEK_SET);
    fwrite(&zero, sizeof(int), 1, f);
    fclose(f);
    gpt2_build_from_checkpoint(&r, p3, &alpha);
    check(alpha == 1.0f, "a header with h[8] = 0 (llm.c) loads with alpha 1 (softmax)");
    gpt2_free(&r);
    // bf16 rounding: round to nearest even
    check(bf16_from_float(1.0f) == 0x3f80 && bf16_from_float(1.00390625f) == 0x3f80 && bf16_from_float(1.01171875f) == 0x3f82,
          "bf16 rounding is round-to-nearest-even");
    free(half);
    remove(p3);
    remove(p5);
    gpt2_free(&m);
}

static void schedule_check() {
    LRScheduler s = {LR_COSINE, 1.0f, 10, 0.1f, 110};
    check(fabsf(lr_at_step(&s, 0) - 0.1f) < 1e-6f && fabsf(lr_at_step(&s, 9) - 1.0f) < 1e-6f &&
          fabsf(lr_at_step(&s, 10) - 1.0f) < 1e-6f && fabsf(lr_at_step(&s, 60) - 0.55f) < 1e-6f &&
          fabsf(lr_at_step(&s, 110) - 0.1f) < 1e-6f, "cosine schedule: warmup, peak, midpoint, final");
    s.type = LR_LINEAR;
    check(fabsf(lr_at_step(&s, 60) - 0.55f) < 1e-6f && fabsf(lr_at_step(&s, 110) - 0.1f) < 1e-6f, "linear schedule");
    s.type = LR_CONSTANT;
    check(lr_at_step(&s, 0) == 1.0f && lr_at_step(&s, 100) == 1.0f, "constant schedule");
    s.type = LR_WSD;
    check(lr_at_step(&s, 87) == 1.0f && fabsf(lr_at_step(&s, 110) - 0.1f) < 1e-6f && lr_at_step(&s, 99) < 1.0f, "wsd schedule");
    check(alpha_at_step(1.5f, 1.01f, 100, 0) == 1.01f && fabsf(alpha_at_step(1.5f, 1.01f, 100, 50) - 1.255f) < 1e-6f &&
          alpha_at_step(1.5f, 1.01f, 100, 100) == 1.5f && alpha_at_step(1.5f, 1.01f, 0, 0) == 1.5f, "alpha annealing");
    mt19937 r;
    mt_seed(&r, 5489);
    uint32_t v = 0;
    for (int i = 0; i < 10000; i++) v = mt_u32(&r);
    check(v == 4123659995u, "mt19937: the 10000th output for seed 5489 is 4123659995");
}

int main() {
    schedule_check();
    checkpoint_check();
    determinism_check();
    const float alphas[] = {1.0f, 1.25f, 1.5f, 2.0f};
    for (float a : alphas) gradient_check(a);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
