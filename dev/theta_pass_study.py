"""
theta_pass_study.py: float64 simulations of ways to make attn_tau_kernel (llmc/attention.cuh) solve theta in fewer
passes over K, on the rows of the attention benchmark (alpha = 1.5, causal, q, k ~ N(0, 1), D = 64, z = (alpha - 1)
q.k / sqrt(D), 128-row tiles as the kernel's CTAs). Session 18; the results are in doc/entmax-iterations.md
("Fewer theta passes on the benchmark's rows"). None of these was built: the numbers say why.

    python3 dev/theta_pass_study.py [--T 1024,4096,16384] [--tiles 6] [--seed 18]

Studies (each prints one line per T):
  passes     the kernel's own rule (16-class lower bound, safeguarded Halley, its stop tests): Halley passes per tile
             and the largest |f| at the end
  stream     an exact theta in the max pass itself: keep every key above a running lower bound (the max - 1, raised
             by two Newton steps on the kept keys after every 128-key step), and prune; peak kept keys per thread
             and row (the quad's thread = key mod 8 div 2, as in the wgmma fragments) and per row at the end
  above_lb   the keys above the kernel's start (the 16-class lower bound, known before the first Halley pass):
             what a first Halley pass would have to keep to finish theta exactly
  classes    better starts from more per-row maxima (32 or 64 key classes, or the top 2 of 16 or 32 classes):
             tiles in which every row passes the kernel's stop test after one Halley pass
  twopoint   two evaluation points in the first Halley pass (the bound and the bound + Delta) and a cubic Hermite
             root between them: rows still off by |f| > 1e-3 (they would need the redo path)
  half       (session 19) the first Halley pass with its sums in f16x2 (x rounded to f16, two keys per register,
             flushed to fp32 every 64-key tile; it moves theta, clamped into the bracket, but not the bracket),
             with the count or with f'' from n ~ 1.6 (sum x)^2 / sum x^2; then the kernel's rule: Halley passes
             per tile and the largest |f| at the end, to compare with the "passes" line. Built and timed in
             session 19: not faster (dev/bench/RESULTS-attention.md, "Session 19")
numpy only; a few minutes at the defaults.
"""
import argparse

import numpy as np

A = 2.0  # alpha = 1.5: p = x^2


def f_terms(z, t):
    x = np.maximum(z - t[:, None], 0.0)
    return (x * x).sum(1) - 1.0, x.sum(1), (x > 0).sum(1)  # f, sum x, support size


def newton_subset(vals, t, steps):
    # Newton from a lower bound on the equation over a subset of the keys (-inf = absent): stays a lower bound
    for _ in range(steps):
        x = np.maximum(vals - t[:, None], 0.0)
        f = (x * x).sum(1) - 1.0
        s1 = x.sum(1)
        t = t + np.where((f > 0) & (s1 > 0), f / (A * np.maximum(s1, 1e-30)), 0.0)
    return t


def class_values(z, C, top):
    cls = np.arange(z.shape[1]) % C
    cols = []
    for k in range(C):
        zk = np.where(cls[None, :] == k, z, -np.inf)
        cols.append(np.sort(zk, axis=1)[:, -top:])
    return np.concatenate(cols, 1)


def lower_bound(z, m, C=16, top=1, steps=4):
    return newton_subset(class_values(z, C, top), m - 1.0, steps)


def tile(rng, T, qt, D=64):
    rows = np.arange(qt * 128, min(T, qt * 128 + 128))
    n = rows[-1] + 1
    q = rng.standard_normal((len(rows), D))
    k = rng.standard_normal((n, D))
    z = 0.5 * (q @ k.T) / np.sqrt(D)
    z[np.arange(n)[None, :] > rows[:, None]] = -np.inf
    return z, rows


def halley_candidate(t, f, s1, cnt):
    # entmax_tau_step's candidate at alpha = 1.5 (f' = -2 sum x, f'' = 2 |support|): Halley, or Newton from the left
    # where Halley's factor would exceed 2
    fp, fpp = -A * s1, A * cnt
    return np.where((f > 0) & (f * fpp > fp * fp), t - f / fp, t - 2 * f * fp / (2 * fp * fp - f * fpp))


def stop_ok(f, s1, cnt, d):
    # entmax_may_stop at alpha = 1.5 after the update d that these sums gave
    fa = f - 2 * d * s1 + d * d * cnt
    return (np.abs(f) <= 0.04) | ((np.abs(f) <= 0.15) & (np.abs(fa) <= 2.5e-4))


def study_stream(z):
    n = z.shape[1]
    tq = (np.arange(n) % 8) // 2
    kept = np.zeros(z.shape, bool)
    thr = np.full(z.shape[0], -np.inf)
    m = np.full(z.shape[0], -np.inf)
    peak = 0
    for k0 in range(0, n, 128):
        zz = z[:, k0:k0 + 128]
        m = np.maximum(m, zz.max(1))
        thr = np.maximum(thr, m - 1.0)
        kept[:, k0:k0 + 128] |= zz > thr[:, None] - 1e-4
        peak = max(peak, max((kept & (tq[None, :] == t)).sum(1).max() for t in range(4)))
        thr = newton_subset(np.where(kept, z, -np.inf), thr, 2)
        kept &= z > thr[:, None] - 1e-4
    return peak, kept.sum(1).max()


def study_above_lb(z):
    t0 = lower_bound(z, z.max(1))
    above = z > t0[:, None]
    tq = (np.arange(z.shape[1]) % 8) // 2
    return max((above & (tq[None, :] == t)).sum(1).max() for t in range(4)), above.sum(1).max()


def study_classes(z, C, top):
    t0 = lower_bound(z, z.max(1), C, top, steps=12)
    f, s1, cnt = f_terms(z, t0)
    return bool(stop_ok(f, s1, cnt, halley_candidate(t0, f, s1, cnt) - t0).all())


def sums_f16(z, t):
    # the sums of a pass at t as the f16x2 variant takes them: x = z - t in fp32, rounded to f16; per thread and row
    # the keys 2tq, 2tq + 1 of each n8 group are one f16x2 pair; r = max(x, 0), r^2, r and [r > 0] accumulate in f16
    # (fused r * r + acc) over a 64-key tile (8 terms per half), then into fp32
    R, n = z.shape
    npad = (n + 63) // 64 * 64
    zp = np.full((R, npad), -np.inf)
    zp[:, :n] = z
    r = np.maximum((zp.astype(np.float32) - t[:, None].astype(np.float32)).astype(np.float16), np.float16(0))
    r = r.reshape(R, npad // 64, 8, 4, 2).astype(np.float64)  # tile, n8 group, tq, pair
    a0 = a1 = ac = np.zeros((R, npad // 64, 4, 2))
    for g in range(8):
        v = r[:, :, g]
        a0 = (v * v + a0).astype(np.float16).astype(np.float64)
        a1 = (v + a1).astype(np.float16).astype(np.float64)
        ac = ac + (v > 0)
    f32 = lambda a: a.astype(np.float32).sum((1, 2, 3), dtype=np.float32).astype(np.float64)
    return f32(a0) - 1.0, f32(a1), f32(ac)


def study_half(z, rows, mode):
    # the kernel's rule (16-class lower bound, safeguarded Halley, its stop tests) with the first Halley pass on
    # f16x2 sums ("count": its count in f16 too; "nest": f'' from n ~ 1.6 s1^2 / s0) or on exact sums ("exact", the
    # kernel as it is); Halley passes and the largest final |f|
    m = z.max(1)
    t = lower_bound(z, m)
    lo, hi = t.copy(), m - (rows + 1.0) ** -0.5
    for it in range(1, 9):
        if it == 1 and mode != "exact":
            f, s1, cnt = sums_f16(z, t)
            if mode == "nest":
                cnt = 1.6 * s1 * s1 / (f + 1.0)
            t = np.clip(halley_candidate(t, f, s1, cnt), lo, hi)
            continue
        f, s1, cnt = f_terms(z, t)
        lo = np.where(f > 0, t, lo)
        hi = np.where(f < 0, t, hi)
        cand = halley_candidate(t, f, s1, cnt)
        new = np.where(f == 0, t, np.where((cand > lo - 1e-6) & (cand < hi + 1e-6), cand, 0.5 * (lo + hi)))
        ok = stop_ok(f, s1, cnt, new - t)
        t = new
        if (np.abs(f) <= 1e-6).all() or (it >= 2 and ok.all()):
            break
    return it, np.abs(f_terms(z, t)[0]).max()


def hermite_root(ta, fa, da, tb, fb, db):
    h = tb - ta
    lo, hi = np.zeros_like(ta), np.ones_like(ta)
    for _ in range(40):
        s = 0.5 * (lo + hi)
        v = ((2 * s**3 - 3 * s**2 + 1) * fa + (s**3 - 2 * s**2 + s) * h * da + (-2 * s**3 + 3 * s**2) * fb
             + (s**3 - s**2) * h * db)
        lo, hi = np.where(v > 0, s, lo), np.where(v > 0, hi, s)
    return ta + 0.5 * (lo + hi) * h


def root(z, lo, hi):
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        f = f_terms(z, mid)[0]
        lo, hi = np.where(f > 0, mid, lo), np.where(f > 0, hi, mid)
    return lo


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--T", default="1024,4096,16384")
    ap.add_argument("--tiles", type=int, default=6, help="128-row tiles per T, spread over the causal range")
    ap.add_argument("--seed", type=int, default=18)
    args = ap.parse_args()
    for T in [int(x) for x in args.T.split(",")]:
        rng = np.random.default_rng(args.seed + T)
        tiles = [tile(rng, T, qt) for qt in np.linspace(1, T // 128 - 1, args.tiles).astype(int)]
        print(f"T = {T}, {len(tiles)} tiles of 128 rows")
        for mode, what in (("exact", "passes    "), ("count", "half      f16x2 first pass: "),
                           ("nest", "half      f16x2, n ~ 1.6 s1^2/s0: ")):
            hv = [study_half(z, r, mode) for z, r in tiles]
            print("  %sHalley passes per tile:" % what, [a for a, _ in hv],
                  " largest |f| at the end %.1e" % max(b for _, b in hv))
        st = [study_stream(z) for z, _ in tiles]
        print("  stream    peak kept keys per thread and row:", [int(a) for a, _ in st],
              " largest row at the end:", [int(b) for _, b in st])
        ab = [study_above_lb(z) for z, _ in tiles]
        print("  above_lb  keys above the start, per thread and row:", [int(a) for a, _ in ab],
              " per row:", [int(b) for _, b in ab])
        for C, top in [(16, 1), (32, 1), (64, 1), (16, 2), (32, 2)]:
            ok = sum(study_classes(z, C, top) for z, _ in tiles)
            print(f"  classes   {C} classes, top {top}: tiles done after one Halley pass {ok}/{len(tiles)}")
        gaps, pts = [], []
        for z, _ in tiles:
            m = z.max(1)
            t0 = lower_bound(z, m)
            gaps.append(root(z, t0.copy(), m) - t0)
            pts.append((z, t0))
        g = np.concatenate(gaps)
        print("  twopoint  theta* - start: median %.4f, p90 %.4f, p99 %.4f, max %.4f"
              % tuple(np.percentile(g, [50, 90, 99, 100])))
        for q in (90, 99):
            delta = np.percentile(g, q)
            bad, badt = 0, 0
            for z, ta in pts:
                tb = ta + delta
                fa, sa, _ = f_terms(z, ta)
                fb, sb, cb = f_terms(z, tb)
                te = np.where(fb <= 0, hermite_root(ta, fa, -A * sa, tb, fb, -A * sb), halley_candidate(tb, fb, sb, cb))
                off = np.abs(f_terms(z, te)[0]) > 1e-3
                bad += int(off.sum())
                badt += int(off.any())
            print(f"  twopoint  Delta = p{q} ({delta:.4f}): rows with |f| > 1e-3 {bad}/{128 * len(pts)}, "
                  f"in {badt}/{len(pts)} tiles")


if __name__ == "__main__":
    main()
