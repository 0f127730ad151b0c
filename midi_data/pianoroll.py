"""Piano-roll pictures a listener can read: seconds, bars, pitch names, where the primer ends.

One horizontal bar per note (high pitches at the top), its opacity following the velocity.
Notes before `primer_end` are blue, notes after it orange; the primer's region is shaded and
a red line, named in the legend with its time, marks where the model took over. The bottom
axis is in seconds, the left one names pitches (C4 = MIDI 60, middle C), and where the caller
knows the piece's meter (`bars`: downbeat times) grey bar lines cross the roll and the top axis
numbers the bars. Black-key rows are tinted and every C has a line, as on a keyboard.

Drawn with matplotlib's object API, never pyplot: no global figure state, so rolls can be
drawn beside other threads, and no display is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pretty_midi
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MultipleLocator

from .files import atomic_write
from .notes import Notes, notes_from_pretty

PRIMER_COLOR = "#3465a4"  # notes of the primer
NEW_COLOR = "#e66e14"  # notes the model wrote (or the real piece, after the cut)
MARK_COLOR = "#c81e1e"  # the line where the primer ends
SHADE_COLOR = "#dfe6f0"  # background of the primer's region
BLACK_KEY_COLOR = "#f1f1f1"  # background of black-key rows
C_LINE_COLOR = "#c8c8c8"  # line under every C
BAR_COLOR = "#8a9099"  # bar lines
BLACK_KEYS = (1, 3, 6, 8, 10)  # pitch classes
WIDTH_PX, HEIGHT_PX, DPI = 1160, 340, 100  # the page shows rolls at most 1160 px wide
MIN_PITCHES = 24  # rows shown at least (two octaves), centred on the notes
TIME_STEPS = (1, 2, 5, 10, 20, 30, 60, 120, 300)  # seconds between labelled ticks
MAX_TIME_TICKS = 16
MAX_BAR_LABELS = 24


def pitch_name(pitch: int) -> str:
    """Scientific pitch notation with sharps: 60 → "C4" (middle C), 61 → "C#4", 21 → "A0"."""
    return pretty_midi.note_number_to_name(int(pitch))


def pitch_range(notes: Notes, min_pitches: int = MIN_PITCHES) -> tuple[int, int]:
    """(lowest, highest) pitch row to show: the notes' range, 2 rows spare on each side, at
    least `min_pitches` rows, within 0..127."""
    pitch = np.asarray(notes.pitch, int)
    low, high = (int(pitch.min()), int(pitch.max())) if len(pitch) else (60, 60)
    spare = max(min_pitches - (high - low + 1), 0)
    return max(low - 2 - spare // 2, 0), min(high + 2 + spare - spare // 2, 127)


def pitch_ticks(low: int, high: int) -> list[int]:
    """Pitches to name on the vertical axis: every C, E and G up to four octaves of range
    (about 15 labels), every C beyond that."""
    classes = (0, 4, 7) if high - low <= 48 else (0,)
    return [p for p in range(low, high + 1) if p % 12 in classes]


def time_step(seconds: float) -> float:
    """Seconds between labelled time ticks: the smallest of TIME_STEPS giving at most
    MAX_TIME_TICKS ticks."""
    return next((s for s in TIME_STEPS if seconds / s <= MAX_TIME_TICKS), TIME_STEPS[-1])


def piano_roll_figure(
    notes: Notes | pretty_midi.PrettyMIDI,
    primer_end: float | None = None,
    *,
    bars: Sequence[float] | np.ndarray | None = None,
    seconds: float | None = None,
    pitches: tuple[int, int] | None = None,
    width_px: int = WIDTH_PX,
    height_px: int = HEIGHT_PX,
) -> Figure:
    """Draw notes as a piano roll.

    Args:
        notes: a PrettyMIDI object (drums dropped, sustain folded) or `Notes` in seconds.
        primer_end: seconds where the primer ends (None: no primer, every note is orange).
        bars: downbeat times in seconds, bar 1 first (None or empty: no meter, no bar lines).
        seconds: the time axis' end (default: the last note's end or primer_end); give rolls
            that a listener compares the same value, and the same `pitches`.
        pitches: (lowest, highest) pitch row (default `pitch_range(notes)`).
        width_px, height_px: picture size in pixels (at DPI dots per inch).

    Returns:
        The figure: axes[0] is the roll (x: "time (s)", y: "pitch" named by `pitch_name`);
        with bars, a secondary top axis numbers them.
    """
    if isinstance(notes, pretty_midi.PrettyMIDI):
        notes = notes_from_pretty(notes)
    start, end = np.asarray(notes.start, float), np.asarray(notes.end, float)
    pitch, velocity = np.asarray(notes.pitch, int), np.asarray(notes.velocity, int)
    if seconds is None:
        seconds = max(float(end.max()) if len(end) else 0.0, primer_end or 0.0, 1.0)
    low, high = pitches or pitch_range(notes)

    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # a canvas of its own: no pyplot, no display
    ax = fig.add_subplot()
    ax.set_xlim(0, seconds)
    ax.set_ylim(low - 0.5, high + 0.5)
    black = [p for p in range(low, high + 1) if p % 12 in BLACK_KEYS]
    ax.barh(black, seconds, height=1.0, left=0, color=BLACK_KEY_COLOR, zorder=0)
    c_rows = [p - 0.5 for p in range(low, high + 1) if p % 12 == 0]
    ax.hlines(c_rows, 0, seconds, color=C_LINE_COLOR, linewidth=0.7, zorder=0.5)
    handles: list = []
    if primer_end is not None:
        ax.axvspan(0, primer_end, color=SHADE_COLOR, alpha=0.6, linewidth=0, zorder=0.2)
    bars = np.asarray([] if bars is None else bars, float)
    bars = bars[(bars >= 0) & (bars <= seconds)]
    if len(bars):
        ax.vlines(bars, low - 0.5, high + 0.5, color=BAR_COLOR, linewidth=0.8, zorder=1)
        handles.append(Line2D([], [], color=BAR_COLOR, linewidth=0.8, label="bar lines"))
        _number_bars(ax, bars)

    shown = (pitch >= low) & (pitch <= high)
    is_primer = start < primer_end - 1e-6 if primer_end is not None else np.zeros(len(start), bool)
    colors = np.array([to_rgba(NEW_COLOR), to_rgba(PRIMER_COLOR)])[is_primer.astype(int)]
    colors[:, 3] = 0.45 + 0.55 * np.clip(velocity, 0, 127) / 127  # softer notes are paler
    e = np.maximum(end, start + 0.02)  # a very short note still shows
    boxes = np.stack(
        [
            np.stack([start, pitch - 0.4], 1),
            np.stack([e, pitch - 0.4], 1),
            np.stack([e, pitch + 0.4], 1),
            np.stack([start, pitch + 0.4], 1),
        ],
        axis=1,
    )  # (N, 4 corners, xy)
    ax.add_collection(
        PolyCollection(boxes[shown], facecolors=colors[shown], linewidths=0, zorder=2)
    )
    if primer_end is not None:
        ax.axvline(primer_end, color=MARK_COLOR, linewidth=2, zorder=3)
        mark = f"primer ends at {primer_end:.1f} s"
        handles = [  # a colour in the legend only when the roll shows it
            *([Patch(color=PRIMER_COLOR, label="primer")] if is_primer.any() else []),
            *([Patch(color=NEW_COLOR, label="continuation")] if not is_primer.all() else []),
            Line2D([], [], color=MARK_COLOR, linewidth=2, label=mark),
            *handles,
        ]

    step = time_step(seconds)
    ax.xaxis.set_major_locator(MultipleLocator(step))
    if step > 1:
        ax.xaxis.set_minor_locator(MultipleLocator(1 if step <= 10 else step / 5))
    ax.set_xlabel("time (s)")
    ticks = pitch_ticks(low, high)
    ax.set_yticks(ticks, [pitch_name(p) for p in ticks])
    ax.set_ylabel("pitch")
    ax.tick_params(labelsize=9)
    if handles:
        fig.legend(handles=handles, loc="outside upper right", ncols=len(handles),
                   frameon=False, fontsize=9)  # fmt: skip
    return fig


def _number_bars(ax, bars: np.ndarray) -> None:
    """Bar numbers on a top axis (bar 1 at the first downbeat), every k-th bar when many."""
    every = int(np.ceil(len(bars) / MAX_BAR_LABELS))
    top = ax.secondary_xaxis("top")
    keep = np.arange(0, len(bars), every)
    top.set_xticks(bars[keep], [str(i + 1) for i in keep])
    top.tick_params(labelsize=8, length=3)
    top.set_xlabel("bar", fontsize=9, labelpad=2)


def save_piano_roll(
    midi: pretty_midi.PrettyMIDI | Notes,
    path: str | Path,
    primer_end: float | None = None,
    **options,
) -> Path:
    """Draw `midi` (see `piano_roll_figure` for the options) and write it as PNG, atomically."""
    fig = piano_roll_figure(midi, primer_end, **options)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))
    return Path(path)
