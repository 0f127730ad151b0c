"""Relative self-attention (Shaw et al. 2018) computed with the Music Transformer's skewing trick.

Legend: B batch, H heads, Tq queries, Tk keys, Dh head dim, R rows of the relative table.

The idea. Attention logits get a term that depends only on how far back a key is:

    S_rel[i, j] = q_i · E[R-1-min(i-j, R-1)]          (distance d = i - j ≥ 0)
    out_i = Σ_j softmax_j((q_i·k_j + S_rel[i, j]) / √Dh) v_j      (j ≤ i only)

Row R-1-d of the table E embeds distance d; distances beyond R-1 reuse row 0 (clipping), so
any length is defined. Gathering E into a (Tq, Tk, Dh) tensor costs O(L²·D) memory. Instead
Q·Eᵀ is computed once, (Tq, R): column m holds distance R-1-m for every query — and then
*skewed* into key order by padding one column, flattening and re-viewing (`relative_logits`):
O(L·D) extra memory and no gather.

Queries are always the LAST Tq of the Tk key positions (query i sits at position Tk - Tq + i),
so one signature serves training (Tq == Tk, skewed) and cached decoding (Tq == 1: Q·Eᵀ is
already in key order, no skew). The bias (relative logits with the causal and padding masks
folded in) goes to `F.scaled_dot_product_attention` as an additive mask; the kernels behind
it (its backward, the mask cache, query chunking) are in `attention_kernels.py`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from .attention_kernels import (
    PAD_LOGIT,
    BiasedAttention,
    SkewedLogits,
    causal_mask,
    logit_dtype,
)

Impl = Literal["auto", "fused", "explicit"]
# extra_fn(q_chunk (B, H, C, Dh), kv_end) → (B, H, C, kv_end) extra logits of a query chunk
ExtraFn = Callable[[Tensor, int], Tensor]

# Chunked attention keeps each chunk's activations for backward while one layer's fp32 logits
# (B·H·Tq·Tk·4 bytes) stay within this; above it, chunks are recomputed in backward. Keeping
# them made a training step 1.20× faster for `small` at L 1,024, batch 2 (67 MB a layer) on an
# AVX2 EPYC, 1 thread (bench/results/train-ab-keep-logits.md).
KEEP_LOGITS_BYTES = 512 << 20


def relative_logits(q: Tensor, rel_emb: Tensor, tk: int, mask: Tensor | None = None) -> Tensor:
    """S_rel[i, j] = q_i · E[R-1-min(i-j, R-1)] for the last Tq of Tk positions — the skew —
    plus an optional additive `mask` (Tq, Tk).

    Entries with j > i (the future) hold arbitrary finite values; mask them.

    Args:
        q: (B, H, Tq, Dh).
        rel_emb: (H, R, Dh) per-head or (R, Dh) shared table.
        tk: number of keys (≥ Tq).
        mask: optional (Tq, Tk), added in the same pass.

    Returns:
        (B, H, Tq, Tk) contiguous.
    """
    b, h, tq, _ = q.shape
    r = rel_emb.shape[-2]
    n = min(r, tk)  # distinct distances that occur: n-1 ... 0
    e = rel_emb[..., r - n :, :].to(q.dtype)  # (H|-, n, Dh), row m ↔ distance n-1-m
    per_head = e.dim() == 3
    if per_head:  # batch over heads, so E is not expanded B times
        qh = q.transpose(0, 1).reshape(h, b * tq, q.shape[-1])  # (H, B·Tq, Dh)
        qe = (qh @ e.transpose(-1, -2)).view(h, b, tq, n)  # (H, B, Tq, n)
    else:
        qe = q @ e.transpose(-1, -2)  # (B, H, Tq, n), column m ↔ distance n-1-m
    if tq > 1:  # skew into key order (SkewedLogits), the mask added on the way
        return SkewedLogits.apply(qe, tk, mask, per_head)
    # One query at position Tk-1: slot m is already key m (distance order Tk-1 ... 0), no
    # skew; distances ≥ n-1 all use column 0 (clipping).
    qe = qe.transpose(0, 1) if per_head else qe  # (B, H, 1, n)
    if tk > n:
        qe = torch.cat([qe[..., :1].expand(b, h, 1, tk - n), qe], dim=-1)  # (B, H, 1, Tk)
    return qe.contiguous() if mask is None else qe + mask


def naive_relative_attention(
    q: Tensor, k: Tensor, v: Tensor, rel_emb: Tensor, key_valid: Tensor | None = None
) -> Tensor:
    """The same attention by the definition: gathers a (Tq, Tk, Dh) table of embeddings.
    For tests and benchmarks only — O(T²·Dh) memory, which the skew avoids.

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


def relative_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    rel_emb: Tensor | None,
    *,
    key_valid: Tensor | None = None,
    window: int | None = None,
    impl: Impl = "auto",
    extra: Tensor | None = None,
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
        extra: optional (B, H, Tq, Tk) logits added to the rest, already scaled (relative
            pitch and time in the first layer).

    Returns:
        (B, H, Tq, Dh) attention output, in the dtype of `q`.
    """
    tq, tk = q.shape[-2], k.shape[-2]
    if tq > tk:
        raise ValueError(f"relative_attention: {tq} queries but only {tk} keys")
    scale = 1.0 / math.sqrt(q.shape[-1])
    v = v.to(q.dtype)
    sees_all = tq == 1 and (window is None or window >= tk)  # a decoding step: no mask
    plain = rel_emb is None and key_valid is None and extra is None
    if plain and (sees_all or (window is None and tq == tk)):
        return F.scaled_dot_product_attention(q, k, v, is_causal=not sees_all)
    bias = attention_bias(q * scale, rel_emb, tk, key_valid, window)
    if extra is not None:
        bias = bias + extra  # (B, H, Tq, Tk)
    bias = bias.to(q.dtype)
    # bias: (B|1, H|1, Tq, Tk)
    if impl == "explicit":
        logits = (q @ k.transpose(-1, -2)) * scale + bias  # (B, H, Tq, Tk)
        return torch.softmax(logits, dim=-1, dtype=torch.float32).to(v.dtype) @ v
    if bias.requires_grad and torch.is_grad_enabled():
        # SDPA falls back to its slow math kernel when the mask needs a gradient.
        return BiasedAttention.apply(q, k, v, bias, scale)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)


def attention_bias(
    q_scaled: Tensor, rel_emb: Tensor | None, tk: int, key_valid: Tensor | None, window: int | None
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
        bias = relative_logits(q_scaled, rel_emb, tk)  # (B, H, 1, Tk)
    else:
        mask = causal_mask(tq, tk, q_scaled.device, logit_dtype(q_scaled), window)  # (Tq, Tk)
        bias = mask[None, None]  # (1, 1, Tq, Tk)
        if rel_emb is not None:  # one pass reads the skewed view and writes a contiguous bias
            bias = relative_logits(q_scaled, rel_emb, tk, mask)  # (B, H, Tq, Tk)
    if key_valid is not None:
        pad = torch.zeros(key_valid.shape, dtype=bias.dtype, device=bias.device)
        pad.masked_fill_(~key_valid, PAD_LOGIT)
        bias = bias + pad[:, None, None, :]  # (B, H|1, Tq, Tk)
    return bias


def chunked_relative_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    rel_emb: Tensor | None,
    chunk: int,
    *,
    key_valid: Tensor | None = None,
    window: int | None = None,
    extra_fn: ExtraFn | None = None,
) -> Tensor:
    """`relative_attention` over query chunks, each against the keys up to its last query.

    The small per-chunk buffers are reused warm instead of page-faulted fresh. Under autograd
    each chunk keeps what its backward needs (its bias, O(chunk·Tk)) while the whole layer's
    logits would fit in KEEP_LOGITS_BYTES; past that each chunk is recomputed in backward
    (activation checkpointing), so memory stays O(chunk·Tk) instead of O(Tq·Tk). Same shapes
    and result either way.
    `extra_fn(q_chunk, kv_end)` gives a chunk's `extra` logits (B, H, chunk, kv_end), for
    queries that are the last of its first kv_end keys.
    """
    tq, offset = q.shape[2], k.shape[2] - q.shape[2]
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
    b, h, tk = q.shape[0], q.shape[1], k.shape[2]
    recompute = grad and b * h * tq * tk * 4 > KEEP_LOGITS_BYTES  # checkpoint past the budget
    outs = []
    for a in range(0, tq, chunk):
        e = min(tq, a + chunk)
        kv_end = offset + e  # the chunk's queries are the last (e - a) of these keys
        kv = key_valid[:, :kv_end] if key_valid is not None else None
        args = (q[:, :, a:e], k[:, :, :kv_end], v[:, :, :kv_end], rel_emb, kv, window, extra_fn)
        outs.append(
            checkpoint(_attend, *args, use_reentrant=False) if recompute else _attend(*args)
        )
    return torch.cat(outs, dim=2)  # (B, H, Tq, Dh)


def _attend(q, k, v, rel_emb, key_valid, window, extra_fn=None):
    extra = extra_fn(q, k.shape[2]) if extra_fn is not None else None
    return relative_attention(q, k, v, rel_emb, key_valid=key_valid, window=window, extra=extra)
