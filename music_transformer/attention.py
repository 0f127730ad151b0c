"""Relative self-attention (Shaw et al. 2018) computed with the Music Transformer's skewing trick.

Legend: B batch, H heads, Tq queries, Tk keys, Dh head dim, R rows of the relative table.

The queries are always the LAST Tq of the Tk key positions (query i sits at position
Tk - Tq + i), so one function serves training (Tq == Tk) and cached decoding (Tq < Tk).
Row R-1-d of the table embeds the distance d = i - j ≥ 0; distances beyond R-1 reuse row 0.

    S_rel[i, j] = q_i · E[R-1-min(i-j, R-1)]
    out_i = Σ_j softmax_j((q_i·k_j + S_rel[i, j]) / √Dh) v_j      (j ≤ i only)

S_rel is built from Q·Eᵀ over at most R table rows, then "skewed" into key order by padding one
column, flattening and re-viewing — never a (Tq, Tk, Dh) gather. The resulting bias (with the
causal and padding masks folded in) goes to `F.scaled_dot_product_attention` as an additive mask.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

Impl = Literal["auto", "fused", "explicit"]

# Added to the logits of padded keys. Finite (not -inf) so that a padded query whose keys are
# all padding gets a uniform softmax instead of NaN (its output is never used, but NaN would
# poison the zero-weighted sums of later layers).
PAD_LOGIT = -1e9


def relative_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    rel_emb: Tensor | None,
    *,
    key_valid: Tensor | None = None,
    window: int | None = None,
    impl: Impl = "auto",
) -> Tensor:
    """Causal attention with learned relative-position logits.

    Args:
        q: (B, H, Tq, Dh) queries, the last Tq of the Tk positions.
        k: (B, H, Tk, Dh) keys, Tk ≥ Tq.
        v: (B, H, Tk, Dh) values.
        rel_emb: (H, R, Dh) per-head or (R, Dh) shared relative table; row R-1-d embeds
            distance d. None gives plain causal attention (the absolute-position baseline).
        key_valid: optional (B, Tk) bool, False at padded keys (never attended to).
        window: optional W: query i attends only to keys i-W+1 … i (sliding-window attention;
            what decoding with a cache trimmed to W-1 before every step computes).
        impl: "fused" (scaled_dot_product_attention with an additive bias), "explicit"
            (softmax written out) or "auto" (fused; it measured faster, see bench/).

    Returns:
        (B, H, Tq, Dh) attention output, in the dtype of `q`.
    """
    tq, tk = q.shape[-2], k.shape[-2]
    if tq > tk:
        raise ValueError(f"relative_attention: {tq} queries but only {tk} keys")
    scale = 1.0 / math.sqrt(q.shape[-1])
    v = v.to(q.dtype)
    sees_all = tq == 1 and (window is None or window >= tk)  # a decoding step: no mask
    if rel_emb is None and key_valid is None and (sees_all or (window is None and tq == tk)):
        return F.scaled_dot_product_attention(q, k, v, is_causal=not sees_all)
    bias = attention_bias(q * scale, rel_emb, tk, key_valid, window).to(
        q.dtype
    )  # (B|1, H|1, Tq, Tk)
    if impl == "explicit":
        logits = (q @ k.transpose(-1, -2)) * scale + bias  # (B, H, Tq, Tk)
        return torch.softmax(logits, dim=-1, dtype=torch.float32).to(v.dtype) @ v
    if bias.requires_grad and torch.is_grad_enabled():
        # SDPA falls back to its slow math kernel when the mask needs a gradient.
        return _BiasedAttention.apply(q, k, v, bias, scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


class _BiasedAttention(torch.autograd.Function):
    """softmax(q·kᵀ·scale + bias)·v: fused SDPA forward, hand-written backward that also
    returns the bias gradient (which the relative table and the queries need).

    Saves q, k, v and bias; the probabilities are recomputed in backward in q's dtype (the
    softmax kernels accumulate in fp32 for bf16), and the logit gradient p·(dp - Σ p·dp)
    comes from aten's fused softmax backward: one pass instead of four elementwise ones and
    no fp32 copies of (Tq, Tk) tensors under bf16. Measured on this CPU (B=2, H=8, Dh=32,
    machine otherwise idle), relative attention fwd+bwd in bf16: 38-43 → 18 ms at T=512 and
    229 → 134-141 ms at T=1024 (fp32 unchanged within noise), with a smaller bf16 gradient
    error against an fp64 reference (max 0.9% instead of 1.4% of the largest entry).
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


def chunked_relative_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    rel_emb: Tensor | None,
    chunk: int,
    *,
    key_valid: Tensor | None = None,
    window: int | None = None,
) -> Tensor:
    """`relative_attention` over query chunks, each against the keys up to its last query.

    Under autograd each chunk is recomputed in backward (activation checkpointing), so the
    (Tq, Tk) logits never exist at once: memory O(chunk·Tk) instead of O(Tq·Tk), and the small
    per-chunk buffers are reused warm instead of page-faulted fresh. Same shapes and result.
    """
    tq, offset = q.shape[2], k.shape[2] - q.shape[2]
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    outs = []
    for a in range(0, tq, chunk):
        e = min(tq, a + chunk)
        kv_end = offset + e  # the chunk's queries are the last (e - a) of these keys
        kv = key_valid[:, :kv_end] if key_valid is not None else None
        args = (q[:, :, a:e], k[:, :, :kv_end], v[:, :, :kv_end], rel_emb, kv, window)
        outs.append(checkpoint(_attend, *args, use_reentrant=False) if grad else _attend(*args))
    return torch.cat(outs, dim=2)  # (B, H, Tq, Dh)


def auto_chunk(batch: int, heads: int, tk: int, budget_bytes: int = 16 << 20) -> int:
    """Queries per chunk so that one chunk's fp32 logits (B, H, chunk, Tk) fit `budget_bytes`.

    Measured on this project's CPU (bench/results/attention.md): buffers under ~32 MiB are
    reused warm, larger fresh ones are page-faulted at ~5 GB/s, so chunks of ≤ 16 MiB made
    forward+backward 1.8-3× faster at T=1024 as well as O(chunk·Tk) in memory.
    """
    return max(32, budget_bytes // (4 * batch * heads * max(tk, 1)) // 32 * 32)


def _attend(q, k, v, rel_emb, key_valid, window):
    return relative_attention(q, k, v, rel_emb, key_valid=key_valid, window=window)


def attention_bias(
    q_scaled: Tensor,
    rel_emb: Tensor | None,
    tk: int,
    key_valid: Tensor | None = None,
    window: int | None = None,
) -> Tensor:
    """Additive logit bias: scaled relative logits + causal mask (-inf) + key padding mask.

    Args:
        q_scaled: (B, H, Tq, Dh) queries already multiplied by 1/√Dh.
        rel_emb: (H, R, Dh), (R, Dh) or None.
        tk: number of keys.
        key_valid: optional (B, Tk) bool.
        window: optional W; keys W or more positions before a query are masked too.

    Returns:
        (B, H, Tq, Tk) contiguous bias (or broadcastable (1|B, 1, Tq, Tk) when rel_emb is None).
    """
    tq = q_scaled.shape[-2]
    if tq == 1 and (window is None or window >= tk) and rel_emb is not None:
        # one query at the last position sees every key (a decoding step): no mask to add
        bias = relative_logits(q_scaled, rel_emb, tk).contiguous()  # (B, H, 1, Tk)
    else:
        mask = causal_mask(tq, tk, q_scaled.device, _logit_dtype(q_scaled), window)  # (Tq, Tk)
        bias = mask[None, None]  # (1, 1, Tq, Tk)
        if rel_emb is not None:  # one pass reads the skewed view and writes a contiguous bias
            bias = relative_logits(q_scaled, rel_emb, tk) + mask  # (B, H, Tq, Tk)
    if key_valid is not None:
        pad = torch.zeros(key_valid.shape, dtype=bias.dtype, device=bias.device)
        pad.masked_fill_(~key_valid, PAD_LOGIT)
        bias = bias + pad[:, None, None, :]  # (B, H|1, Tq, Tk)
    return bias


def relative_logits(q: Tensor, rel_emb: Tensor, tk: int) -> Tensor:
    """S_rel[i, j] = q_i · E[R-1-min(i-j, R-1)] for the last Tq of Tk positions.

    Entries with j > i (the future) hold arbitrary finite values; mask them.

    Args:
        q: (B, H, Tq, Dh).
        rel_emb: (H, R, Dh) or (R, Dh).
        tk: number of keys (≥ Tq).

    Returns:
        (B, H, Tq, Tk); a strided view when Tq > 1 (no copy beyond the padded Q·Eᵀ).
    """
    b, h, tq, _ = q.shape
    r = rel_emb.shape[-2]
    n = min(r, tk)  # distinct distances that occur: n-1 ... 0
    e = rel_emb[..., r - n :, :].to(q.dtype)  # (H|-, n, Dh), row m ↔ distance n-1-m
    if e.dim() == 3:  # per-head table: batch over heads, so E is not expanded B times
        qh = q.transpose(0, 1).reshape(h, b * tq, q.shape[-1])  # (H, B·Tq, Dh)
        qe = (qh @ e.transpose(-1, -2)).view(h, b, tq, n).transpose(0, 1)  # (B, H, Tq, n)
    else:
        qe = q @ e.transpose(-1, -2)  # (B, H, Tq, n), column m ↔ distance n-1-m
    # Key slots in distance order Tk-1 ... 0: the distances ≥ n-1 all use column 0 (clipping).
    far = [qe[..., :1].expand(b, h, tq, tk - n)] if tk > n else []
    if tq == 1:  # one query at position Tk-1: slot m is already key m, no skew needed
        return torch.cat([*far, qe], dim=-1) if far else qe  # (B, H, 1, Tk)
    # Skew: with one leading pad column, row i of the flattened (Tq, Tk+1) buffer read from
    # offset Tq shifts by i, so slot Tq-1-i+j of row i lands at key j.
    pad = qe.new_zeros(b, h, tq, 1)
    padded = torch.cat([pad, *far, qe], dim=-1)  # (B, H, Tq, Tk+1)
    flat = padded.view(b, h, tq * (tk + 1))  # (B, H, Tq*(Tk+1))
    return flat[..., tq:].view(b, h, tq, tk)  # (B, H, Tq, Tk)


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


def _logit_dtype(q: Tensor) -> torch.dtype:
    """Dtype the logits will have: the autocast dtype under autocast, else q's."""
    if torch.is_autocast_enabled(q.device.type):
        return torch.get_autocast_dtype(q.device.type)
    return q.dtype


def naive_relative_attention(
    q: Tensor, k: Tensor, v: Tensor, rel_emb: Tensor, key_valid: Tensor | None = None
) -> Tensor:
    """Reference implementation: gathers a (Tq, Tk, Dh) table of embeddings. For tests and
    benchmarks only — O(T²·Dh) memory, which is what the skewing trick avoids.

    Shapes as in `relative_attention`.
    """
    tq, tk, dh = q.shape[-2], k.shape[-2], q.shape[-1]
    r = rel_emb.shape[-2]
    qpos = torch.arange(tk - tq, tk, device=q.device)[:, None]  # (Tq, 1)
    kpos = torch.arange(tk, device=q.device)[None, :]  # (1, Tk)
    dist = (qpos - kpos).clamp(0, r - 1)  # (Tq, Tk); future clamped to 0, masked below
    table = rel_emb[..., r - 1 - dist, :]  # (H|-, Tq, Tk, Dh)
    if table.dim() == 3:
        rel = torch.einsum("bhid,ijd->bhij", q, table)  # (B, H, Tq, Tk)
    else:
        rel = torch.einsum("bhid,hijd->bhij", q, table)  # (B, H, Tq, Tk)
    logits = (q @ k.transpose(-1, -2) + rel) / math.sqrt(dh)  # (B, H, Tq, Tk)
    logits = logits.masked_fill(kpos > qpos, -math.inf)
    if key_valid is not None:
        logits = logits.masked_fill(~key_valid[:, None, None, :], PAD_LOGIT)
    return torch.softmax(logits.float(), dim=-1).to(v.dtype) @ v
