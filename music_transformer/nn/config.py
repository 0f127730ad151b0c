"""Model configurations: one frozen dataclass per model, saved as config.json beside the weights.

`config_from_dict` reads either kind back (the `arch` field tells which), rejecting unknown keys.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal


class ConfigError(ValueError):
    """A configuration that cannot be used (unknown key, bad value). The message is one line."""


@dataclass(frozen=True)
class ModelConfig:
    """Decoder-only Music Transformer."""

    vocab_size: int  # number of token ids, specials included
    n_layers: int = 4  # decoder blocks
    n_heads: int = 8  # attention heads per block
    d_model: int = 256  # residual stream width
    d_ff: int = 1024  # hidden width of the feed-forward sublayer
    dropout: float = 0.1  # on embeddings, attention output and feed-forward output
    max_rel_dist: int = 1024  # R: rows of the relative table; distances ≥ R-1 share one row
    rel_shared_heads: bool = False  # one (R, Dh) table for all heads instead of (H, R, Dh)
    position: Literal["relative", "absolute"] = "relative"  # absolute = paper's baseline
    max_abs_len: int = 8192  # longest position the absolute (sinusoid) baseline encodes
    tie_embeddings: bool = False  # output projection shares the input embedding matrix
    # What the input tells the model besides the token (Table 2 of the paper). Each is
    # concatenated to the token embedding, which gets d_model minus their widths:
    concat_positions: int = 0  # channels of sinusoids of the position (absolute: instead of
    # adding them); 0 = off
    voice_dims: int = 0  # channels of a learned voice label (needs frame > 1); 0 = off
    frame: int = 1  # tokens per time step of a grid preset (jsb: 4 voices, S A T B)
    grain: int = 1  # training windows started every `grain` tokens (jsb: 16, a beat); the
    # sampler cuts its context there too, so positions keep the beat phase they had
    # First layer only: logits get q · (E_pitch[pitch_q − pitch_k] + E_time[step_q − step_k])
    # for every query/key pair (O(L²·H) work, made a query chunk at a time like the rest of
    # attention, so O(chunk·L·H) memory). rel_pitch_time: time distances told apart,
    # in steps (0 = off); token ids pitch_token0 … pitch_token0 + pitch_tokens − 1 are
    # consecutive semitones (set from the tokenizer).
    rel_pitch_time: int = 0
    pitch_token0: int = 0
    pitch_tokens: int = 0
    # Memory options (same weights and outputs, only peak memory vs speed changes):
    attn_chunk: int = 0  # queries per attention chunk (see chunked_relative_attention); 0 = auto
    grad_checkpoint: bool = False  # recompute each block in backward (training only)
    arch: Literal["transformer"] = "transformer"  # tag for config.json; do not change

    def __post_init__(self) -> None:
        _check_types(self)
        if self.position not in ("relative", "absolute"):
            raise ConfigError(f"position must be 'relative' or 'absolute', not {self.position!r}")
        names = ("vocab_size", "n_layers", "n_heads", "d_model", "d_ff", "max_rel_dist")
        _check_positive(self, (*names, "max_abs_len"))
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("dropout must be in [0, 1)")
        if self.attn_chunk < 0:
            raise ConfigError("attn_chunk must be ≥ 0 (0 = automatic)")
        _check_positive(self, ("frame", "grain"))
        if self.grain > 1 and self.grain % self.frame:
            raise ConfigError(f"grain {self.grain} is not a multiple of frame {self.frame}")
        for name in ("concat_positions", "voice_dims", "rel_pitch_time", "pitch_tokens"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be ≥ 0 (0 = off)")
        if self.rel_pitch_time and (self.frame < 2 or self.pitch_tokens < 1):
            raise ConfigError(
                "rel_pitch_time needs a grid preset with voices and pitch tokens (e.g. jsb)"
            )
        if self.voice_dims and self.frame < 2:
            raise ConfigError(
                "voice_dims needs a token preset with voices (frame > 1, e.g. jsb); "
                "this one has none"
            )
        if self.token_dims < 1:
            raise ConfigError(
                f"concat_positions + voice_dims = {self.concat_positions + self.voice_dims} "
                f"leave no channel of d_model={self.d_model} for the token"
            )
        if self.tie_embeddings and self.token_dims != self.d_model:
            raise ConfigError("tie_embeddings needs the whole d_model for the token embedding")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def token_dims(self) -> int:
        """Channels of the token embedding: d_model minus what is concatenated to it."""
        return self.d_model - self.concat_positions - self.voice_dims


@dataclass(frozen=True)
class LSTMConfig:
    """Performance RNN baseline (Oore et al. 2018 / Magenta): embedding → LSTM stack → logits."""

    vocab_size: int  # number of token ids, specials included
    n_layers: int = 3  # stacked LSTM layers
    hidden: int = 512  # LSTM units per layer
    d_embed: int = 256  # token embedding width
    dropout: float = 0.1  # between LSTM layers and before the output projection
    arch: Literal["lstm"] = "lstm"  # tag for config.json; do not change

    def __post_init__(self) -> None:
        _check_types(self)
        _check_positive(self, ("vocab_size", "n_layers", "hidden", "d_embed"))
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("dropout must be in [0, 1)")


AnyConfig = ModelConfig | LSTMConfig

_KINDS = {"int": int, "float": float, "bool": bool, "str": str}


def _check_types(config: object) -> None:
    """Every field has its declared type (a config.json may say anything): ints are ints, not
    bools or floats; floats may be given as ints."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        kind = _KINDS.get(f.type if isinstance(f.type, str) else f.type.__name__)
        if kind is None:  # Literal[...] fields are checked by value
            continue
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise ConfigError(f"{f.name} must be of type {kind.__name__}, not {value!r}")


def _check_positive(config: object, names: tuple[str, ...]) -> None:
    for name in names:
        if getattr(config, name) <= 0:
            raise ConfigError(f"{name} must be positive, not {getattr(config, name)}")


def attention_span(config: AnyConfig) -> int | None:
    """Longest context a model of this config attends to without losing its position code:
    the relative table's span (the absolute table's, if shorter); None for the LSTM, whose
    state summarizes any past."""
    if not isinstance(config, ModelConfig):
        return None
    if config.position == "absolute":
        return min(config.max_rel_dist, config.max_abs_len)
    return config.max_rel_dist


# Named sizes. `tiny` is for tests (trains in seconds); `small` is the CPU default;
# `paper` follows the paper's piano experiments (6 layers, d_model 512, 8 heads).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "transformer": {
        "tiny": dict(n_layers=2, n_heads=4, d_model=64, d_ff=128, max_rel_dist=256, dropout=0.0),
        "small": dict(n_layers=4, n_heads=8, d_model=256, d_ff=1024, max_rel_dist=1024),
        "paper": dict(n_layers=6, n_heads=8, d_model=512, d_ff=2048, max_rel_dist=2048),
    },
    "lstm": {
        "tiny": dict(n_layers=2, hidden=64, d_embed=32, dropout=0.0),
        "small": dict(n_layers=3, hidden=512, d_embed=256),
        "paper": dict(n_layers=3, hidden=512, d_embed=256),
    },
}

_CLASSES: dict[str, type] = {"transformer": ModelConfig, "lstm": LSTMConfig}


def make_config(arch: str, preset: str, vocab_size: int, **overrides: Any) -> AnyConfig:
    """Build a config from an architecture name and a preset name.

    `arch` is "transformer", "transformer-absolute" or "lstm"; `overrides` win over the preset.
    """
    kind = "lstm" if arch == "lstm" else "transformer"
    if arch not in ("transformer", "transformer-absolute", "lstm"):
        raise ConfigError(f"unknown arch {arch!r} (transformer, transformer-absolute, lstm)")
    if preset not in PRESETS[kind]:
        raise ConfigError(f"unknown preset {preset!r} ({', '.join(PRESETS[kind])})")
    fields = dict(PRESETS[kind][preset])
    if arch == "transformer-absolute":
        fields["position"] = "absolute"
    fields.update(overrides)
    return config_from_dict({"arch": kind, "vocab_size": vocab_size, **fields})


def config_from_dict(d: dict[str, Any]) -> AnyConfig:
    """Inverse of `config_to_dict`; unknown keys are an error naming the key."""
    d = dict(d)
    arch = d.get("arch", "transformer")
    cls = _CLASSES.get(arch)
    if cls is None:
        raise ConfigError(f"unknown arch {arch!r} in model config")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"unknown model config key {unknown[0]!r} for arch {arch!r}")
    try:
        return cls(**d)
    except TypeError as e:  # a missing required field such as vocab_size
        raise ConfigError(f"bad model config: {e}") from None


def config_to_dict(config: AnyConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def save_config(config: AnyConfig, path: str | Path) -> None:
    Path(path).write_text(json.dumps(config_to_dict(config), indent=2) + "\n")


def load_config(path: str | Path) -> AnyConfig:
    return config_from_dict(json.loads(Path(path).read_text()))
