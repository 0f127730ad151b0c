"""The Music Transformer: cached decoding, sliding windows and padding equal plain forwards."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_model, save_model

from music_transformer.nn import attention
from tests.helpers import forward_in_pieces, left_padded, sharpened_model
from tests.tolerances import bf16_bound, rounding_bound

V = 40
# Logits |z| ≤ 8 of `_model` (d_model 32, d_ff 64, ≤ 3 layers, ≤ 30 tokens): each layer chains
# 6 sums (q/k/v projection, logits, softmax·V, output projection, the two FFN matmuls) of at
# most d_ff = 64 terms, + the output projection: 19 sums.
ATOL = rounding_bound(64, 8, sums=19)  # 1.2e-3
GRAD_ATOL = rounding_bound(64, 1, sums=38)  # gradients |g| ≤ 1, back through twice the sums
BF16_ATOL = bf16_bound(8, sums=19)  # 0.55: every matmul's factors rounded to 8 bits


def _model(seed=0, **overrides):
    arch = overrides.pop("arch", "transformer")
    # R = 8 < the sequence lengths below, so distance clipping is exercised everywhere
    fields = dict(max_rel_dist=8, n_layers=2, n_heads=2, d_model=32, d_ff=64)
    fields.update(overrides)
    # weights of std 0.3, larger than the training init: peaky attention makes tests sensitive
    return sharpened_model(arch, V, seed, std=0.3, **fields)


def _tokens(b, t, seed=1):
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


MODELS = {
    "relative": {},
    "shared-table": {"rel_shared_heads": True},
    "absolute": {"arch": "transformer-absolute"},
    # the inputs of the paper's Table 2 rows: concatenated position sinusoids, voice labels
    "concat-voice": {"concat_positions": 8, "voice_dims": 4, "frame": 4},
    "absolute-concat-voice": {
        "arch": "transformer-absolute",
        "concat_positions": 6,
        "voice_dims": 4,
        "frame": 4,
    },
    # the last row: relative pitch (tokens 4…33 are semitones) and time (3 steps) logits
    "pitch-time": {"rel_pitch_time": 3, "pitch_token0": 4, "pitch_tokens": 30, "frame": 4},
}


@pytest.fixture(params=list(MODELS), ids=list(MODELS))
def model(request):
    return _model(**MODELS[request.param])


@torch.no_grad()
def test_token_by_token_equals_full_forward(model):
    x = _tokens(2, 24)
    full, full_cache = model(x)
    assert full.shape == (2, 24, V) and full_cache.length == 24
    steps, cache = forward_in_pieces(model, x, [(i, i + 1) for i in range(24)])
    assert cache.length == 24
    torch.testing.assert_close(steps, full, atol=ATOL, rtol=0)


@torch.no_grad()
def test_chunks_equal_full_forward(model):
    x = _tokens(3, 30)
    full, _ = model(x)
    chunks, _ = forward_in_pieces(model, x, [(0, 7), (7, 8), (8, 19), (19, 30)])
    torch.testing.assert_close(chunks, full, atol=ATOL, rtol=0)


@pytest.mark.parametrize("shared", [False, True], ids=["per-head", "shared"])
@torch.no_grad()
def test_trimmed_cache_equals_fresh_forward_over_window_one_layer(shared):
    """Exact for one layer. With more layers the cached keys of deeper layers also carry
    context from before the window (sliding-window attention, receptive field L·(W-1)),
    so only the first layer's inputs are a function of the window alone."""
    model = _model(rel_shared_heads=shared, n_layers=1)
    x, w = _tokens(2, 40), 12
    _, cache = model(x[:, :20])
    for i in range(20, 40):  # slide: keep W-1 cached positions, add one token
        cache = cache.trim(w - 1)
        assert cache.length == w - 1
        logits, cache = model(x[:, i : i + 1], cache=cache)
        fresh, _ = model(x[:, i - w + 1 : i + 1])
        torch.testing.assert_close(logits[:, -1], fresh[:, -1], atol=ATOL, rtol=0)


@torch.no_grad()
def test_trimming_is_sliding_window_attention_in_every_layer():
    """With several layers, trimming before each token is sliding-window attention: every
    position attends to its last W positions in every layer. Until the window is full that
    is the plain forward; afterwards it differs, and stays finite."""
    model, w = _model(n_layers=3), 6
    x = _tokens(2, 20)
    cache, trimmed = None, []
    for i in range(20):
        logits, cache = model(x[:, i : i + 1], cache=None if cache is None else cache.trim(w - 1))
        trimmed.append(logits[:, -1])
    plain = model(x)[0]
    # the first W positions see no trimming at all
    torch.testing.assert_close(torch.stack(trimmed[:w], 1), plain[:, :w], atol=ATOL, rtol=0)
    # later positions do differ (the window matters), and the values stay finite
    assert not torch.allclose(torch.stack(trimmed[w:], 1), plain[:, w:], atol=ATOL, rtol=0)
    assert cache.length == w and torch.isfinite(torch.stack(trimmed)).all()


@torch.no_grad()
@pytest.mark.parametrize("chunk", [0, 4], ids=["one-pass", "query-chunks"])
def test_window_forward_equals_decoding_with_a_sliding_cache(chunk):
    """`forward(x, window=W)` in one pass equals token-by-token decoding with the cache trimmed
    to W-1 before each step (what the sampler does past its window), in every layer."""
    model, w = _model(n_layers=3, attn_chunk=chunk), 6
    x = _tokens(2, 20)
    cache, stepped = None, []
    for i in range(20):
        logits, cache = model(x[:, i : i + 1], cache=None if cache is None else cache.trim(w - 1))
        stepped.append(logits[:, -1])
    banded = model(x, window=w)[0]
    torch.testing.assert_close(banded, torch.stack(stepped, 1), atol=ATOL, rtol=0)
    # and the window is not a no-op: the plain forward differs past it
    assert not torch.allclose(banded[:, w:], model(x)[0][:, w:], atol=ATOL, rtol=0)


@torch.no_grad()
def test_window_forward_with_left_padding_equals_unpadded_rows():
    model, w = _model(n_layers=2), 5
    short, long = _tokens(1, 9, seed=3), _tokens(1, 14, seed=4)
    padded = torch.cat([torch.cat([torch.zeros(1, 5, dtype=torch.long), short], 1), long])
    valid = torch.ones(2, 14, dtype=torch.bool)
    valid[0, :5] = False
    logits = model(padded, valid=valid, window=w)[0]
    torch.testing.assert_close(logits[0, 5:], model(short, window=w)[0][0], atol=ATOL, rtol=0)
    torch.testing.assert_close(logits[1], model(long, window=w)[0][0], atol=ATOL, rtol=0)


@torch.no_grad()
def test_a_cache_is_a_value_that_can_be_continued_twice(model):
    x = _tokens(2, 16)
    _, cache = model(x[:, :10])
    a, cache_a = model(x[:, 10:13], cache=cache)
    b, _ = model(x[:, 13:16], cache=cache_a)
    a2, cache_a2 = model(x[:, 10:13], cache=cache)  # branch from the older cache again
    b2, _ = model(x[:, 13:16], cache=cache_a)  # and from the newer one
    torch.testing.assert_close(a2, a, atol=0, rtol=0)  # the same ops on the same values
    # b2's cache is copied to a new buffer first (b appended to the old one): other strides
    torch.testing.assert_close(b2, b, atol=ATOL, rtol=0)
    assert cache.length == 10 and cache_a.length == 13 and cache_a2.length == 13


@torch.no_grad()
def test_left_padded_rows_equal_their_unpadded_singles(model):
    lengths = [13, 6, 9]
    t = max(lengths)
    rows = [_tokens(1, n, seed=10 + i) for i, n in enumerate(lengths)]
    tokens, valid = left_padded(rows)
    logits, cache = model(tokens, valid=valid)
    more = _tokens(3, 5, seed=99)
    step_logits = []
    for j in range(5):  # later calls need no `valid`: the cache remembers the padding
        out, cache = model(more[:, j : j + 1], cache=cache)
        step_logits.append(out)
    cont = torch.cat(step_logits, dim=1)  # (3, 5, V)
    for i, (row, n) in enumerate(zip(rows, lengths)):
        alone, alone_cache = model(row)
        torch.testing.assert_close(logits[i, t - n :], alone[0], atol=ATOL, rtol=0)
        alone_cont, _ = model(more[i : i + 1], cache=alone_cache)
        torch.testing.assert_close(cont[i], alone_cont[0], atol=ATOL, rtol=0)
    assert torch.isfinite(logits).all()


def _greedy(model, primer, n, use_cache):
    seq, cache, logits = primer, None, None
    for _ in range(n):
        if use_cache:
            inp = seq if cache is None else seq[:, -1:]
            logits, cache = model(inp, cache=cache)
        else:
            logits, _ = model(seq)
        seq = torch.cat([seq, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return seq[:, primer.shape[1] :]


def _within_rounding_of_argmax(logits: torch.Tensor, chosen: torch.Tensor) -> bool:
    """Each chosen token (B, N) is the argmax of its logits (B, N, V), or within rounding of
    it: two ways of computing logits may swap a near-tie, and only a near-tie."""
    gap = logits.max(-1).values - logits.gather(-1, chosen[..., None])[..., 0]  # (B, N)
    return bool((gap <= 2 * ATOL).all())


@torch.no_grad()
def test_greedy_continuation_identical_with_and_without_cache(model):
    primer = _tokens(2, 6)
    with_cache = _greedy(model, primer, 20, use_cache=True)
    without = _greedy(model, primer, 20, use_cache=False)
    assert with_cache.shape == (2, 20)
    # every cached choice is the uncached forward's greedy choice for the same prefix
    logits = model(torch.cat([primer, with_cache], 1))[0][:, 5:-1]  # (2, 20, V)
    assert _within_rounding_of_argmax(logits, with_cache)
    assert torch.equal(with_cache, without) or _within_rounding_of_argmax(
        model(torch.cat([primer, without], 1))[0][:, 5:-1], without
    )


def test_state_dict_round_trips_through_safetensors(model, tmp_path):
    path = tmp_path / "model.safetensors"
    save_model(model, str(path))
    other = _model(seed=123, **MODELS.get(_kind(model), {}))
    x = _tokens(2, 10)
    assert not torch.allclose(other(x)[0], model(x)[0])
    load_model(other, str(path))
    torch.testing.assert_close(other(x)[0], model(x)[0], atol=0, rtol=0)  # same weights, ops


def _kind(model):
    """The MODELS entry a model was built from."""
    c = model.config
    if c.rel_pitch_time:
        return "pitch-time"
    if c.voice_dims:
        return "absolute-concat-voice" if c.position == "absolute" else "concat-voice"
    return "absolute" if c.position == "absolute" else "shared-table" * c.rel_shared_heads


def test_bf16_autocast_forward_and_backward(model):
    model.train()
    x = _tokens(2, 20)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, _ = model(x)
    ref, _ = model(x)
    assert logits.dtype == torch.bfloat16
    torch.testing.assert_close(logits.float(), ref, atol=BF16_ATOL, rtol=0)
    loss = torch.nn.functional.cross_entropy(logits.float().view(-1, V), x.view(-1))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_dropout_only_in_train_mode():
    model = _model(dropout=0.3)
    x = _tokens(2, 12)
    with torch.no_grad():
        assert torch.equal(model(x)[0], model(x)[0])
        model.train()
        assert not torch.equal(model(x)[0], model(x)[0])


def test_no_future_token_reaches_past_logits(model):
    x = _tokens(1, 16)
    emb = model.embed(x).detach().requires_grad_()
    probe = {}

    def swap_input(module, args, output):
        probe["x"] = emb  # feed a leaf so we can ask which inputs an output depends on
        return emb

    handle = model.embed.register_forward_hook(swap_input)
    logits, _ = model(x)
    handle.remove()
    logits[0, 7].sum().backward()
    assert emb.grad[0, 8:].abs().max() == 0
    assert emb.grad[0, :8].abs().max() > 0


@pytest.mark.parametrize("kind", ["relative", "pitch-time"])
@pytest.mark.parametrize(
    "options, keep_bytes",
    [({"attn_chunk": 5}, 1 << 30), ({"attn_chunk": 5}, 0), ({"grad_checkpoint": True}, 1 << 30)],
    ids=["chunks", "chunks-recomputed", "blocks-recomputed"],
)
def test_memory_options_keep_outputs_and_gradients(options, keep_bytes, kind, monkeypatch):
    # keep_bytes 0: every attention chunk is recomputed in backward (what long L does)
    monkeypatch.setattr(attention, "KEEP_LOGITS_BYTES", keep_bytes)
    x = _tokens(2, 23)
    plain, saving = _model(**MODELS[kind]), _model(**MODELS[kind], **options)
    plain.train(), saving.train()  # dropout is 0 in `tiny`, so train mode is deterministic
    results = []
    for m in (plain, saving):
        logits, _ = m(x)
        logits.square().mean().backward()
        results.append((logits, [p.grad for p in m.parameters()]))
    torch.testing.assert_close(results[1][0], results[0][0], atol=ATOL, rtol=0)
    for g1, g0 in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(g1, g0, atol=GRAD_ATOL, rtol=0)


def test_mismatched_cache_batch_is_an_error():
    model = _model()
    _, cache = model(_tokens(2, 4))
    with pytest.raises(ValueError, match="cache holds 2 rows but tokens have 3"):
        model(_tokens(3, 1), cache=cache)
