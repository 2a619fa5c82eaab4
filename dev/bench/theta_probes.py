"""
theta_probes.py: the probe variants of attn_tau_kernel (llmc/attention.cuh) measured in session 20, to find what the
theta kernel's time follows at D = 64 (dev/bench/RESULTS-attention.md, "Session 20"). Each variant is a copy of
llmc/attention.cuh with a few lines replaced; none is meant to be used, most give wrong thresholds on purpose.

    python3 dev/bench/theta_probes.py DIR        # writes DIR/<variant>/llmc/{attention.cuh,entmax.h}

then on the GPU machine, per variant (the quoted include finds DIR's header first):

    nvcc -O3 -std=c++17 --generate-code arch=compute_90a,code=[compute_90a,sm_90a] -Xcompiler -fPIC -shared \
        -IDIR/<variant> -I. dev/python/entmax_attn_capi.cu -o build/lib<variant>.so
    ENTMAX_ATTN_LIB=build/lib<variant>.so python3 dev/bench/prof_kernels.py --T 4096,16384 --methods ours15 --iters 5

Variants (forced = the pass loop ends after exactly two Halley passes, the count the benchmark's rows take anyway,
so that variants whose sums are wrong still run the same passes; only the theta kernel's time means anything then):
  forced      the kernel as it is, forced
  no_x_ffma   forced; the sums take the raw score instead of x = fma(acc, c, -theta): one instruction fewer per score
  mma5        forced; a fifth k16 wgmma per 64-key tile in the Halley passes (+25% tensor work and shared reads)
  half_loads  forced; each 128-key step loads only its first 64 keys (half the L2 -> shared bytes)
  kv_k_only   the K/V (Q/dO) ring of the output, dQ and dK/dV kernels loads only its first tensor
  no_sums     forced; the Halley passes without their elementwise work (one add per tile keeps the scores live)
  no_pred     forced; the sums without predicates: r = max(x, 0), r^2 and r unconditionally, the count of negative x
              by its sign bit (LEA.HI)
  rolling     correct results; the next step's first tile is issued before the work on this step's second tile, so a
              wgmma group is in flight during all the elementwise work (no ptxas serialisation: the loop leaves by a
              break at its last step and each pass starts its own pipeline)
  pingpong    correct results; the two warpgroups of a CTA take turns to issue their wgmma groups (named barriers,
              FA3's scheduling), so that one's elementwise work overlaps the other's products
"""
import os
import shutil
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

FORCE = [("if (all_conv || (it >= p.niter && all_ok) || it >= p.niter_cap) {", "if (it >= 2) {")]
TRK_ADD = """                            float x = fmaf(st[nt][e], c, -th[e >> 1]); // x = z - theta
                            entmax_sums_add(KIND, a, x, &sums[e >> 1][nt & 1]);"""
ADD = "entmax_sums_add(KIND, a, fmaf(st[nt][e], c, -th[e >> 1]), &sums[e >> 1][nt & 1]);"
ISSUE = """                    att_wg_fence();
                    att_wgmma_abt_issue_d<D>(s0, dQg, att_wg_desc<D>(kLo));
                    att_wg_commit();
                    att_wgmma_abt_issue_d<D>(s1, dQg, att_wg_desc<D>(kLo + BN * D * 2 / 16));
                    att_wg_commit();
                    att_wg_wait<1>();
                    att_wg_keep(s0);"""
LOOP = """    int it = 0;
    bool maxpass = true, tracked = false, near = false;
    while (true) {"""
END = """    if constexpr (TMA) {
        // the two steps loaded ahead must land before the CTA exits"""
NOPRED = ("{ const float r_ = fmaxf(X, 0.0f); EntmaxSums& m_ = sums[e >> 1][nt & 1]; m_.s0 = fmaf(r_, r_, m_.s0); "
          "m_.s1 += r_; m_.s2 = __int_as_float(__float_as_int(m_.s2) + (int)(__float_as_uint(X) >> 31)); }")
ROLLING_DECL = LOOP.replace("    while (true) {", """    // next step of the flat (pass, step) sequence: prefetch step + 2, wait for this step's stage
    auto begin_step = [&](uint32_t& kLo, uint64_t*& stage_empty) {
        if (producer) {
            att_mbar_wait(&bar_empty[ld_stage], ld_ph ^ 1u);
            att_mbar_expect_tx(&bar_full[ld_stage], att_tma_bytes<D, BK>());
            att_tma_tile<D, BK>(sK + ld_stage * BK * D, tmap_k, ld_step * BK, h, b, &bar_full[ld_stage], warp);
        }
        if (ld_stage == NS - 1) ld_ph ^= 1u;
        att_mbar_wait(&bar_full[stage], ph);
        ld_step = ld_step + 1 == nst ? 0 : ld_step + 1;
        ld_stage = ld_stage == NS - 1 ? 0 : ld_stage + 1;
        stage_empty = &bar_empty[stage];
        kLo = kLo0 + stage * (BK * D * 2 / 16);
        if (stage == NS - 1) ph ^= 1u;
        stage = stage == NS - 1 ? 0 : stage + 1;
    };
    float sp0[8][4], sp1[8][4];
    uint32_t kLoCur = 0;
    uint64_t* emptyCur = nullptr;
    while (true) {""")
ROLLING_LOOP_AT = """            constexpr bool MAXP = decltype(max_pass)::value;
            for (int js = 0; js < nst; js++) {"""

def rolling_loop(src):
    # the pass loop with a wgmma group always in flight; its flat-row check (GUESS) is the kernel's own, re-indented
    i = src.index("                if (GUESS && MAXP && js == 1) {")
    j = src.index("moments = __any_sync(0xffffffffu, flat);\n                }", i) + len("moments = __any_sync(0xffffffffu, flat);\n                }")
    guess = "\n".join(("    " + ln) if ln.strip() and not ln.startswith("#") else ln for ln in src[i:j].split("\n"))
    return """            constexpr bool MAXP = decltype(max_pass)::value;
            if constexpr (PIPE) {
                begin_step(kLoCur, emptyCur);
                att_wg_fence();
                att_wgmma_abt_issue_d<D>(sp0, dQg, att_wg_desc<D>(kLoCur));
                att_wg_commit();
                for (int js = 0;; js++) { // leaves by the break at the last step (nothing in flight there)
""" + guess + """
                    att_wg_fence();
                    att_wgmma_abt_issue_d<D>(sp1, dQg, att_wg_desc<D>(kLoCur + BN * D * 2 / 16));
                    att_wg_commit();
                    att_wg_wait<1>();
                    att_wg_keep(sp0);
                    tile_work(sp0, 2 * js, max_pass);
                    att_wg_wait<0>();
                    att_wg_keep(sp1);
                    if (lane == 0) att_mbar_arrive(emptyCur);
                    if (js + 1 == nst) {
                        tile_work(sp1, 2 * js + 1, max_pass);
                        break;
                    }
                    begin_step(kLoCur, emptyCur);
                    att_wg_fence();
                    att_wgmma_abt_issue_d<D>(sp0, dQg, att_wg_desc<D>(kLoCur));
                    att_wg_commit();
                    tile_work(sp1, 2 * js + 1, max_pass);
                }
                return;
            }
            for (int js = 0; js < nst; js++) {"""




def mma5_macro(src):
    # ATT_WG_ABT5: the kernel's ATT_WG_ABT4 (the four k16 wgmma of a D = 64 product) and a fifth, a repeat of the first
    i = src.index("#define ATT_WG_ABT4(SHAPE, ACC, DA, DB)")
    j = src.index(r'0, 0;\n}\n"', i)
    fifth = r'    "wgmma.mma_async.sync.aligned." SHAPE ".f32.bf16.bf16 " ACC ", " DA ", " DB ", p1, 1, 1, 0, 0;\n}\n"'
    return src[i:j].replace("ATT_WG_ABT4", "ATT_WG_ABT5") + r'0, 0;\n" \\'[:-1] + "\n" + fifth + "\n#define ATT_WG_ACC16 "


MMA5_FN = '''template <int D, int NT>
__device__ __forceinline__ void att_wgmma_abt_issue5_d(float (&acc)[NT][4], uint64_t da, uint64_t db) {
#if ATT_WGMMA
    asm volatile(ATT_WG_ABT5("m64n64k16", ATT_WG_ACC32, "%32", "%33") : ATT_WG_R32(0), ATT_WG_R32(4) : "l"(da), "l"(db));
#endif
}
template <int D, int NT>
__device__ __forceinline__ void att_wgmma_abt_issue('''

VARIANTS = {
    "forced": FORCE,
    "no_x_ffma": FORCE + [(TRK_ADD, TRK_ADD.replace("fmaf(st[nt][e], c, -th[e >> 1])", "st[nt][e]")),
                          (ADD, ADD.replace("fmaf(st[nt][e], c, -th[e >> 1])", "st[nt][e]"))],
    "mma5": FORCE + [
        ("#define ATT_WG_ACC16 ", mma5_macro),
        ("template <int D, int NT>\n__device__ __forceinline__ void att_wgmma_abt_issue(", MMA5_FN),
        ("att_wgmma_abt_issue_d<D>(s0, dQg, att_wg_desc<D>(kLo));",
         "if constexpr (MAXP) att_wgmma_abt_issue_d<D>(s0, dQg, att_wg_desc<D>(kLo)); "
         "else att_wgmma_abt_issue5_d<D>(s0, dQg, att_wg_desc<D>(kLo));"),
        ("att_wgmma_abt_issue_d<D>(s1, dQg, att_wg_desc<D>(kLo + BN * D * 2 / 16));",
         "if constexpr (MAXP) att_wgmma_abt_issue_d<D>(s1, dQg, att_wg_desc<D>(kLo + BN * D * 2 / 16)); "
         "else att_wgmma_abt_issue5_d<D>(s1, dQg, att_wg_desc<D>(kLo + BN * D * 2 / 16));")],
    "half_loads": FORCE + [
        ("att_mbar_expect_tx(&bar_full[0], att_tma_bytes<D, BK>());", "att_mbar_expect_tx(&bar_full[0], att_tma_bytes<D, 64>());"),
        ("att_mbar_expect_tx(&bar_full[1], att_tma_bytes<D, BK>());", "att_mbar_expect_tx(&bar_full[1], att_tma_bytes<D, 64>());"),
        ("att_mbar_expect_tx(&bar_full[ld_stage], att_tma_bytes<D, BK>());",
         "att_mbar_expect_tx(&bar_full[ld_stage], att_tma_bytes<D, 64>());"),
        ("att_tma_tile<D, BK>(sK, tmap_k, 0, h, b, &bar_full[0], warp);",
         "att_tma_tile<D, 64>(sK, &p.tmap_k64, 0, h, b, &bar_full[0], warp);"),
        ("att_tma_tile<D, BK>(sK + BK * D, tmap_k, ld_step * BK, h, b, &bar_full[1], warp);",
         "att_tma_tile<D, 64>(sK + BK * D, &p.tmap_k64, ld_step * BK, h, b, &bar_full[1], warp);"),
        ("att_tma_tile<D, BK>(sK + ld_stage * BK * D, tmap_k, ld_step * BK, h, b, &bar_full[ld_stage], warp);",
         "att_tma_tile<D, 64>(sK + ld_stage * BK * D, &p.tmap_k64, ld_step * BK, h, b, &bar_full[ld_stage], warp);")],
    "kv_k_only": [("""                att_mbar_expect_tx(&full[s], 2 * att_tma_bytes<D, ATT_BN>());
                att_tma_tile<D, ATT_BN>(k0 + s * stride, tk, t * ATT_BN, h, b, &full[s], warp);
                att_tma_tile<D, ATT_BN>(v0 + s * stride, tv, t * ATT_BN, h, b, &full[s], warp);""",
                   """                att_mbar_expect_tx(&full[s], att_tma_bytes<D, ATT_BN>());
                att_tma_tile<D, ATT_BN>(k0 + s * stride, tk, t * ATT_BN, h, b, &full[s], warp);""")],
    "no_sums": FORCE + [
        (ADD, "if (nt == 0 && e == 0) sums[0][0].s0 += st[nt][e];"),
        (TRK_ADD + "\n                            mq[(nt & 1) * 2 + (e >> 1)] = fmaxf(mq[(nt & 1) * 2 + (e >> 1)], x);",
         "                            if (nt == 0 && e == 0) mq[0] = fmaxf(mq[0], st[nt][e]);")],
    "no_pred": FORCE + [
        (ADD, NOPRED.replace("X", "x_").replace("{ ", "{ const float x_ = fmaf(st[nt][e], c, -th[e >> 1]); ", 1)),
        (TRK_ADD, TRK_ADD.replace("entmax_sums_add(KIND, a, x, &sums[e >> 1][nt & 1]);", NOPRED.replace("X", "x")))],
    "rolling": [(LOOP, ROLLING_DECL), (ROLLING_LOOP_AT, rolling_loop)],
    "pingpong": [
        ("__device__ __forceinline__ void att_mbar_arrive(uint64_t* bar) {",
         '__device__ __forceinline__ void att_named_sync(int id, int n) { asm volatile("bar.sync %0, %1;\\n" ::"r"(id), "r"(n) : "memory"); }\n'
         '__device__ __forceinline__ void att_named_arrive(int id, int n) { asm volatile("bar.arrive %0, %1;\\n" ::"r"(id), "r"(n) : "memory"); }\n'
         "__device__ __forceinline__ void att_mbar_arrive(uint64_t* bar) {"),
        (LOOP, LOOP.replace("    while (true) {", "    const int wgi = warp >> 2;\n"
                            "    if (PIPE && wgi == 1) att_named_arrive(1, 256); // warpgroup 0 issues first\n    while (true) {")),
        (ISSUE, "                    att_named_sync(1 + wgi, 256); // this warpgroup's turn\n" + ISSUE +
         "\n                    att_named_arrive(2 - wgi, 256); // the other warpgroup's turn"),
        (END, "    if (PIPE && wgi == 0) att_named_sync(1, 256); // warpgroup 1's last signal\n" + END)],
}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 dev/bench/theta_probes.py DIR")
    src = open(os.path.join(ROOT, "llmc", "attention.cuh")).read()
    for name, reps in VARIANTS.items():
        s = src
        for old, new in reps:
            if callable(new):  # text built from the header itself
                new = new(src)
            if s.count(old) != 1:
                sys.exit(f"theta_probes.py: variant {name}: the text to replace occurs {s.count(old)} times in "
                         "llmc/attention.cuh (the header changed since session 20; update the probe)")
            s = s.replace(old, new)
        d = os.path.join(sys.argv[1], name, "llmc")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "attention.cuh"), "w") as f:
            f.write(s)
        shutil.copy(os.path.join(ROOT, "llmc", "entmax.h"), d)
        print(os.path.join(sys.argv[1], name))


if __name__ == "__main__":
    main()
