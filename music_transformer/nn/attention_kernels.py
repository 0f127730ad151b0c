"""The kernels behind `attention.py`: a fused attention whose backward also gives the bias
gradient, a cache of causal masks, and the query-chunk size that keeps buffers warm.

Legend: B batch, H heads, Tq queries, Tk keys, Dh head dim.

Hand-written because no library does it on CPU: `F.scaled_dot_product_attention` takes an
additive mask but has no fast path when the mask needs a gradient (it falls back to its math
kernel), and FlexAttention has no CPU backward in torch 2.13.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# Added to the logits of padded keys. Finite (not -inf) so that a padded query whose keys are
# all padding gets a uniform softmax instead of NaN (its output is never used, but NaN would
# poison the zero-weighted sums of later layers).
PAD_LOGIT = -1e9


class BiasedAttention(torch.autograd.Function):
    """softmax(q·kᵀ·scale + bias)·v: fused SDPA forward, hand-written backward that also
    returns the bias gradient (which the relative table and the queries need).

    Saves q, k, v and bias; the probabilities are recomputed in backward in q's dtype (the
    softmax kernels accumulate in fp32 for bf16), and the logit gradient p·(dp - Σ p·dp)
    comes from aten's fused softmax backward: one pass instead of four elementwise ones and
    no fp32 copies of (Tq, Tk) tensors under bf16. Measured on this project's AMX CPU (B=2,
    H=8, Dh=32, machine otherwise idle), relative attention fwd+bwd in bf16: 38-43 → 18 ms at
    T=512 and 229 → 134-141 ms at T=1024 (fp32 unchanged within noise), with a smaller bf16
    gradient error against an fp64 reference (max 0.9% instead of 1.4% of the largest entry).
    """

    @staticmethod
    def forward(ctx, q, k, v, bias, scale):
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.detach(), scale=scale)
        ctx.save_for_backward(q, k, v, bias)
        ctx.scale = scale
        return out  # (B, H, Tq, Dh)

    @staticmethod
    def backward(ctx, dout):
        q, k, v, bias = ctx.saved_tensors
        scale = ctx.scale
        dout = dout.to(q.dtype)
        logits = torch.baddbmm(
            bias.reshape(-1, *bias.shape[-2:]),  # (B·H, Tq, Tk)
            q.reshape(-1, *q.shape[-2:]),  # (B·H, Tq, Dh)
            k.reshape(-1, *k.shape[-2:]).transpose(-1, -2),  # (B·H, Dh, Tk)
            alpha=scale,
        ).view(bias.shape)  # (B, H, Tq, Tk)
        p = torch.softmax(logits, dim=-1)  # (B, H, Tq, Tk)
        dp = dout @ v.transpose(-1, -2)  # (B, H, Tq, Tk)
        ds = torch.ops.aten._softmax_backward_data(dp, p, -1, q.dtype)  # d logits
        dv = p.transpose(-1, -2) @ dout  # (B, H, Tk, Dh)
        dq = (ds @ k) * scale  # (B, H, Tq, Dh)
        dk = (ds.transpose(-1, -2) @ q) * scale  # (B, H, Tk, Dh)
        return dq, dk, dv, ds, None


class SkewedLogits(torch.autograd.Function):
    """The skew of `attention.relative_logits` plus an additive mask, in one pass each way.

    Input Q·Eᵀ (A0, A1, Tq, n), column m ↔ distance n-1-m; slabs ordered (H, B) when `swap`
    (the per-head table's batched matmul gives that order) or (B, H). Output (B, H, Tq, Tk)
    contiguous. Autograd through pad/cat/view/transpose did the same with a zero-fill of the
    whole padded gradient and a strided (H, B) ↔ (B, H) copy of Q·Eᵀ's gradient; here
    backward zeroes only the Tq slots no output reads and hands Q·Eᵀ its gradient as a
    strided view in its own slab order (no copy).
    """

    @staticmethod
    def forward(ctx, qe, tk, mask, swap):
        a0, a1, tq, n = qe.shape
        far = tk - n  # distances past the table's reach: all read column 0 (clipping)
        pad = qe.new_zeros(a0, a1, tq, 1)
        clipped = [qe[..., :1].expand(a0, a1, tq, far)] if far else []
        padded = torch.cat([pad, *clipped, qe], dim=-1)  # (A0, A1, Tq, Tk+1), written row by row
        # Row i of the flat buffer read from offset Tq shifts by i: slot Tq-1-i+j → key j.
        skewed = padded.view(a0, a1, tq * (tk + 1))[..., tq:].view(a0, a1, tq, tk)
        if swap:
            skewed = skewed.transpose(0, 1)  # (B, H, Tq, Tk), strided
        dtype = qe.dtype if mask is None else torch.result_type(qe, mask)
        out = torch.empty(skewed.shape, dtype=dtype, device=qe.device)  # (B, H, Tq, Tk)
        if mask is None:
            out.copy_(skewed)
        else:
            torch.add(skewed, mask, out=out)
        ctx.meta = (a0, a1, tq, tk, far, swap, qe.dtype)
        return out

    @staticmethod
    def backward(ctx, grad):
        a0, a1, tq, tk, far, swap, dtype = ctx.meta
        gflat = grad.new_empty(a0, a1, tq * (tk + 1), dtype=dtype)  # (A0, A1, Tq*(Tk+1))
        gflat[..., :tq].zero_()  # the slots before offset Tq reach no output
        gskew = gflat[..., tq:].view(a0, a1, tq, tk)  # (A0, A1, Tq, Tk)
        gskew.copy_(grad.transpose(0, 1) if swap else grad)
        gpad = gflat.view(a0, a1, tq, tk + 1)
        gqe = gpad[..., 1 + far :]  # (A0, A1, Tq, n), a strided view of gflat
        if far:
            gqe[..., 0] += gpad[..., 1 : 1 + far].sum(-1)
        return gqe, None, None, None


def auto_chunk(batch: int, heads: int, tk: int, budget_bytes: int = 16 << 20) -> int:
    """Queries per chunk so that one chunk's fp32 logits (B, H, chunk, Tk) fit `budget_bytes`.

    Measured on this project's CPU (bench/results/attention.md): buffers under ~32 MiB are
    reused warm, larger fresh ones are page-faulted at ~5 GB/s, so chunks of ≤ 16 MiB made
    forward+backward 1.8-3× faster at T=1024 as well as O(chunk·Tk) in memory.
    """
    return max(32, budget_bytes // (4 * batch * heads * max(tk, 1)) // 32 * 32)


_MASKS: dict[tuple, Tensor] = {}


def causal_mask(
    tq: int, tk: int, device: torch.device, dtype: torch.dtype, window: int | None = None
) -> Tensor:
    """(Tq, Tk) additive mask, -inf where key j is after query i (query i at Tk-Tq+i), and,
    with a `window` W, where j ≤ i - W (further back than the window reaches).

    Kept in a small cache: building a fresh T×T tensor every step costs page faults.
    """
    key = (tq, tk, str(device), dtype, window)
    mask = _MASKS.get(key)
    if mask is None:
        if len(_MASKS) >= 16:
            _MASKS.pop(next(iter(_MASKS)))
        future = torch.ones(tq, tk, dtype=torch.bool, device=device).triu_(tk - tq + 1)
        if window is not None:
            far = torch.ones(tq, tk, dtype=torch.bool, device=device).tril_(tk - tq - window)
            future |= far
        mask = torch.zeros(tq, tk, dtype=dtype, device=device).masked_fill_(future, -math.inf)
        _MASKS[key] = mask
    return mask


def logit_dtype(q: Tensor) -> torch.dtype:
    """Dtype the logits will have: the autocast dtype under autocast, else q's."""
    if torch.is_autocast_enabled(q.device.type):
        return torch.get_autocast_dtype(q.device.type)
    return q.dtype
