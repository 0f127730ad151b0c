"""Primers of a comparison: what each model hears, and the real music that follows the cut.

A primer file is cut at `primer_seconds`. Each model gets the file's first seconds through
its own tokenizer (`continuation.read_primer`, which keeps notes sounding at the cut open for
the model to close). The notes that START in the next `seconds` after the cut are the held-out
real continuation the generated ones are measured against.

With the default cut (no --primer-seconds), a file too short to hold `seconds` of music after
it is cut earlier (`primer_cut`), down to MIN_PRIMER_SECONDS, so that the real continuation
is as long as the generated ones wherever the piece allows; the page says so per primer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from midi_data.errors import MidiReadError
from midi_data.midi_io import read_score
from midi_data.notes import Notes, notes_from_score

from ..checkpoint import LoadedModel
from ..generation.primers import Primer, PrimerError, read_primer

MIN_PRIMER_SECONDS = 4.0  # an earlier cut keeps at least this much primer (2 bars of 4/4 at 120)


@dataclass
class ComparePrimer:
    """One usable primer file.

    Attributes:
        path: the file.
        number: 1-based position in the report.
        folder: the report's sub-folder for its files ("p01-chorale"; safe characters only).
        tracks: the file's MIDI track names (user data: escape before display).
        by_model: model label → the tokenized primer that model continues.
        notes: every note of the file in seconds (sustain folded, drums dropped).
        real: notes starting after the cut, shifted to start at 0 s (None if none).
        real_seconds: span of the real continuation, seconds.
        cut: where the file was cut, seconds (the primer is what comes before).
        requested_cut: the cut asked for (--primer-seconds or the default), seconds.
        piece_seconds: the file's length (end of its last note), seconds.
    """

    path: Path
    number: int
    folder: str
    tracks: list[str]
    by_model: dict[str, Primer] = field(default_factory=dict)
    notes: Notes | None = None
    real: Notes | None = None
    real_seconds: float = 0.0
    cut: float = 0.0
    requested_cut: float = 0.0
    piece_seconds: float = 0.0

    def cut_note(self, seconds: float | None) -> str | None:
        """What the page says about this primer's cut and real continuation, if anything.

        Args:
            seconds: seconds each model was asked to write (None: a token budget).
        """
        real = f"{self.real_seconds:.1f} s of the real piece follow"
        if self.cut < self.requested_cut - 1e-6:
            note = f"Primer cut at {self.cut:.1f} s (not {self.requested_cut:g} s) so that {real}"
            if seconds is not None and self.real_seconds < seconds - 0.05:
                note += f" (the file ends there; the models wrote {seconds:g} s)"
            return note + "."
        if self.real is not None and seconds is not None and self.real_seconds < seconds - 0.05:
            return (
                f"Primer cut at {self.cut:g} s: only {real} (the file ends there), against "
                f"{seconds:g} s from each model."
            )
        return None


def slug(name: str, limit: int = 32) -> str:
    """A file-name-safe version of `name` (ASCII letters, digits, '-', '_', '.')."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return text[:limit] or "primer"


def notes_after(notes: Notes, cut: float, seconds: float) -> Notes:
    """Notes starting in [cut, cut + seconds), shifted by −cut, ends clipped to `seconds`."""
    keep = (notes.start >= cut - 1e-9) & (notes.start < cut + seconds)
    part = notes.take(np.nonzero(keep)[0])
    return Notes(part.start - cut, np.minimum(part.end - cut, seconds), part.pitch, part.velocity)


def notes_before(notes: Notes, cut: float) -> Notes:
    """Notes starting before `cut`, ends clipped to it."""
    part = notes.take(np.nonzero(notes.start < cut)[0])
    return Notes(part.start, np.minimum(part.end, cut), part.pitch, part.velocity)


def primer_cut(
    piece_seconds: float,
    requested: float,
    seconds: float | None,
    min_primer: float = MIN_PRIMER_SECONDS,
) -> float:
    """Where to cut a primer so that `seconds` of the real piece follow, if the piece allows.

    Never later than `requested`, and never earlier than `min_primer` (or `requested`, if
    that is earlier still): a 12 s file asked for 15 s after a 10 s cut is cut at 4 s (8 s
    follow); a 30 s file keeps its 10 s cut.

    Args:
        piece_seconds: the file's length (end of its last note), seconds.
        requested: the cut asked for, seconds.
        seconds: length of each generated continuation, seconds (None: unknown, keep the cut).
        min_primer: shortest primer an earlier cut leaves, seconds.
    """
    if seconds is None or piece_seconds - requested >= seconds or piece_seconds <= min_primer:
        return requested  # long enough already, or too short for any music to follow a cut
    return max(piece_seconds - seconds, min(requested, min_primer))


def load_primer(
    path: Path,
    number: int,
    models: dict[str, LoadedModel],
    primer_seconds: float,
    seconds: float | None,
    move_cut: bool = False,
) -> ComparePrimer:
    """Read and tokenize one primer for every model.

    Args:
        path: the primer file.
        number: its 1-based position in the report.
        models: label → loaded model.
        primer_seconds: where to cut, seconds.
        seconds: length of the real continuation to keep (None: to the end of the file).
        move_cut: cut earlier when the file is too short for `seconds` (see `primer_cut`).

    Raises:
        PrimerError: the file cannot be read or has no notes before the cut.
    """
    try:
        score = read_score(path)
        notes = notes_from_score(score)
    except MidiReadError as e:
        raise PrimerError(str(e) if str(path) in str(e) else f"{path}: {e}") from None
    except Exception as e:  # a reader failure on an untrusted file is the file's fault
        raise PrimerError(f"{path}: cannot read ({type(e).__name__}: {e})") from None
    tracks = [t.name for t in score.tracks if t.name]
    end = float(notes.end.max()) if len(notes) else 0.0
    cut = primer_cut(end, primer_seconds, seconds) if move_cut else primer_seconds
    item = ComparePrimer(path, number, f"p{number:02d}-{slug(path.stem)}", tracks, notes=notes)
    item.cut, item.requested_cut, item.piece_seconds = cut, primer_seconds, end
    for label, loaded in models.items():
        item.by_model[label] = read_primer(loaded.tokenizer, path, cut, file_time=True)
    span = max(end - cut, 0.0) if seconds is None else seconds
    real = notes_after(notes, cut, span)
    if len(real):
        item.real = real
        item.real_seconds = min(span, max(end - cut, 0.0))
    return item
