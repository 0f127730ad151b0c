"""`build_model(config)`: the one place where a configuration becomes modules."""

from __future__ import annotations

import torch
from torch import nn

from .config import AnyConfig, LSTMConfig, ModelConfig


def build_model(config: AnyConfig) -> nn.Module:
    """Return an untrained model for `config`.

    Every model has `forward(tokens, cache=None, valid=None, window=None) -> (logits, cache)`.
    """
    if isinstance(config, ModelConfig):
        from .transformer import MusicTransformer

        return MusicTransformer(config)
    if isinstance(config, LSTMConfig):
        from .lstm import PerformanceRNN

        return PerformanceRNN(config)
    raise TypeError(f"no model for config type {type(config).__name__}")


def count_parameters(config: AnyConfig) -> int:
    """Trainable parameters of the model a config describes (tied weights counted once).
    Built on the meta device: no memory is allocated and no weights are read."""
    with torch.device("meta"):
        model = build_model(config)
    return sum(p.numel() for p in model.parameters())
