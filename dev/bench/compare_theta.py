"""
compare_theta.py: theta, outputs and tile masks of two builds of the attention library on the same inputs, to check
that a kernel change leaves the results where they were (or moves them by how much). Run it once with the old
library to save its results, then with the new one to compare:

    ENTMAX_ATTN_LIB=build/libold.so python3 dev/bench/compare_theta.py save /tmp/old.pt [--alpha 1.5] [--D 64]
    ENTMAX_ATTN_LIB=build/libnew.so python3 dev/bench/compare_theta.py compare /tmp/old.pt

Inputs: causal, H = 12, B*T = 65,536, bf16, q, k, v ~ N(0, 1) (the benchmark's), T in --T (default 1k, 4k, 16k,
32k), a fixed seed per T. Prints per T: the largest and median |theta_new - theta_old|, the rows above 1e-5 and
1e-4 (and how many 128-row tiles hold the latter), ||o_new - o_old|| / ||o_old||, the dead tiles of each, and
whether the masks are equal. (compare reads alpha, D and the T list from the saved file.)
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import entmax_attention as ea  # noqa: E402


def run(alpha, D, Ts):
    res = {}
    for T in Ts:
        g = torch.Generator(device="cuda").manual_seed(1234 + T)
        B, H = max(1, 65536 // T), 12
        q, k, v = (torch.randn(B, T, H, D, device="cuda", generator=g).bfloat16() for _ in range(3))
        stats = torch.zeros(3, dtype=torch.int64, device="cuda")
        o, _, stat, mask = ea.forward(q, k, v, alpha, True, stats=stats)
        torch.cuda.synchronize()
        res[T] = (o.float().cpu(), stat.cpu(), None if mask is None else mask.cpu(), stats.cpu())
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["save", "compare"])
    ap.add_argument("file")
    ap.add_argument("--alpha", type=float, default=1.5)
    ap.add_argument("--D", type=int, default=64)
    ap.add_argument("--T", default="1024,4096,16384,32768")
    args = ap.parse_args()
    if args.mode == "save":
        Ts = [int(x) for x in args.T.split(",")]
        torch.save({"alpha": args.alpha, "D": args.D, "res": run(args.alpha, args.D, Ts)}, args.file)
        print(f"saved alpha={args.alpha} D={args.D} T={Ts} to {args.file}")
        return
    old = torch.load(args.file)
    new = run(old["alpha"], old["D"], list(old["res"]))
    print(f"alpha={old['alpha']} D={old['D']}")
    for T, (o, st, m, s) in new.items():
        o0, st0, m0, s0 = old["res"][T]
        d = (st - st0).abs()
        bad = (d > 1e-4).view(-1, T)
        idx = bad.nonzero()
        n_tiles = len(set(zip(idx[:, 0].tolist(), (idx[:, 1] // 128).tolist())))
        all_tiles = bad.shape[0] * ((T + 127) // 128)
        same_mask = m is not None and m0 is not None and torch.equal(m, m0)
        print(f"T={T}: max|dtheta| {d.max():.3e} median {d.median():.3e}; rows > 1e-5: {(d > 1e-5).sum().item()}, "
              f"> 1e-4: {bad.sum().item()} (in {n_tiles} of {all_tiles} tiles); "
              f"||do|| / ||o|| {((o - o0).norm() / o0.norm()):.3e}; dead tiles {int(s[0])} (old {int(s0[0])}) of "
              f"{int(s[1])}; masks equal: {same_mask}", flush=True)


if __name__ == "__main__":
    main()
