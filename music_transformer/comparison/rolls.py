"""The piano rolls of one primer, drawn on shared axes so a listener can compare them.

Every roll of a primer shows the same pitch rows; the continuations and the real piece also
share the time axis (same seconds per pixel, same end), so A and B line up bar for bar. The
primer's own roll spans just the primer. Bar lines come from the primer file's meter, in the
time each roll is drawn in (`bars.bar_times`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from midi_data.notes import Notes
from midi_data.pianoroll import pitch_range, save_piano_roll
from midi_data.tokenizer import Tokenizer

from .bars import bar_times


@dataclass
class Roll:
    """One picture to draw.

    Attributes:
        notes: what to draw, seconds.
        path: the PNG to write.
        primer_end: where the primer ends, seconds.
        tokenizer: whose decoding `notes` come from (its time), None for the file's seconds.
        own_axis: the time axis ends at this roll's end instead of the shared one.
    """

    notes: Notes
    path: Path
    primer_end: float
    tokenizer: Tokenizer | None = None
    own_axis: bool = False


def _end(roll: Roll) -> float:
    ends = np.asarray(roll.notes.end, float)
    return max(float(ends.max()) if len(ends) else 0.0, roll.primer_end, 1.0)


def draw_rolls(primer_file: Path, rolls: Sequence[Roll]) -> None:
    """Write every roll of one primer (see the module docstring)."""
    if not rolls:
        return
    pitches = pitch_range(Notes.concat([r.notes for r in rolls]))
    shared = max((_end(r) for r in rolls if not r.own_axis), default=None)
    until = max(_end(r) for r in rolls)
    bars: dict[str | None, np.ndarray] = {}  # by the time they are in: tokenizer preset or file
    for roll in rolls:
        key = roll.tokenizer.preset if roll.tokenizer is not None else None
        if key not in bars:
            bars[key] = bar_times(primer_file, until, roll.tokenizer)
        seconds = _end(roll) if roll.own_axis or shared is None else shared
        save_piano_roll(
            roll.notes, roll.path, roll.primer_end, bars=bars[key], seconds=seconds, pitches=pitches
        )
