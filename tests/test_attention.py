"""Skewed relative attention equals a naive gather; causality holds for values and gradients."""

from __future__ import annotations

import pytest
import torch

from music_transformer.nn.attention import (
    chunked_relative_attention,
    naive_relative_attention,
    relative_attention,
)
from music_transformer.nn.attention_kernels import auto_chunk
from tests.tolerances import bf16_bound, rounding_bound

# (Tq, Tk, R): T < R, T = R, T > R (clipping), one query, a chunk of queries after a cache.
CASES = [
    (6, 6, 16),
    (16, 16, 16),
    (40, 40, 9),
    (1, 1, 4),
    (1, 30, 8),
    (1, 5, 64),
    (7, 30, 8),
    (7, 12, 64),
]


# q, k, v, e ~ N(0, 1), Dh 16, ≤ 40 keys: a logit sums 2·Dh = 32 products (Σ|q_i k_i|/√Dh ≈ 5)
# and an output ≤ 40 softmax-weighted values (|o| ≤ max|v| ≈ 4): two chained sums of ≤ 40
# terms at scale 5. Gradients (|g| ≤ 16 here) pass back through twice as many sums.
ATOL = rounding_bound(40, 5, sums=2)  # 4.8e-5
GRAD_ATOL = rounding_bound(40, 16, sums=4)  # 3.1e-4
BF16_ATOL = bf16_bound(5, sums=2)  # 0.11: q, k, v, e rounded to 8 bits, fp32 accumulation


def _inputs(tq, tk, r, shared, b=3, h=4, dh=16, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, tq, dh, generator=g).to(dtype)
    k = torch.randn(b, h, tk, dh, generator=g).to(dtype)
    v = torch.randn(b, h, tk, dh, generator=g).to(dtype)
    shape = (r, dh) if shared else (h, r, dh)
    e = torch.randn(*shape, generator=g).to(dtype)
    return q, k, v, e


@pytest.mark.parametrize("impl", ["fused", "explicit"])
@pytest.mark.parametrize("shared", [False, True], ids=["per-head", "shared"])
@pytest.mark.parametrize(("tq", "tk", "r"), CASES, ids=lambda c: str(c))
def test_skewed_equals_naive_fp32(tq, tk, r, shared, impl):
    q, k, v, e = _inputs(tq, tk, r, shared)
    out = relative_attention(q, k, v, e, impl=impl)
    ref = naive_relative_attention(q, k, v, e)
    assert out.shape == (3, 4, tq, 16)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize(("tq", "tk", "r"), [(20, 20, 8), (5, 20, 32)])
def test_padded_keys_are_ignored(tq, tk, r):
    """A row whose first keys are padding equals the same row computed without them."""
    q, k, v, e = _inputs(tq, tk, r, shared=False, b=2)
    n_pad = 6
    valid = torch.ones(2, tk, dtype=torch.bool)
    valid[1, :n_pad] = False
    out = relative_attention(q, k, v, e, key_valid=valid)
    real = slice(max(0, n_pad - (tk - tq)), tq)  # queries of row 1 that are not padding
    ref = naive_relative_attention(q, k, v, e, valid)
    torch.testing.assert_close(out[0], ref[0], atol=ATOL, rtol=0)
    torch.testing.assert_close(out[1, :, real], ref[1, :, real], atol=ATOL, rtol=0)
    alone = relative_attention(q[1:, :, real], k[1:, :, n_pad:], v[1:, :, n_pad:], e)
    torch.testing.assert_close(out[1:, :, real], alone, atol=ATOL, rtol=0)
    assert torch.isfinite(out).all()  # fully padded query rows give finite garbage, not NaN


@pytest.mark.parametrize("shared", [False, True], ids=["per-head", "shared"])
@pytest.mark.parametrize(("tq", "tk", "r"), [(24, 24, 32), (24, 24, 8), (4, 24, 8)])
def test_bf16_close_to_fp32(tq, tk, r, shared):
    q, k, v, e = _inputs(tq, tk, r, shared)
    ref = naive_relative_attention(q, k, v, e)
    out = relative_attention(*(t.bfloat16() for t in (q, k, v, e)))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=BF16_ATOL, rtol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # fp32 inputs, as the trainer runs it
        auto = relative_attention(q, k, v, e)
    torch.testing.assert_close(auto.float(), ref, atol=BF16_ATOL, rtol=0)


@pytest.mark.parametrize("impl", ["fused", "explicit"])
def test_no_future_position_reaches_a_past_output(impl):
    t, watch = 20, 9
    q, k, v, e = (x.requires_grad_() for x in _inputs(t, t, 8, shared=False))
    out = relative_attention(q, k, v, e, impl=impl)
    out[:, :, watch].sum().backward()
    for name, x in (("q", q), ("k", k), ("v", v)):
        assert x.grad[:, :, watch + 1 :].abs().max() == 0, f"future {name} leaks into the past"
        assert x.grad[:, :, : watch + 1].abs().max() > 0, f"past {name} has no influence"
    # only distances 0..watch can matter to position `watch`: rows R-1-d for d ≤ min(watch, R-1)
    assert e.grad.abs().sum() > 0


@pytest.mark.parametrize("shared", [False, True], ids=["per-head", "shared"])
@pytest.mark.parametrize(("tq", "tk", "r"), [(12, 12, 5), (12, 12, 20), (5, 17, 6), (1, 9, 4)])
def test_gradients_match_naive(tq, tk, r, shared):
    """Through the skew's own backward (SkewedLogits): clipped distances (R < Tk), a table
    longer than the keys, fewer queries than keys, and one query (no skew)."""
    q, k, v, e = (x.requires_grad_() for x in _inputs(tq, tk, r, shared=shared))
    relative_attention(q, k, v, e).square().sum().backward()
    grads = [x.grad.clone() for x in (q, k, v, e)]
    for x in (q, k, v, e):
        x.grad = None
    naive_relative_attention(q, k, v, e).square().sum().backward()
    for got, x in zip(grads, (q, k, v, e)):
        torch.testing.assert_close(got, x.grad, atol=GRAD_ATOL, rtol=0)


def test_plain_causal_attention_without_table():
    q, k, v, _ = _inputs(5, 9, 4, shared=True)
    out = relative_attention(q, k, v, None)
    zero = torch.zeros(4, 16)  # a zero table adds nothing
    torch.testing.assert_close(out, naive_relative_attention(q, k, v, zero), atol=ATOL, rtol=0)


def test_more_queries_than_keys_is_an_error():
    q, k, v, e = _inputs(5, 5, 4, shared=True)
    with pytest.raises(ValueError, match="6 queries but only 5 keys"):
        relative_attention(torch.cat([q, q[:, :, :1]], dim=2), k, v, e)


@pytest.mark.parametrize(("tq", "tk", "chunk"), [(30, 30, 7), (12, 40, 5), (9, 9, 32)])
def test_chunked_queries_equal_one_pass(tq, tk, chunk):
    q, k, v, e = (x.requires_grad_() for x in _inputs(tq, tk, 8, shared=False, b=2))
    valid = torch.ones(2, tk, dtype=torch.bool)
    valid[0, :3] = False
    whole = relative_attention(q, k, v, e, key_valid=valid)
    whole.square().sum().backward()
    grads = [x.grad.clone() for x in (q, k, v, e)]
    for x in (q, k, v, e):
        x.grad = None
    parts = chunked_relative_attention(q, k, v, e, chunk, key_valid=valid)
    parts.square().sum().backward()
    torch.testing.assert_close(parts, whole, atol=ATOL, rtol=0)
    for got, x in zip(grads, (q, k, v, e)):
        torch.testing.assert_close(x.grad, got, atol=GRAD_ATOL, rtol=0)


def test_auto_chunk_keeps_logits_under_budget():
    for b, h, tk in [(1, 8, 4096), (2, 8, 1024), (16, 8, 256), (64, 16, 16384)]:
        c = auto_chunk(b, h, tk)
        assert c >= 32 and c % 32 == 0
        assert 4 * b * h * c * tk <= 16 << 20 or c == 32
