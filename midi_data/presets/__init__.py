"""Tokenizer presets, one module each. To add a preset, write a `Tokenizer` subclass in its
own module and register it in `REGISTRY` below."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

from ..tokenizer import Tokenizer, read_tokenizer_json
from .jsb import JsbTokenizer
from .performance import PerformanceTokenizer
from .score import ScoreTokenizer

REGISTRY: dict[str, type[Tokenizer]] = {
    PerformanceTokenizer.preset: PerformanceTokenizer,
    ScoreTokenizer.preset: ScoreTokenizer,
    JsbTokenizer.preset: JsbTokenizer,
}

PRESETS: tuple[str, ...] = tuple(REGISTRY)


def make_tokenizer(preset: str = "performance", **options: object) -> Tokenizer:
    """A fresh tokenizer of the named preset (see `PRESETS`)."""
    if preset not in REGISTRY:
        raise ValueError(f"unknown tokenizer preset {preset!r} (choose from {', '.join(REGISTRY)})")
    return REGISTRY[preset](**options)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """The tokenizer saved in `path` (a tokenizer.json, or a directory holding one).

    The preset is rebuilt and its vocabulary checked against the saved one, so ids are
    identical to those of the saved tokenizer — or a ValueError says why they would not be.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    meta = read_tokenizer_json(path)
    preset = meta["preset"]
    if preset not in REGISTRY:
        raise ValueError(f"tokenizer file {path}: unknown preset {preset!r}")
    tokenizer = make_tokenizer(preset, **meta.get("options", {}))
    if tokenizer.vocab != meta["vocab"]:
        raise ValueError(
            f"tokenizer file {path}: preset {preset!r} now builds a different vocabulary "
            f"(saved with miditok {meta.get('miditok_version')}, "
            f"installed {metadata.version('miditok')})"
        )
    return tokenizer
