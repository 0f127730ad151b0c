"""Judging continuations against a reference corpus's bands.

A band is the [lo, hi] percentile range (1–99 by default) of one statistic over every real
segment; register drift, a distance, has only its upper edge (staying in the primer's register
is never wrong). A segment is outside when any measured statistic falls outside its band. A stretch
(the first `stretch_seconds` after the primer; 180 s by default) HOLDS when at most
`max_outside` of its segments are outside and its whole segments cover at least
`min_seconds` (150 s). The real corpus's own holds rate is the same rule applied to each real
piece's music after its first 12 s (pieces too short to reach `min_seconds` are not counted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from midi_data.errors import MidiReadError
from midi_data.midi_io import read_score
from midi_data.notes import notes_from_score

from .reference import Corpus, JudgeError
from .stats import SEGMENT_SECONDS, STATS, longest_silence, mean_pitch, piece_segments

SILENCE_FLAG_SECONDS = 3.0
# More than this relative difference between the seconds a sidecar says were generated and
# the seconds the file plays them over is reported (a writer's tempo map gone wrong).
TIMING_TOLERANCE = 0.05
UPPER_ONLY = ("register_drift",)  # distances: their band starts at 0
MAX_SECONDS = 86_400.0  # a sidecar claiming more than a day of music is not believed


@dataclass(frozen=True)
class Rule:
    """How the judge decides (all times in seconds)."""

    low: float = 1.0  # percentile of the real segments below which a value is outside
    high: float = 99.0
    segment: float = SEGMENT_SECONDS
    max_outside: int = 1  # segments outside a stretch may have and still hold
    min_seconds: float = 150.0  # a stretch shorter than this does not hold
    stretch_seconds: float = 180.0  # the stretch judged for holds (0: all of it)

    def __post_init__(self) -> None:
        if not 0 <= self.low < self.high <= 100:
            raise JudgeError(f"percentiles {self.low:g}–{self.high:g}: need 0 ≤ low < high ≤ 100")
        if self.segment <= 0 or self.max_outside < 0 or self.min_seconds < 0:
            raise JudgeError("segment seconds must be > 0; max outside and min seconds ≥ 0")
        if self.stretch_seconds < 0:
            raise JudgeError("stretch seconds must be ≥ 0 (0: the whole continuation)")


@dataclass
class Bands:
    """lo, hi: (6,) band edges in `STATS` order; real_holds/real_stretches: the corpus's own."""

    name: str
    lo: np.ndarray
    hi: np.ndarray
    segments: int
    real_holds: int
    real_stretches: int

    def outside(self, values: np.ndarray) -> np.ndarray:
        """(K, 6) bool: which statistics of which segments fall outside (NaN never does)."""
        return (values < self.lo) | (values > self.hi)


def holds(outside: np.ndarray, rule: Rule) -> bool:
    """Whether a stretch whose segments are outside (K,) bool holds."""
    n = _stretch_segments(len(outside), rule)
    long_enough = n * rule.segment >= rule.min_seconds - 1e-9
    return long_enough and int(outside[:n].sum()) <= rule.max_outside


def _stretch_segments(k: int, rule: Rule) -> int:
    if rule.stretch_seconds <= 0:
        return k
    return min(k, int(rule.stretch_seconds / rule.segment + 1e-9))


def make_bands(corpus: Corpus, rule: Rule) -> Bands:
    """Percentile bands of the corpus's segments and the corpus's own holds rate."""
    lo = np.nanpercentile(corpus.values, rule.low, axis=0)  # (6,)
    hi = np.nanpercentile(corpus.values, rule.high, axis=0)
    lo[[STATS.index(s) for s in UPPER_ONLY]] = 0.0
    bands = Bands(corpus.name, lo, hi, len(corpus.values), 0, 0)
    flags = bands.outside(corpus.values).any(axis=1)  # (S,)
    for p in np.unique(corpus.piece):
        mine = flags[corpus.piece == p]
        if _stretch_segments(len(mine), rule) * rule.segment >= rule.min_seconds - 1e-9:
            bands.real_stretches += 1
            bands.real_holds += holds(mine, rule)
    return bands


@dataclass
class Judged:
    """One judged file. values: (K, 6) per segment; outside: (K, 6) bool."""

    path: str
    reference: str
    cut: float
    seconds: float  # music after the cut, seconds
    values: np.ndarray
    outside: np.ndarray
    holds: bool
    segment: float  # segment length, seconds
    primer_silence: float  # the primer's own longest silence, seconds
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        segments = [
            {
                "start": round(self.cut + k * self.segment, 3),
                **{s: _num(v) for s, v in zip(STATS, row)},
                "outside": [s for s, o in zip(STATS, bad) if o],
            }
            for k, (row, bad) in enumerate(zip(self.values, self.outside))
        ]
        return {
            "path": self.path,
            "reference": self.reference,
            "cut": round(self.cut, 3),
            "seconds_after_primer": round(self.seconds, 3),
            "segments_outside": int(self.outside.any(axis=1).sum()),
            "holds": self.holds,
            "notes": self.notes,
            "segments": segments,
        }


def _num(v: float) -> float | None:
    return None if np.isnan(v) else round(float(v), 4)


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return None
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise JudgeError(f"{sidecar}: unreadable sidecar ({e})") from None
    return record if isinstance(record, dict) and "continuation" in record else None


def _sidecar_times(record: dict[str, Any], sidecar: str) -> tuple[float, dict[str, Any] | None]:
    """(seconds generated, the primer's entry or None) of a sidecar; JudgeError if malformed."""
    try:
        generated = float(record["continuation"].get("seconds") or 0.0)
        primer = record.get("primer") or None
        if primer is not None:
            primer["seconds"] = float(primer.get("seconds") or 0.0)
    except (AttributeError, TypeError, ValueError) as e:
        raise JudgeError(f"{sidecar}: not a sidecar of continue/generate ({e})") from None
    if not 0 <= generated <= MAX_SECONDS or (primer and not 0 <= primer["seconds"] <= MAX_SECONDS):
        raise JudgeError(f"{sidecar}: seconds out of range")
    return generated, primer


def primer_cut(path: Path, primer_seconds: float | None) -> tuple[float, float, float | None]:
    """(cut, seconds of music the sidecar says were generated or 0, primer's mean pitch or
    None) for a file: from its JSON sidecar when there is one, else `primer_seconds`.
    A sidecar whose output holds the continuation only gives cut 0, and the primer's mean
    pitch is read from the primer file it names."""
    record = _read_sidecar(path)
    if record is None:
        if primer_seconds is None:
            sidecar = path.with_suffix(".json").name
            raise JudgeError(f"{path}: no sidecar ({sidecar}); pass --primer-seconds")
        return primer_seconds, 0.0, None
    generated, primer = _sidecar_times(record, path.with_suffix(".json").name)
    if not primer:
        return 0.0, generated, float("nan")  # nothing to drift from
    cut = primer["seconds"]
    if primer.get("included", True):
        return cut, generated, None
    try:  # continuation only: the primer is in its own file
        notes = notes_from_score(read_score(primer["path"]))
        return 0.0, generated, mean_pitch(notes, 0.0, cut)
    except (MidiReadError, KeyError, TypeError):
        return 0.0, generated, float("nan")


def judge_file(
    path: str | Path, bands: Bands, rule: Rule, primer_seconds: float | None = None
) -> Judged:
    """Judge one generated MIDI file (primer + continuation, or continuation alone).

    Raises:
        JudgeError / MidiReadError: the file (or its sidecar) cannot be read, or the primer
            cut is unknown.
    """
    path = Path(path)
    cut, generated, primer_pitch = primer_cut(path, primer_seconds)
    notes = notes_from_score(read_score(path))
    end = max(float(notes.end.max()) if len(notes) else 0.0, cut + generated)
    if primer_pitch is None:
        primer_pitch = mean_pitch(notes, 0.0, cut)
    values = piece_segments(notes, cut, end, primer_pitch, rule.segment)
    outside = bands.outside(values)
    silence = longest_silence(notes, 0.0, cut) if cut > 0 else 0.0
    result = Judged(str(path), bands.name, cut, end - cut, values, outside,
                    holds(outside.any(axis=1), rule), rule.segment, silence)  # fmt: skip
    if len(values) * rule.segment < rule.min_seconds:
        result.notes.append(f"only {end - cut:.0f} s after the primer (< {rule.min_seconds:g} s)")
    heard = float(notes.end.max()) - cut if len(notes) else 0.0
    if generated and abs(heard - generated) > TIMING_TOLERANCE * generated:
        result.notes.append(
            f"the file plays the continuation over {heard:.0f} s, its sidecar says "
            f"{generated:.0f} s were generated: the file's timing is judged"
        )
    return result
