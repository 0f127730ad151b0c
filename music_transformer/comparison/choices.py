"""What a comparison is asked to compare, checked before any work: the models (two or more,
each a different model) and the soundfont."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from midi_data.render import RenderError, find_soundfont

from ..checkpoint import WEIGHTS_FILE, resolve_model_dir


class CompareError(ValueError):
    """A comparison that cannot start (bad models, no usable primer, existing report)."""


def check_models(models: Sequence[str | Path]) -> None:
    """Two or more models, no two the same: the same directory under two names, or two
    directories with identical weights, would give blind A/B pairs of identical clips."""
    if len(models) < 2:
        raise CompareError("--models needs at least two models, separated by commas")
    seen: dict[str, str] = {}
    for name in models:
        directory = resolve_model_dir(name)
        for key in (str(directory.resolve()), _weights_digest(directory)):
            if key in seen:
                raise CompareError(
                    f"--models {seen[key]} and {name} are the same model: a blind comparison "
                    "needs different models"
                )
            seen[key] = str(name)


def _weights_digest(directory: Path) -> str:
    digest = hashlib.sha256()
    with open(directory / WEIGHTS_FILE, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "weights:" + digest.hexdigest()


def checked_soundfont(soundfont: str | Path) -> Path:
    """The .sf2 file `soundfont` names (a file, or a folder holding one), else CompareError."""
    try:
        return find_soundfont(soundfont)
    except RenderError as e:
        raise CompareError(f"--soundfont: {e}") from None
