"""Logit filters for sampling: pure functions from logits to logits.

A filter never changes the logits it keeps; it sets the ones it removes to -inf, so a softmax
afterwards renormalizes over the survivors. `FILTERS` is the registry the sampler applies, in
order; each entry is skipped when its setting is None. Written here (a few lines each) rather
than taken from transformers' logits warpers, which would pull in that whole library.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


class SamplingError(ValueError):
    """A sampling setting out of range (top_k < 1, top_p outside (0, 1], temperature < 0)."""


def check_top_k(k: int | None) -> None:
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise SamplingError(f"top_k must be a whole number ≥ 1, got {k!r}")


def check_top_p(p: float | None) -> None:
    if p is not None and not (isinstance(p, int | float) and 0.0 < p <= 1.0):
        raise SamplingError(f"top_p must be in (0, 1], got {p!r}")


def check_min_p(p: float | None) -> None:
    if p is not None and (isinstance(p, bool) or not (isinstance(p, int | float) and 0 < p <= 1)):
        raise SamplingError(f"min_p must be in (0, 1], got {p!r}")


def top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the `k` largest logits of each row (ties with the k-th are kept too).

    Args:
        logits: (..., V) float.
        k: how many to keep, ≥ 1; k ≥ V keeps everything.

    Returns:
        (..., V) the same values, removed entries set to -inf.
    """
    check_top_k(k)
    if k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability sums to
    at least `p` (Holtzman et al. 2020). The most likely token always survives.

    Args:
        logits: (..., V) float.
        p: probability mass to keep, in (0, 1]; 1 keeps everything.

    Returns:
        (..., V) the same values, removed entries set to -inf.
    """
    check_top_p(p)
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (..., V)
    probs = torch.softmax(sorted_logits.float(), dim=-1)
    # Mass strictly before each token: a token is needed while that mass is still below p.
    mass_before = probs.cumsum(dim=-1) - probs
    drop_sorted = mass_before >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def min_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the tokens at least `p` times as likely as the most likely one (min-p sampling,
    Nguyen et al. 2024): the cut follows the model's confidence — a wide choice where it is
    unsure, a narrow one where it is sure. The most likely token always survives.

    Args:
        logits: (..., V) float.
        p: in (0, 1]; kept iff prob ≥ p · max prob, i.e. logit ≥ max logit + log p.

    Returns:
        (..., V) the same values, removed entries set to -inf.
    """
    check_min_p(p)
    top = logits.max(dim=-1, keepdim=True).values  # (..., 1)
    return logits.masked_fill(logits < top + math.log(p), float("-inf"))


# Applied in this order; a filter whose setting is None is skipped.
FILTERS: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "top_k": top_k,
    "top_p": top_p,
    "min_p": min_p,
}


def apply_filters(logits: torch.Tensor, **settings: float | None) -> torch.Tensor:
    """Apply every registered filter whose setting is given, e.g. `top_k=40, top_p=0.95`.

    Args:
        logits: (..., V) float.
        settings: filter name → its parameter (None skips it). Unknown names are an error.

    Returns:
        (..., V) filtered logits.
    """
    unknown = sorted(set(settings) - set(FILTERS))
    if unknown:
        raise SamplingError(f"unknown logit filter {unknown[0]!r} ({', '.join(FILTERS)})")
    for name, fn in FILTERS.items():
        value = settings.get(name)
        if value is not None:
            logits = fn(logits, value)
    return logits
