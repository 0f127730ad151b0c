"""The network, and nothing above it: no files, tokenizers, devices or sampling policy.

    config.py             ModelConfig / LSTMConfig (frozen; config.json beside the weights)
    build.py              build_model(config): the one place a config becomes modules
    attention.py          relative attention and the skew that makes it O(L·D)
    attention_kernels.py  its fused backward, the causal-mask cache, query-chunk sizing
    cache.py              KVCache: an explicit value, sliding-window trims in O(1)
    transformer.py        MusicTransformer: pre-LN decoder blocks, relative or absolute positions
    lstm.py               PerformanceRNN: the LSTM baseline behind the same interface

Every model: `model(tokens, cache=None, valid=None, window=None) -> (logits, cache)`.
"""

from .build import build_model, count_parameters
from .config import AnyConfig, ConfigError, LSTMConfig, ModelConfig, make_config

__all__ = [
    "AnyConfig",
    "ConfigError",
    "LSTMConfig",
    "ModelConfig",
    "build_model",
    "count_parameters",
    "make_config",
]
