"""Checkpoint directories: config.json · model.safetensors · tokenizer.json (+ train_state.pt).

`config.json` holds {"model": <ModelConfig or LSTMConfig>, "tokenizer": {"preset": ...},
"version": <package version>, "training": {... summary and metrics ...}}. Weights are
safetensors only, so loading a model never runs code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model as st_load_model
from safetensors.torch import save_model as st_save_model
from torch import nn

from midi_data import load_tokenizer
from midi_data.files import atomic_write, atomic_write_json
from midi_data.tokenizer import package_version

from .model_checks import ModelCheckError, check_weights
from .nn.build import build_model
from .nn.config import AnyConfig, ConfigError, attention_span, config_from_dict, config_to_dict

BUNDLED_DIR = Path(__file__).parent / "bundled"
CONFIG_FILE, WEIGHTS_FILE, TOKENIZER_FILE = "config.json", "model.safetensors", "tokenizer.json"
OPTIONS_FILE = "options.json"  # a run directory's training options (written by the trainer)
# options that say where and how a run was launched, not how the model was trained
_LAUNCH_OPTIONS = ("data_dir", "out_dir", "device", "quiet", "resume", "tensorboard")


class CheckpointError(ValueError):
    """A model name or directory that cannot be loaded. The message is one line."""


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module under DDP / torch.compile wrappers (no `module.`/`_orig_mod.` keys)."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def save_checkpoint(
    directory: str | Path,
    model: nn.Module,
    config: AnyConfig,
    tokenizer: Any,
    training: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
    card: dict[str, Any] | None = None,
) -> Path:
    """Write a complete checkpoint directory; every file is written atomically.

    `dtype=torch.bfloat16` stores the weights in bf16 (half the size; for shipping).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = unwrap(model)
    if dtype is not None:
        model = _copy_as(model, config, dtype)
    atomic_write(directory / WEIGHTS_FILE, lambda p: _save_weights(model, p))
    atomic_write(directory / TOKENIZER_FILE, lambda p: tokenizer.save(p))
    meta = {
        "model": config_to_dict(config),
        "tokenizer": {"preset": tokenizer.preset, "vocab_size": tokenizer.vocab_size},
        "version": package_version(),
        "training": training or {},
    }
    if card:
        meta["card"] = card  # what a shipped model is for (`models` shows "suits")
    atomic_write_json(directory / CONFIG_FILE, meta)
    return directory


def _save_weights(model: nn.Module, path: Path) -> None:
    """safetensors' writer reports a full disk as its own SafetensorError: make it the
    OSError every other write gives (one line for the user, the temp file cleaned up)."""
    try:
        st_save_model(model, str(path))
    except SafetensorError as e:
        reason = str(e).splitlines()[0] if str(e) else "write failed"
        raise OSError(f"cannot write {WEIGHTS_FILE}: {reason}") from None


def export_checkpoint(
    src: str | Path,
    dst: str | Path,
    dtype: torch.dtype | None = torch.bfloat16,
    card: dict[str, Any] | None = None,
) -> Path:
    """Write the model of `src` (a run directory → its best checkpoint, or a checkpoint) to
    `dst` with its weights in `dtype` (bf16: half the size; for shipping), without the
    training state. config.json's "training" records where it came from and, when `src` is a
    run directory, the recipe it was trained with (its options, minus where it ran)."""
    loaded = load_checkpoint(src)
    training = dict(loaded.meta.get("training", {}))
    training["bundled_from"] = f"{Path(src).name}/{loaded.directory.name}"
    options_file = Path(src) / OPTIONS_FILE
    if options_file.is_file():
        options = json.loads(options_file.read_text(encoding="utf-8"))
        training["recipe"] = {k: v for k, v in options.items() if k not in _LAUNCH_OPTIONS}
    card = card if card is not None else loaded.meta.get("card")
    return save_checkpoint(
        dst, loaded.model, loaded.config, loaded.tokenizer, training, dtype=dtype, card=card
    )


def _copy_as(model: nn.Module, config: AnyConfig, dtype: torch.dtype) -> nn.Module:
    copy = build_model(config)
    copy.load_state_dict(model.state_dict())
    return copy.to(dtype)


def bundled_models() -> dict[str, Path]:
    """Names of the models shipped inside the package → their directories."""
    if not BUNDLED_DIR.is_dir():
        return {}
    return {
        p.name: p
        for p in sorted(BUNDLED_DIR.iterdir())
        if p.is_dir() and (p / CONFIG_FILE).is_file()
    }


def resolve_model_dir(name_or_dir: str | Path) -> Path:
    """A bundled model name, a checkpoint directory, or a run directory (its `best/`, then
    `last/` checkpoint) → the checkpoint directory. Raises CheckpointError."""
    bundled = bundled_models()
    if str(name_or_dir) in bundled:
        return bundled[str(name_or_dir)]
    path = Path(name_or_dir)
    if not path.exists():
        names = ", ".join(bundled) or "none bundled yet"
        raise CheckpointError(
            f"model {str(name_or_dir)!r} is neither a bundled model ({names}) nor a directory"
        )
    if not path.is_dir():
        raise CheckpointError(f"model path {path} is not a directory")
    for candidate in (path, path / "best", path / "last"):
        if (candidate / CONFIG_FILE).is_file():
            if not (candidate / WEIGHTS_FILE).is_file():
                raise CheckpointError(f"model directory {candidate} has no {WEIGHTS_FILE}")
            return candidate
    raise CheckpointError(f"{path} is not a model directory (no {CONFIG_FILE})")


@dataclass
class LoadedModel:
    model: nn.Module  # in eval mode, on the requested device
    config: AnyConfig
    tokenizer: Any  # midi_data tokenizer
    directory: Path
    meta: dict[str, Any] = field(default_factory=dict)  # the whole config.json

    @property
    def training_seq_len(self) -> int | None:
        """L of the run that trained it (None when config.json does not say)."""
        seq_len = self.meta.get("training", {}).get("seq_len")
        return int(seq_len) if seq_len else None

    @property
    def max_note_seconds(self) -> float | None:
        """The longest note the sampler lets sound (the training data's 99.9th percentile
        note length, recorded at training time), or None when config.json has none."""
        value = self.meta.get("training", {}).get("max_note_seconds")
        return float(value) if value else None

    @property
    def card_sampling(self) -> dict[str, Any]:
        """The sample settings the model's card recommends (`card.sampling`), or {}."""
        return (self.meta.get("card") or {}).get("sampling") or {}

    @property
    def temperature(self) -> float | None:
        """The sampling temperature the model's card recommends (chosen on its validation
        split, see MODEL_CARD.md), or None when it recommends none."""
        value = self.card_sampling.get("temperature")
        return float(value) if isinstance(value, int | float) and value >= 0 else None

    @property
    def guard(self) -> bool:
        """Whether the model's card recommends sampling with the guard on (chosen like the
        temperature, on its validation split)."""
        return self.card_sampling.get("guard") is True

    @property
    def sink_tokens(self) -> int | None:
        """The attention sinks the model's card recommends (chosen like the temperature, on
        its validation split), or None when it recommends none."""
        value = self.card_sampling.get("sink_tokens")
        return (
            value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None
        )

    def context_window(self, asked: int | None = None) -> int | None:
        """The window to sample with: `asked`, else the training length, else the model's
        attention span; None for the LSTM (its state needs no window)."""
        if self.config.arch != "transformer":
            return None
        return asked or self.training_seq_len or attention_span(self.config)


# config.json's tables and what each must be: "model" is required, the others optional
_META_TABLES = {"model": True, "training": False, "tokenizer": False, "card": False}


def read_meta(directory: str | Path) -> dict[str, Any]:
    """config.json of a model directory, its structure checked (CheckpointError naming the
    file): a JSON object with a "model" object and, when present, "training", "tokenizer"
    and "card" objects (the card's "sampling" too)."""
    path = resolve_model_dir(directory) / CONFIG_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"cannot read {path}: it is not UTF-8 text (JSON)") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"cannot read {path}: not valid JSON ({e})") from None
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e.strerror or e}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"bad {path}: expected a JSON object, got {_json_kind(meta)}")
    for key, required in _META_TABLES.items():
        if key not in meta and not required:
            continue
        if not isinstance(meta.get(key), dict):
            got = "nothing" if key not in meta else _json_kind(meta[key])
            raise CheckpointError(f"bad {path}: {key!r} must be a JSON object, got {got}")
    sampling = meta.get("card", {}).get("sampling", {})
    if not isinstance(sampling, dict):
        raise CheckpointError(f"bad {path}: card 'sampling' must be a JSON object")
    return meta


def _json_kind(value: Any) -> str:
    """JSON's name for what a value is (null, array, ...), for messages."""
    names = {type(None): "null", bool: "true/false", list: "an array", str: "a string"}
    return names.get(type(value), "a number" if isinstance(value, int | float) else "?")


def model_tokenizer(name_or_dir: str | Path) -> Any:
    """The tokenizer a bundled model or checkpoint/run directory was trained with."""
    directory = resolve_model_dir(name_or_dir)
    if not (directory / TOKENIZER_FILE).is_file():
        raise CheckpointError(f"model directory {directory} has no {TOKENIZER_FILE}")
    return load_tokenizer(directory / TOKENIZER_FILE)


def check_model_dir(directory: Path, config: AnyConfig, tokenizer: Any = None) -> None:
    """Refuse, in one line, a model directory whose weights would not fit in memory, do not
    match its config (names, shapes, truncation), or whose tokenizer has another vocabulary
    size than the model — before anything of the model's size is allocated."""
    try:
        check_weights(directory / WEIGHTS_FILE, config)
    except ModelCheckError as e:
        raise CheckpointError(f"model {directory}: {e}") from None
    if tokenizer is not None and tokenizer.vocab_size != config.vocab_size:
        raise CheckpointError(
            f"model {directory}: its tokenizer has {tokenizer.vocab_size} tokens but the model "
            f"{config.vocab_size}"
        )


def read_model(name_or_dir: str | Path) -> tuple[Path, dict[str, Any], AnyConfig]:
    """(directory, config.json's contents, the model's config) of a bundled name or a
    checkpoint/run directory (CheckpointError naming config.json when any is bad)."""
    directory = resolve_model_dir(name_or_dir)
    meta = read_meta(directory)
    try:
        config = config_from_dict(meta["model"])
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(f"bad model config in {directory / CONFIG_FILE}: {e}") from None
    return directory, meta, config


def load_checkpoint(name_or_dir: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Load model, config and tokenizer from a bundled name or a checkpoint/run directory."""
    directory, meta, config = read_model(name_or_dir)
    if not (directory / TOKENIZER_FILE).is_file():
        raise CheckpointError(f"model directory {directory} has no {TOKENIZER_FILE}")
    tokenizer = load_tokenizer(directory / TOKENIZER_FILE)
    check_model_dir(directory, config, tokenizer)
    model = build_model(config)
    try:
        st_load_model(model, str(directory / WEIGHTS_FILE), device="cpu")
    except Exception as e:  # corrupt file, wrong shapes: report, never a traceback
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"cannot load weights from {directory}: {reason}") from None
    model.to(device).eval()
    return LoadedModel(model, config, tokenizer, directory, meta)
