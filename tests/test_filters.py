"""Logit filters: top_k and top_p against their definitions, on random logits."""

from __future__ import annotations

import pytest
import torch

from music_transformer.generation.filters import (
    FILTERS,
    SamplingError,
    apply_filters,
    min_p,
    top_k,
    top_p,
)
from music_transformer.generation.picker import WARMER, TokenPicker


def random_logits(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3


@pytest.mark.parametrize("k", [1, 5, 63])
def test_top_k_keeps_the_k_largest_unchanged(k: int) -> None:
    logits = random_logits(4, 64)
    out = top_k(logits, k)
    kept = torch.isfinite(out)
    assert kept.sum(dim=-1).tolist() == [k] * 4
    assert torch.equal(out[kept], logits[kept])
    # Every kept logit beats every removed one, row by row.
    for row, mask in zip(logits, kept):
        assert row[mask].min() > row[~mask].max()


def test_top_k_at_or_above_vocab_is_identity_and_keeps_leading_dims() -> None:
    logits = random_logits(2, 3, 10)
    assert torch.equal(top_k(logits, 10), logits)
    assert torch.equal(top_k(logits, 1000), logits)
    assert top_k(logits, 2).shape == (2, 3, 10)


@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 0.99])
def test_top_p_keeps_the_smallest_nucleus(p: float) -> None:
    logits = random_logits(8, 50, seed=1)
    out = top_p(logits, p)
    probs = torch.softmax(logits, dim=-1)
    for row_probs, row_out, row_logits in zip(probs, out, logits):
        kept = torch.isfinite(row_out)
        assert torch.equal(row_out[kept], row_logits[kept])
        # The kept set is the most likely tokens...
        if (~kept).any():
            assert row_probs[kept].min() >= row_probs[~kept].max()
        # ...it holds at least p of the mass, and without its least likely member it would not.
        mass = row_probs[kept].sum()
        assert mass >= p - 1e-6
        assert mass - row_probs[kept].min() < p


def test_top_p_always_keeps_the_most_likely_token() -> None:
    logits = torch.zeros(3, 20)
    logits[:, 7] = 0.1  # barely the most likely
    out = top_p(logits, 1e-6)
    assert torch.isfinite(out).sum(dim=-1).tolist() == [1, 1, 1]
    assert torch.isfinite(out[:, 7]).all()


def test_top_p_one_is_identity() -> None:
    logits = random_logits(2, 30)
    assert torch.equal(top_p(logits, 1.0), logits)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: top_k(x, 0),
        lambda x: top_k(x, -3),
        lambda x: top_k(x, 2.5),
        lambda x: top_p(x, 0.0),
        lambda x: top_p(x, 1.5),
        lambda x: top_p(x, -0.1),
        lambda x: apply_filters(x, top_z=3),
        lambda x: min_p(x, 0.0),
        lambda x: min_p(x, 1.2),
    ],
    ids=["k0", "k-neg", "k-float", "p0", "p>1", "p-neg", "unknown", "min-p0", "min-p>1"],
)
def test_bad_settings_raise_a_value_error(call) -> None:
    with pytest.raises(SamplingError):
        call(random_logits(1, 5))
    assert issubclass(SamplingError, ValueError)


def test_apply_filters_composes_the_registry_and_skips_none() -> None:
    assert list(FILTERS) == ["top_k", "top_p", "min_p"]
    logits = random_logits(5, 40, seed=2)
    assert torch.equal(apply_filters(logits, top_k=None, top_p=None), logits)
    both = apply_filters(logits, top_k=10, top_p=0.5)
    assert torch.equal(both, top_p(top_k(logits, 10), 0.5))
    # Both filters only remove: the result keeps no more than either alone.
    assert (torch.isfinite(both) <= torch.isfinite(top_k(logits, 10))).all()


@pytest.mark.parametrize("p", [0.01, 0.1, 0.5, 1.0])
def test_min_p_keeps_tokens_at_least_p_times_the_most_likely(p: float) -> None:
    logits = random_logits(6, 50, seed=3)
    probs = torch.softmax(logits, dim=-1)
    kept = torch.isfinite(min_p(logits, p))
    expected = probs >= p * probs.max(dim=-1, keepdim=True).values
    # the cut compares logits (log p + log max), probabilities differ from it by rounding:
    near = (probs / probs.max(dim=-1, keepdim=True).values - p).abs() < 1e-5
    assert ((kept == expected) | near).all()
    assert kept[torch.arange(6), logits.argmax(-1)].all()
    assert torch.equal(min_p(logits, p)[kept], logits[kept])


def test_entropy_floor_warms_only_rows_whose_choice_collapsed() -> None:
    """A row sure of one token samples warmer (its entropy raised toward the floor); a row
    with a wide choice keeps the temperature."""
    sure = torch.full((1, 20), -8.0)
    sure[0, 3] = 8.0
    wide = random_logits(1, 20, seed=4) * 0.1
    logits = torch.cat([sure, wide])  # (2, 20)
    picker = TokenPicker(2, torch.device("cpu"), 0.9, entropy_floor=1.0)
    t = picker.temperatures(logits).squeeze(1)
    assert t[0].item() == pytest.approx(0.9 * WARMER[-1])  # none reaches the floor: 2×
    assert t[1].item() == pytest.approx(0.9)
    assert TokenPicker(2, torch.device("cpu"), 0.9).temperatures(logits) == 0.9
