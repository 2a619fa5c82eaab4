"""
Profiling driver: one forward + backward of this project's attention (bhtd, causal, bf16, N(0,1)) so that
ncu sees each kernel once after a warm-up:
    ncu --clock-control none --kernel-name regex:attn_ --launch-skip 4 --launch-count 4 \
        --section SpeedOfLight --section WarpStateStats python3 dev/bench/prof_attention.py 1024 1.5
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import entmax_attention as ea  # noqa: E402

T = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
alpha = float(sys.argv[2]) if len(sys.argv) > 2 else 1.5
D = int(sys.argv[3]) if len(sys.argv) > 3 else 64
B, H = max(1, 65536 // T), 12
q, k, v, do = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16) for _ in range(4))
for _ in range(2):  # warm-up, then the profiled pass
    o, o2, stat, mask = ea.forward(q, k, v, alpha, True, "bhtd")
    ea.backward(q, k, v, o if alpha == 1.0 else o2, stat, mask, do, alpha, True, "bhtd")
torch.cuda.synchronize()
