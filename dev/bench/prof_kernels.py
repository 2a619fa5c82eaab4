"""
Per-kernel GPU time of one forward + backward, for this project and its peers side by side (torch.profiler, so
Triton kernels such as AdaSplash's are seen too). Same shapes as bench_attention.py: causal, H = 12,
B*T = 65,536, bf16, q, k, v, dO ~ N(0, 1), layout (B, H, T, D).

    python3 dev/bench/prof_kernels.py [--T 1024,4096,16384] [--methods ours15,adasplash_v2] [--iters 10]
                                      [--qscale 1.0]

--qscale s multiplies q by s: the scores then have standard deviation s (0.3 gives the flat rows of a GPT-2 model at
initialisation, where the entmax threshold solve needs the most passes).

Prints, per (T, method), each kernel's mean time per f+b in microseconds and their sum.
"""
import argparse
import os
import sys
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_attention import method_fn  # noqa: E402


def kernel_times(name, T, D, iters, H=12, tokens=65536, qscale=1.0):
    B = max(1, tokens // T)
    fn, _ = method_fn(name)
    g = torch.Generator(device="cuda")
    g.manual_seed(T)
    q, k, v, dout = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16, generator=g) for _ in range(4))
    q = q * qscale
    qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))

    def fb():
        qg.grad = kg.grad = vg.grad = None
        fn(qg, kg, vg).backward(dout)

    for _ in range(3):  # warm-up (and Triton autotuning)
        fb()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            fb()
        torch.cuda.synchronize()
    tot = defaultdict(float)
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA:
            tot[ev.name] += ev.device_time_total if hasattr(ev, "device_time_total") else ev.cuda_time_total
    return {k: v / iters for k, v in tot.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--T", default="1024,4096,16384")
    ap.add_argument("--D", type=int, default=64)
    ap.add_argument("--methods", default="ours15,adasplash_v2")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--qscale", type=float, default=1.0)
    args = ap.parse_args()
    for T in [int(x) for x in args.T.split(",")]:
        for m in args.methods.split(","):
            kt = kernel_times(m, T, args.D, args.iters, qscale=args.qscale)
            print(f"## T = {T}, {m}, qscale {args.qscale:g}: total {sum(kt.values()):.0f} us per f+b", flush=True)
            for k, v in sorted(kt.items(), key=lambda kv: -kv[1]):
                if v >= 1.0:
                    print(f"  {v:9.1f} us  {k[:110]}", flush=True)
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
