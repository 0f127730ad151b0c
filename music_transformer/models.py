"""`build_model(config)`: the one place where a configuration becomes modules."""

from __future__ import annotations

from torch import nn

from .config import AnyConfig, LSTMConfig, ModelConfig


def build_model(config: AnyConfig) -> nn.Module:
    """Return an untrained model for `config`.

    Every model has `forward(tokens, cache=None, valid=None) -> (logits, cache)`.
    """
    if isinstance(config, ModelConfig):
        from .model import MusicTransformer

        return MusicTransformer(config)
    if isinstance(config, LSTMConfig):
        from .baseline import PerformanceRNN

        return PerformanceRNN(config)
    raise TypeError(f"no model for config type {type(config).__name__}")
