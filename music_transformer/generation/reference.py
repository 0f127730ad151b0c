"""A reference decoder without a KV cache: what the cached sampler must agree with.

Used by the tests (cached vs uncached decoding) and by bench/bench_generate.py (what the cache
buys); not by any command.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .picker import TokenPicker
from .rules import TokenInfo
from .sampler import _grain, _last, model_device
from .settings import SamplingSettings


def generate_without_cache(
    model: nn.Module,
    primer: Sequence[int],
    settings: SamplingSettings,
    tokens: TokenInfo | None = None,
) -> list[int]:
    """Reference decoder that recomputes the whole context every step (no cache).

    What public ports do; slow (quadratic). It draws from the same random stream as
    `generate` (row 0, `settings.seed`), so with the same settings both must return the same
    tokens: the tests use it to check the cached sampler, the benchmark to measure what the
    cache buys. Each step runs the model on the last `settings.window` tokens (None: all);
    it makes exactly `settings.max_new_tokens` tokens (no EOS stop, no seconds).

    Returns:
        The new tokens.
    """
    tokens = tokens or TokenInfo()
    device = model_device(model)
    s = settings
    pick = TokenPicker(1, device, s.temperature_used, s.top_k, s.top_p, s.seed, tokens.suppress_ids)
    history = list(primer)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for _ in range(s.max_new_tokens):
                context = _last(history, s.window, _grain(model))
                batch = torch.tensor([context], dtype=torch.long, device=device)  # (1, T)
                logits, _ = model(batch)  # (1, T, V)
                history.append(int(pick(logits[:, -1])))
    finally:
        model.train(was_training)
    return history[len(primer) :]
