"""Does a model continue a pianist's primer like a pianist? Measured against the real
continuation of the same piece, one record per primer, with the targets of the piano model's
issue. Pure numpy on `Notes`: no model here (recipes/piano/pianist.py runs the models).

Inputs of one record, all `Notes` in seconds:
    primer     the notes the model heard (any times; only their pitches count here).
    generated  the model's continuation, times relative to the cut (it starts at 0 s).
    real       what the piece really plays after the same cut, relative to the cut too.
    piece      every note of the real piece (for its longest note).
`generated` and `real` should span the same `seconds` (notes starting in [0, seconds)).

Targets (`TARGETS`; a target that cannot be measured is None, never a failure):
    dynamics_std   velocity std of generated ≥ 0.6 × that of real (a pianist shapes dynamics;
                   a model at fixed velocity scores 0).
    dynamics_mean  |mean velocity of generated − of real| ≤ 15 velocity units.
    density        notes per second of generated / of real within 0.7 … 1.3.
    ioi            overlapping area Σ min(p, q) of the two inter-onset-interval histograms
                   (`midi_data.features` bins) ≥ 0.6.
    pitch_class    Pearson correlation of the primer's pitch-class histogram with that of
                   every 30-s segment of generated ≥ 0.7 (stays in the primer's key); a segment
                   with fewer than 8 notes is None, not failed.
    long_note      the longest generated note ≤ the longest note of the whole real piece
                   + 2 s (no stuck notes).
A silent continuation has no velocities to measure: the density target fails it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from midi_data.features import piece_features
from midi_data.notes import Notes

from .metrics import histogram_overlap

MIN_STD_RATIO = 0.6  # dynamics_std: generated velocity std ≥ this × real
MAX_MEAN_DIFF = 15.0  # dynamics_mean: MIDI velocity units
DENSITY_RANGE = (0.7, 1.3)  # density: generated / real notes per second
MIN_IOI_OVERLAP = 0.6  # ioi: overlapping area of the IOI histograms
MIN_PC_CORR = 0.7  # pitch_class: Pearson r with the primer, in every segment
SEGMENT_SECONDS = 30.0  # pitch_class: segment length
MIN_SEGMENT_NOTES = 8  # pitch_class: fewer notes than this → the segment is None
LONG_NOTE_MARGIN = 2.0  # long_note: seconds allowed beyond the piece's longest note

TARGETS = {
    "dynamics_std": f"velocity std ≥ {MIN_STD_RATIO:g} × real",
    "dynamics_mean": f"mean velocity within ±{MAX_MEAN_DIFF:g} of real",
    "density": f"notes/s within {DENSITY_RANGE[0]:g}–{DENSITY_RANGE[1]:g} × real",
    "ioi": f"IOI histogram overlap ≥ {MIN_IOI_OVERLAP:g}",
    "pitch_class": f"pitch-class r with primer ≥ {MIN_PC_CORR:g} per {SEGMENT_SECONDS:g}-s segment",
    "long_note": f"longest note ≤ piece's longest + {LONG_NOTE_MARGIN:g} s",
}
# The measure summarizing each target in the aggregate (its median is reported).
TARGET_METRIC = {
    "dynamics_std": "velocity_std_ratio",
    "dynamics_mean": "velocity_mean_diff",
    "density": "density_ratio",
    "ioi": "ioi_overlap",
    "pitch_class": "pitch_class_corr_min",
    "long_note": "longest_excess",
}


@dataclass
class PianistRecord:
    """The measures of one primer's continuation (None: undefined, e.g. too few notes).

    Attributes:
        seconds: span both continuations are measured over, seconds.
        notes_generated, notes_real: notes starting in [0, seconds).
        velocity_std_generated, velocity_std_real: population std of MIDI velocity (≥ 2 notes).
        velocity_std_ratio: generated / real std (None when real's is 0).
        velocity_mean_diff: mean velocity of generated − of real, velocity units (signed).
        density_generated, density_real: notes per second over `seconds`.
        density_ratio: generated / real notes per second (None when real has no note).
        ioi_overlap: overlapping area of the IOI histograms, in [0, 1].
        pitch_class_corr: per 30-s segment of generated, Pearson r with the primer's
            pitch-class histogram, in [−1, 1] (None: < 8 notes or a flat histogram).
        pitch_class_corr_real: the same for the real continuation (the piece's own drift).
        pitch_class_corr_min: the lowest measured value of `pitch_class_corr`.
        longest_generated: the longest generated note, seconds (ends clipped at `seconds`).
        longest_piece: the longest note of the whole real piece, seconds.
        longest_excess: longest_generated − longest_piece, seconds (target ≤ 2).
        passed: target name (`TARGETS`) → True / False / None (not measurable).
    """

    seconds: float
    notes_generated: int
    notes_real: int
    velocity_std_generated: float | None
    velocity_std_real: float | None
    velocity_std_ratio: float | None
    velocity_mean_diff: float | None
    density_generated: float
    density_real: float
    density_ratio: float | None
    ioi_overlap: float | None
    pitch_class_corr: list[float | None]
    pitch_class_corr_real: list[float | None]
    pitch_class_corr_min: float | None
    longest_generated: float | None
    longest_piece: float
    longest_excess: float | None
    passed: dict[str, bool | None]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def _velocity_std(notes: Notes) -> float | None:
    return float(np.std(notes.velocity)) if len(notes) >= 2 else None


def _check(value: float | None, ok: bool) -> bool | None:
    return None if value is None else bool(ok)


def pitch_class_histogram(notes: Notes) -> np.ndarray:
    """(12,) float64 note counts per pitch class (C = 0), one count per note."""
    return np.bincount(np.asarray(notes.pitch, np.int64) % 12, minlength=12).astype(np.float64)


def pitch_class_correlation(primer: Notes, part: Notes) -> float | None:
    """Pearson r of the two pitch-class histograms; None if `part` has fewer than
    MIN_SEGMENT_NOTES notes or either histogram is flat (r undefined)."""
    if len(part) < MIN_SEGMENT_NOTES:
        return None
    p, q = pitch_class_histogram(primer), pitch_class_histogram(part)
    if p.std() == 0 or q.std() == 0:
        return None
    return float(np.corrcoef(p, q)[0, 1])


def segments(notes: Notes, seconds: float, length: float = SEGMENT_SECONDS) -> list[Notes]:
    """The notes starting in each [k·length, (k+1)·length) of [0, seconds): ⌈seconds/length⌉
    parts (the last one may be shorter)."""
    count = max(math.ceil(seconds / length - 1e-9), 1)
    index = np.floor(np.asarray(notes.start, float) / length).astype(np.int64)
    return [notes.take(np.nonzero(index == k)[0]) for k in range(count)]


def _segment_corr(primer: Notes, notes: Notes, seconds: float) -> list[float | None]:
    return [pitch_class_correlation(primer, part) for part in segments(notes, seconds)]


def _longest(notes: Notes) -> float | None:
    return float((notes.end - notes.start).max()) if len(notes) else None


def _ioi_overlap(generated: Notes, real: Notes, seconds: float) -> float | None:
    if len(generated) < 2 or len(real) < 2:
        return None
    g, r = piece_features(generated, seconds), piece_features(real, seconds)
    return histogram_overlap(g.histograms["ioi"], r.histograms["ioi"])


def pianist_record(
    primer: Notes, generated: Notes, real: Notes, piece: Notes, seconds: float
) -> PianistRecord:
    """Measure one continuation against the real one (see the module docstring).

    Args:
        primer: the primer's notes, seconds (only pitches are used).
        generated: the model's continuation, seconds from the cut.
        real: the piece's real continuation, seconds from the cut.
        piece: all notes of the real piece, seconds.
        seconds: the span both continuations cover, > 0; notes starting later are ignored.
    """
    generated = generated.take(np.nonzero(generated.start < seconds)[0])
    real = real.take(np.nonzero(real.start < seconds)[0])
    std_g, std_r = _velocity_std(generated), _velocity_std(real)
    std_ratio = _ratio(std_g, std_r)
    mean_diff = (
        float(generated.velocity.mean() - real.velocity.mean())
        if len(generated) and len(real)
        else None
    )
    dens_g, dens_r = len(generated) / seconds, len(real) / seconds
    dens_ratio = _ratio(dens_g, dens_r)
    ioi = _ioi_overlap(generated, real, seconds)
    corr = _segment_corr(primer, generated, seconds)
    measured = [c for c in corr if c is not None]
    corr_min = min(measured) if measured else None
    longest_g, longest_p = _longest(generated), _longest(piece) or 0.0
    excess = None if longest_g is None else longest_g - longest_p
    lo, hi = DENSITY_RANGE
    passed = {
        "dynamics_std": _check(std_ratio, std_ratio is not None and std_ratio >= MIN_STD_RATIO),
        "dynamics_mean": _check(
            mean_diff, mean_diff is not None and abs(mean_diff) <= MAX_MEAN_DIFF
        ),
        "density": _check(dens_ratio, dens_ratio is not None and lo <= dens_ratio <= hi),
        "ioi": _check(ioi, ioi is not None and ioi >= MIN_IOI_OVERLAP),
        "pitch_class": _check(corr_min, corr_min is not None and corr_min >= MIN_PC_CORR),
        "long_note": _check(excess, excess is not None and excess <= LONG_NOTE_MARGIN + 1e-9),
    }
    return PianistRecord(
        seconds=float(seconds),
        notes_generated=len(generated),
        notes_real=len(real),
        velocity_std_generated=std_g,
        velocity_std_real=std_r,
        velocity_std_ratio=std_ratio,
        velocity_mean_diff=mean_diff,
        density_generated=dens_g,
        density_real=dens_r,
        density_ratio=dens_ratio,
        ioi_overlap=ioi,
        pitch_class_corr=corr,
        pitch_class_corr_real=_segment_corr(primer, real, seconds),
        pitch_class_corr_min=corr_min,
        longest_generated=longest_g,
        longest_piece=longest_p,
        longest_excess=excess,
        passed=passed,
    )


def _median(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(kept)) if kept else None


def aggregate(records: Sequence[PianistRecord]) -> dict[str, Any]:
    """Per target: the median of its measure (`TARGET_METRIC`) and the share of primers that
    meet it among those where it is measurable; plus the share meeting every measurable one.

    Returns:
        {"primers": N, "median": {measure: float | None}, "pass_share": {target: float in
        [0, 1] | None}, "measured": {target: primers measured}, "all_pass_share": float | None}.
    """
    measures = [*TARGET_METRIC.values(), "velocity_std_generated", "velocity_std_real"]
    median = {m: _median([getattr(r, m) for r in records]) for m in measures}
    median["pitch_class_corr_real_min"] = _median(
        [min((c for c in r.pitch_class_corr_real if c is not None), default=None) for r in records]
    )
    share: dict[str, float | None] = {}
    measured: dict[str, int] = {}
    for target in TARGETS:
        verdicts = [r.passed[target] for r in records if r.passed[target] is not None]
        measured[target] = len(verdicts)
        share[target] = sum(verdicts) / len(verdicts) if verdicts else None
    every = [all(v for v in r.passed.values() if v is not None) for r in records]
    return {
        "primers": len(records),
        "median": median,
        "pass_share": share,
        "measured": measured,
        "all_pass_share": sum(every) / len(every) if every else None,
    }
