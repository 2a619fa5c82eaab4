"""
Attention benchmark, one process, one table: this project (alpha = 1.5, 2, softmax) vs torch SDPA (FA2 and cuDNN
backends) vs AdaSplash (PyPI adasplash 0.2.2: adasplash_v2, adasplash_v1).

    python3 dev/bench/bench_attention.py [--T 1024,2048,...] [--D 64] [--methods ours15,ours2,...] [--md out.md]
                                         [--rep 1000] [--warmup 200]

Methods: ours15, ours2, ours_softmax (this project at alpha = 1.5, 2, 1), ours_aX (alpha = X, e.g. ours_a1.25),
fa2, cudnn, adasplash_v2, adasplash_v1.

Shapes: causal, H = 12, B*T = 65,536 tokens, bf16, q, k, v, dO ~ N(0, 1), layout (B, H, T, D) for everyone.
Times: median of triton.testing.do_bench (ms) over --rep ms of calls after --warmup ms (defaults 1000 and 200: 25
calls at the longest f+b; until session 22 it was 100 and 25, so 5 calls at 16k, which scattered by 5%).
"fwd" = forward only (no autograd graph); "f+b" = forward +
backward with a fixed random dO. TFLOP/s counts the causal work: fwd 2*B*H*T^2*D, f+b 3.5x that (FA convention).
err = ||o - ref|| / ||ref|| on batch 0, heads 0-1, vs a float64 reference on the same bf16 inputs (entmax_bisect or
softmax), T <= 4096. nnz = fraction of nonzero probabilities among the causal cells, skip = fraction of
64x64 tiles skipped (ours only). peak MB = torch.cuda.max_memory_allocated during f+b minus what was allocated
before the call (q, k, v, dO).
"""
import argparse
import math
import os
import sys

import torch
import triton.testing

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import entmax_attention as ea  # noqa: E402

ALL = ["ours15", "ours2", "ours_softmax", "fa2", "cudnn", "adasplash_v2", "adasplash_v1"]


def method_fn(name):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F
    if name == "ours15":
        return (lambda q, k, v: ea.entmax_attention(q, k, v, alpha=1.5, causal=True, layout="bhtd")), 1.5
    if name == "ours2":
        return (lambda q, k, v: ea.entmax_attention(q, k, v, alpha=2.0, causal=True, layout="bhtd")), 2.0
    if name == "ours_softmax":
        return (lambda q, k, v: ea.entmax_attention(q, k, v, alpha=1.0, causal=True, layout="bhtd")), 1.0
    if name.startswith("ours_a"):  # ours_a1.25: any alpha
        al = float(name[6:])
        return (lambda q, k, v: ea.entmax_attention(q, k, v, alpha=al, causal=True, layout="bhtd")), al
    if name in ("fa2", "cudnn"):
        be = SDPBackend.FLASH_ATTENTION if name == "fa2" else SDPBackend.CUDNN_ATTENTION
        def f(q, k, v):
            with sdpa_kernel(be):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return f, 1.0
    if name == "adasplash_v2":
        from adasplash import adasplash_v2
        return (lambda q, k, v: adasplash_v2(q, k, v)), 1.5
    if name == "adasplash_v1":
        from adasplash import adasplash_v1
        return (lambda q, k, v: adasplash_v1(q, k, v, alpha=1.5, is_causal=True)), 1.5
    raise ValueError(name)


def reference(q, k, v, alpha):
    qd, kd, vd = q.double(), k.double(), v.double()
    T, D = q.shape[-2], q.shape[-1]
    s = qd @ kd.transpose(-1, -2) / math.sqrt(D)
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    if alpha == 1.0:
        p = torch.softmax(s, -1)
    else:
        from entmax import entmax_bisect
        p = entmax_bisect(s, alpha=alpha, dim=-1, n_iter=60)
    return p @ vd


def bench(name, T, D, H=12, tokens=65536, do_err=True, rep=1000, warmup=200):
    B = max(1, tokens // T)
    fn, alpha = method_fn(name)
    g = torch.Generator(device="cuda")
    g.manual_seed(T)
    q, k, v, dout = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(4))
    row = {"method": name, "T": T, "B": B}
    # correctness first (and warm-up / compile)
    with torch.no_grad():
        o = fn(q, k, v)
    torch.cuda.synchronize()
    if do_err and T <= 4096:
        ref = reference(q[:1, :2], k[:1, :2], v[:1, :2], alpha)
        row["err"] = ((o[:1, :2].double() - ref).norm() / ref.norm()).item()
        del ref
    del o
    with torch.no_grad():
        row["fwd"] = triton.testing.do_bench(lambda: fn(q, k, v), warmup=warmup, rep=rep, return_mode="median")
    qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))

    def fb():
        qg.grad = kg.grad = vg.grad = None
        o = fn(qg, kg, vg)
        o.backward(dout)
    fb()
    torch.cuda.synchronize()
    row["fb"] = triton.testing.do_bench(fb, warmup=warmup, rep=rep, return_mode="median", grad_to_none=[qg, kg, vg])
    qg.grad = kg.grad = vg.grad = None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fb()
    torch.cuda.synchronize()
    row["peak_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    fl = 2.0 * B * H * T * T * D
    row["tf_fwd"] = fl / row["fwd"] / 1e9
    row["tf_fb"] = 3.5 * fl / row["fb"] / 1e9
    if name.startswith("ours") and alpha != 1.0:
        st = ea.sparsity_stats(q, k, v, alpha=alpha, causal=True, layout="bhtd")
        row["nnz"], row["skip"] = st["nonzero_fraction"], st["skipped_tiles"]
    del q, k, v, dout, qg, kg, vg
    torch.cuda.empty_cache()
    return row


def fmt(row, key, f):
    return f % row[key] if key in row else "–"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--T", default="1024,2048,4096,8192,16384,32768")
    ap.add_argument("--D", default="64")
    ap.add_argument("--methods", default=",".join(ALL))
    ap.add_argument("--md", default="")
    ap.add_argument("--noerr", action="store_true")
    ap.add_argument("--rep", type=float, default=1000.0, help="ms of timed calls per measurement (do_bench rep)")
    ap.add_argument("--warmup", type=float, default=200.0, help="ms of warm-up calls per measurement")
    args = ap.parse_args()
    rows = []
    hdr = ("| D | T | B | method | fwd ms | f+b ms | TFLOP/s fwd | TFLOP/s f+b | err | nnz | skip | peak MB |\n"
           "|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(hdr, flush=True)
    for D in [int(x) for x in args.D.split(",")]:
        for T in [int(x) for x in args.T.split(",")]:
            for m in args.methods.split(","):
                try:
                    r = bench(m, T, D, do_err=not args.noerr, rep=args.rep, warmup=args.warmup)
                except Exception as e:  # noqa: BLE001 (report and go on: one table)
                    r = {"method": m, "T": T, "B": max(1, 65536 // T), "note": type(e).__name__ + ": " + str(e)[:80]}
                    torch.cuda.empty_cache()
                r["D"] = D
                rows.append(r)
                line = (f"| {D} | {T} | {r['B']} | {m} | {fmt(r, 'fwd', '%.2f')} | {fmt(r, 'fb', '%.2f')} | "
                        f"{fmt(r, 'tf_fwd', '%.0f')} | {fmt(r, 'tf_fb', '%.0f')} | {fmt(r, 'err', '%.1e')} | "
                        f"{fmt(r, 'nnz', '%.3f')} | {fmt(r, 'skip', '%.3f')} | {fmt(r, 'peak_mb', '%.0f')} |")
                if "note" in r:
                    line += " " + r["note"]
                print(line, flush=True)
                if args.md:
                    with open(args.md, "a") as f:
                        f.write(line + "\n")
    return rows


if __name__ == "__main__":
    main()
