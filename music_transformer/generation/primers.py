"""Primer MIDI files → token primers: finding them, reading them, cutting them to a length.

Every failure is a PrimerError (a ValueError) whose one-line message names the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from midi_data.errors import MidiReadError
from midi_data.tempo_map import FileClock

MIDI_SUFFIXES = (".mid", ".midi")
# A primer spanning more music than this is a corrupt file (a time that jumps by days), not a
# piece: its output would be a MIDI file other programs refuse.
MAX_PRIMER_SECONDS = 4 * 3600.0


class PrimerError(ValueError):
    """A primer that cannot be used (missing, not MIDI, no notes). The message names it."""


@dataclass
class Primer:
    """A primer ready for the model: `ids` starts with BOS; `seconds` of music it spans in
    the model's time; `clock` (with `read_primer(..., file_time=True)`) maps the model's time
    to its file's seconds (`midi_data.tempo_map.FileClock`: the identity unless a beat-time
    tokenizer reads a file whose tempo is not 120 BPM)."""

    path: Path | None
    ids: list[int]
    seconds: float
    clock: FileClock | None = None

    @property
    def heard_seconds(self) -> float:
        """Where the primer ends in its file's seconds."""
        return self.clock.file_seconds(self.seconds) if self.clock else self.seconds

    @property
    def rate(self) -> float:
        """The file's seconds per model second after the primer (its tempo at the cut)."""
        return self.clock.rate(self.seconds) if self.clock else 1.0


def find_primers(paths: Sequence[str | Path]) -> list[Path]:
    """Expand files and folders (searched recursively for .mid/.midi) into primer files.

    Raises:
        PrimerError: a path does not exist, or a folder holds no MIDI file.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES
            )
            if not files:
                raise PrimerError(f"primer folder {path} holds no .mid or .midi file")
            found.extend(files)
        elif path.exists():
            found.append(path)
        else:
            raise PrimerError(f"primer {path} does not exist")
    return list(dict.fromkeys(found))  # a file named twice is used once


def read_primer(
    tokenizer: Any,
    path: str | Path,
    primer_seconds: float | None = None,
    file_time: bool = False,
) -> Primer:
    """Tokenize a primer MIDI file (optionally only its first `primer_seconds`).

    The whole file goes through the tokenizer's own (lenient) reader; `primer_seconds` then
    cuts the token sequence before the first time step that would pass that many seconds, so
    notes still sounding at the cut stay open and the model decides when they end.
    `primer_seconds` are the model's seconds, or with `file_time` the file's (its tempo map:
    what matters when the continuation is spliced onto the file, see `FileClock`); with
    `file_time` the Primer also keeps the file's clock.

    Raises:
        PrimerError: the file is missing, is not MIDI, or holds no notes (in that span).
    """
    path = Path(path)
    if not path.exists():
        raise PrimerError(f"primer {path} does not exist")
    if path.is_dir():
        raise PrimerError(f"primer {path} is a directory, not a MIDI file")
    try:
        events = list(tokenizer.encode(path))
    except MidiReadError as e:
        raise PrimerError(_name_file(str(e), path)) from None
    except Exception as e:  # any reader failure on an untrusted file is the file's fault
        reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise PrimerError(f"{path}: cannot read ({type(e).__name__}: {reason})") from None
    clock = _clock(tokenizer, path) if file_time else None
    if primer_seconds is not None:
        cut = clock.model_seconds(primer_seconds) if clock else primer_seconds
        events = crop_tokens(events, tokenizer.token_seconds, cut)
    if not events:
        span = f" in its first {primer_seconds:g} s" if primer_seconds else ""
        raise PrimerError(f"{path}: no notes to continue{span}")
    seconds = float(tokenizer.seconds(events))
    if seconds > MAX_PRIMER_SECONDS:
        raise PrimerError(
            f"{path}: spans {seconds / 3600:.1f} hours of music, more than a primer may "
            f"({MAX_PRIMER_SECONDS / 3600:g} h; likely corrupt); --primer-seconds uses its start"
        )
    return Primer(path, [tokenizer.bos_id, *events], seconds, clock)


def _clock(tokenizer: Any, path: Path) -> FileClock:
    """The file's clock; the model's own when mido cannot read the file event by event (the
    output is then written from the decoded tokens, at the model's tempo)."""
    try:
        return FileClock(tokenizer, path)
    except Exception:  # mido's failures on a file symusic read leniently
        return FileClock(tokenizer)


def crop_tokens(ids: Sequence[int], token_seconds: Any, seconds: float) -> list[int]:
    """The longest prefix of `ids` spanning at most `seconds` of music.

    Args:
        ids: event token ids.
        token_seconds: (V,) seconds each id advances.
        seconds: the span to keep, > 0.
    """
    elapsed = np.cumsum(
        np.asarray(token_seconds, dtype=np.float64)[np.asarray(ids, dtype=np.int64)]
    )
    over = np.nonzero(elapsed > seconds + 1e-9)[0]
    return list(ids[: int(over[0])] if len(over) else ids)


def _name_file(message: str, path: Path) -> str:
    return message if str(path) in message else f"{path}: {message}"
