"""
PyTorch binding of the project's alpha-entmax flash attention (llmc/attention.cuh) through the C ABI in
build/libentmax_attn.so (built from dev/python/entmax_attn_capi.cu; set ENTMAX_ATTN_LIB to use another path).

    import torch
    from entmax_attention import entmax_attention
    q, k, v = (torch.randn(2, 1024, 12, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
               for _ in range(3))
    o = entmax_attention(q, k, v, alpha=1.5, causal=True)      # (B, T, H, D), like q
    o.float().square().sum().backward()                        # q.grad, k.grad, v.grad

Layouts: layout="bthd" means q, k, v have shape (B, T, H, D) (llm.c's packed qkv slices work as they are:
qkv.view(B, T, 3, H, D)[:, :, 0] etc.); layout="bhtd" means (B, H, T, D), the SDPA convention. Any strides
are accepted as long as the last dim is contiguous, the data 16-byte aligned and strides multiples of 8;
other inputs are copied. The output has the layout of the inputs and is contiguous. alpha = 1 is softmax,
alpha in (1, 2] is alpha-entmax (1.5 and 2 have exact closed-form paths). bf16 only, D in {64, 128}.

Saved for backward: q, k, v, O2 (the u-weighted mean of v; softmax saves O), the per-row threshold
(fp32, B*H*T) and the tile mask (1 bit per 64x64 tile). O itself is not saved.
"""
import ctypes
import os

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))
_DEFAULT_LIB = os.path.join(_HERE, "..", "..", "build", "libentmax_attn.so")


class AttnTensor(ctypes.Structure):
    _fields_ = [("ptr", ctypes.c_void_p), ("sb", ctypes.c_longlong), ("st", ctypes.c_longlong),
                ("sh", ctypes.c_longlong)]


class AttnArgs(ctypes.Structure):
    _fields_ = [("B", ctypes.c_int), ("T", ctypes.c_int), ("H", ctypes.c_int), ("D", ctypes.c_int),
                ("alpha", ctypes.c_float), ("causal", ctypes.c_int), ("niter", ctypes.c_int),
                ("q", AttnTensor), ("k", AttnTensor), ("v", AttnTensor), ("o", AttnTensor), ("o2", AttnTensor),
                ("dout", AttnTensor), ("dq", AttnTensor), ("dk", AttnTensor), ("dv", AttnTensor),
                ("stat", ctypes.c_void_p), ("mask", ctypes.c_void_p), ("delta", ctypes.c_void_p),
                ("stats", ctypes.c_void_p), ("count_nonzero", ctypes.c_int)]


_lib = None


def lib():
    global _lib
    if _lib is None:
        path = os.environ.get("ENTMAX_ATTN_LIB", _DEFAULT_LIB)
        L = ctypes.CDLL(os.path.abspath(path))
        L.ea_forward.argtypes = [ctypes.POINTER(AttnArgs), ctypes.c_void_p]
        L.ea_backward.argtypes = [ctypes.POINTER(AttnArgs), ctypes.c_void_p]
        L.ea_mask_words.argtypes = [ctypes.c_int] * 3
        L.ea_mask_words.restype = ctypes.c_size_t
        L.ea_tile_count.argtypes = [ctypes.c_int] * 4
        L.ea_tile_count.restype = ctypes.c_ulonglong
        L.ea_default_niter.argtypes = [ctypes.c_float]
        L.ea_strerror.argtypes = [ctypes.c_int]
        L.ea_strerror.restype = ctypes.c_char_p
        L.ea_reference_cpu.argtypes = [ctypes.c_int] * 4 + [ctypes.c_float, ctypes.c_int] + [ctypes.c_void_p] * 8
        assert L.ea_sizeof_args() == ctypes.sizeof(AttnArgs), "AttnArgs mirror out of date"
        _lib = L
    return _lib


def _check(code):
    if code != 0:
        raise RuntimeError(lib().ea_strerror(code).decode())


def _ok(t):
    es = t.element_size()
    return (t.stride(-1) == 1 and t.data_ptr() % 16 == 0 and all(s % 8 == 0 for s in t.stride()[:-1]))


def _prep(t):
    return t if _ok(t) else t.contiguous()


def _desc(t, layout):
    if t is None:
        return AttnTensor(None, 0, 0, 0)
    s = t.stride()
    if layout == "bthd":
        return AttnTensor(t.data_ptr(), s[0], s[1], s[2])
    return AttnTensor(t.data_ptr(), s[0], s[2], s[1])


def _dims(q, layout):
    if layout == "bthd":
        B, T, H, D = q.shape
    elif layout == "bhtd":
        B, H, T, D = q.shape
    else:
        raise ValueError("layout must be 'bthd' or 'bhtd'")
    return B, T, H, D


def _stream():
    return ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)


def forward(q, k, v, alpha=1.5, causal=True, layout="bthd", niter=0, want_o2=True, stats=None, count_nonzero=False):
    """Low-level forward: returns (o, o2 or None, stat, mask or None). stats: optional int64 cuda tensor [3]."""
    q, k, v = _prep(q), _prep(k), _prep(v)
    B, T, H, D = _dims(q, layout)
    o = torch.empty_like(q, memory_format=torch.contiguous_format)
    softmax = float(alpha) == 1.0
    o2 = torch.empty_like(o) if (want_o2 and not softmax) else None
    stat = torch.empty(B * H * T, device=q.device, dtype=torch.float32)
    nw = lib().ea_mask_words(B, H, T)
    mask = torch.empty(max(nw, 1), device=q.device, dtype=torch.int32) if (nw and not softmax) else None
    a = AttnArgs()
    a.B, a.T, a.H, a.D, a.alpha, a.causal, a.niter = B, T, H, D, float(alpha), int(causal), int(niter)
    a.q, a.k, a.v, a.o, a.o2 = _desc(q, layout), _desc(k, layout), _desc(v, layout), _desc(o, layout), _desc(o2, layout)
    a.stat = stat.data_ptr()
    a.mask = mask.data_ptr() if mask is not None else None
    a.stats = stats.data_ptr() if stats is not None else None
    a.count_nonzero = int(count_nonzero)
    _check(lib().ea_forward(ctypes.byref(a), _stream()))
    return o, o2, stat, mask


def backward(q, k, v, o2, stat, mask, dout, alpha=1.5, causal=True, layout="bthd", dq=None, dk=None, dv=None):
    """Low-level backward: o2 is O2 (entmax) or O (softmax). Returns (dq, dk, dv)."""
    q, k, v, o2, dout = _prep(q), _prep(k), _prep(v), _prep(o2), _prep(dout)
    B, T, H, D = _dims(q, layout)
    dq = torch.empty_like(q, memory_format=torch.contiguous_format) if dq is None else dq
    dk = torch.empty_like(k, memory_format=torch.contiguous_format) if dk is None else dk
    dv = torch.empty_like(v, memory_format=torch.contiguous_format) if dv is None else dv
    delta = torch.empty(B * H * T, device=q.device, dtype=torch.float32)
    a = AttnArgs()
    a.B, a.T, a.H, a.D, a.alpha, a.causal = B, T, H, D, float(alpha), int(causal)
    a.q, a.k, a.v, a.o2, a.dout = _desc(q, layout), _desc(k, layout), _desc(v, layout), _desc(o2, layout), _desc(dout, layout)
    a.dq, a.dk, a.dv = _desc(dq, layout), _desc(dk, layout), _desc(dv, layout)
    a.stat = stat.data_ptr()
    a.mask = mask.data_ptr() if mask is not None else None
    a.delta = delta.data_ptr()
    _check(lib().ea_backward(ctypes.byref(a), _stream()))
    return dq, dk, dv


class EntmaxAttnFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, alpha, causal, layout, niter):
        need = any(ctx.needs_input_grad[:3])
        o, o2, stat, mask = forward(q, k, v, alpha, causal, layout, niter, want_o2=need)
        if need:
            ctx.save_for_backward(q, k, v, o if float(alpha) == 1.0 else o2, stat, mask)
        ctx.cfg = (alpha, causal, layout)
        return o

    @staticmethod
    def backward(ctx, dout):
        q, k, v, o2, stat, mask = ctx.saved_tensors
        alpha, causal, layout = ctx.cfg
        dq, dk, dv = backward(q, k, v, o2, stat, mask, dout, alpha, causal, layout)
        return dq, dk, dv, None, None, None, None


def entmax_attention(q, k, v, alpha=1.5, causal=True, layout="bthd", niter=0):
    """alpha-entmax attention (alpha = 1: softmax). q, k, v: bf16 cuda tensors in `layout`."""
    return EntmaxAttnFunction.apply(q, k, v, alpha, causal, layout, niter)


def sparsity_stats(q, k, v, alpha=1.5, causal=True, layout="bthd", niter=0):
    """Runs one forward with the counters on: returns dict(skipped_tiles, nonzero_fraction) (64x64 tiles)."""
    B, T, H, D = _dims(q, layout)
    st = torch.zeros(3, device=q.device, dtype=torch.int64)
    forward(q, k, v, alpha, causal, layout, niter, want_o2=False, stats=st, count_nonzero=True)
    dead, total, nnz = [int(x) for x in st.tolist()]
    cells = B * H * (T * (T + 1) // 2 if causal else T * T)
    return {"skipped_tiles": dead / max(total, 1), "nonzero_fraction": nnz / cells}


def reference_cpu(q, k, v, dout, alpha, causal, layout="bthd"):
    """entmax.h CPU reference (float32): returns (o, dq, dk, dv) as float32 CPU tensors in `layout`."""
    def bthd(t):
        t = t.detach().float().cpu()
        return (t if layout == "bthd" else t.transpose(1, 2)).contiguous()
    qc, kc, vc, dc = bthd(q), bthd(k), bthd(v), bthd(dout)
    B, T, H, D = qc.shape
    o, dq, dk, dv = (torch.empty_like(qc) for _ in range(4))
    lib().ea_reference_cpu(B, T, H, D, float(alpha), int(causal), qc.data_ptr(), kc.data_ptr(), vc.data_ptr(),
                           dc.data_ptr(), o.data_ptr(), dq.data_ptr(), dk.data_ptr(), dv.data_ptr())
    back = (lambda t: t) if layout == "bthd" else (lambda t: t.transpose(1, 2))
    return back(o), back(dq), back(dk), back(dv)
