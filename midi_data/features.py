"""Per-piece musical features for comparing generated music with real music.

Each feature is either a histogram over fixed bins (normalized to sum 1, so pieces of
different lengths compare) or a scalar. They follow the per-piece features of Yang & Lerch
(2018, "On the evaluation of generative models in music"), adapted to polyphonic
performances: where a melodic line is needed (intervals, repetition) we take the skyline,
the highest pitch of each onset, which is where listeners hear the tune of a texture.

Histograms (bins in `HISTOGRAM_BINS`):
    pitch_class  12 pitch classes, counted per note.
    interval     skyline steps in semitones, −12..+12 (larger leaps fall in the end bins).
    ioi          inter-onset intervals between distinct onsets, seconds (log-spaced bins).
    velocity     16 bins of 8 MIDI velocity steps.
    polyphony    notes sounding, sampled every 50 ms: 0 .. 8 or more.
    note_density onsets per one-second frame: 0 .. 16 or more.
Scalars (`SCALARS`):
    pitch_range       highest − lowest pitch, semitones.
    notes_per_second  onsets per second of music.
    mean_polyphony    mean notes sounding over the 50 ms frames where something sounds.
    repetition        share of skyline 3-grams of (interval, IOI class) steps — motifs of four
                      notes — heard earlier in the piece.
    self_similarity   mean best cosine match of each 2 s piano-roll segment with a segment
                      starting at least 2 s earlier (1 = every bar repeats something).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pretty_midi

from .notes import Notes, notes_from_pretty

ONSET_GRID = 0.01  # seconds: the performance quantum; onsets are rounded to it
CHORD_GAP = 0.03  # seconds: onsets closer than this form one chord (a pianist's spread)
POLY_FRAME = 0.05  # seconds between polyphony samples
IOI_EDGES = np.array([0.0, 0.03, 0.06, 0.12, 0.25, 0.5, 1.0, 2.0, np.inf])  # seconds
NGRAM = 3  # skyline steps per repetition pattern (a motif of four notes)
SEGMENT, SEGMENT_FRAME = 2.0, 0.5  # self-similarity: segment and sub-frame length, seconds

HISTOGRAM_BINS = {
    "pitch_class": 12,
    "interval": 25,
    "ioi": len(IOI_EDGES) - 1,
    "velocity": 16,
    "polyphony": 9,
    "note_density": 17,
}
SCALARS = ("pitch_range", "notes_per_second", "mean_polyphony", "repetition", "self_similarity")


@dataclass
class PieceFeatures:
    """Features of one piece.

    Attributes:
        notes: number of notes.
        seconds: length of the span the features describe.
        histograms: name → (bins,) float64 summing to 1 (all zeros when there is no data).
        scalars: name → float, or None when undefined (too few notes or too short).
    """

    notes: int
    seconds: float
    histograms: dict[str, np.ndarray]
    scalars: dict[str, float | None]


def _normalized(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else counts.astype(np.float64)


def _skyline(onsets: np.ndarray, pitch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chords (onsets less than CHORD_GAP apart, in grid units) → the first onset and the
    highest pitch of each chord."""
    order = np.lexsort((pitch, onsets))
    onsets, pitch = onsets[order], pitch[order]
    new_chord = np.concatenate([[True], np.diff(onsets) * ONSET_GRID >= CHORD_GAP - 1e-9])
    chord = np.cumsum(new_chord) - 1  # (N,) chord index of each note
    top = np.full(chord[-1] + 1, -1, dtype=np.int64)
    np.maximum.at(top, chord, pitch)
    return onsets[new_chord], top


def _sounding(start: np.ndarray, end: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Notes sounding at each of `times`: (len(times),) int64."""
    started = np.searchsorted(np.sort(start), times, side="right")
    ended = np.searchsorted(np.sort(end), times, side="right")
    return started - ended


def _repetition(sky_onsets: np.ndarray, sky_pitch: np.ndarray) -> float | None:
    """Share of skyline n-grams (interval, IOI bin) that already occurred earlier."""
    if len(sky_pitch) < NGRAM + 2:
        return None
    steps = np.diff(sky_pitch)  # (E-1,)
    ioi_bin = np.digitize(np.diff(sky_onsets) * ONSET_GRID, IOI_EDGES[1:-1])  # (E-1,)
    events = list(zip(steps.tolist(), ioi_bin.tolist()))
    seen: set[tuple] = set()
    repeated = 0
    grams = [tuple(events[i : i + NGRAM]) for i in range(len(events) - NGRAM + 1)]
    for gram in grams:
        repeated += gram in seen
        seen.add(gram)
    return repeated / len(grams)


def _self_similarity(start, end, pitch, seconds: float) -> float | None:
    """Mean over segments of the best cosine similarity with an earlier, disjoint segment."""
    frames = int(seconds // SEGMENT_FRAME)
    per_segment = round(SEGMENT / SEGMENT_FRAME)
    if frames < 2 * per_segment:
        return None
    roll = np.zeros((frames, 128))  # seconds each pitch sounds in each frame
    edges = np.arange(frames + 1) * SEGMENT_FRAME
    for s, e, p in zip(start, end, pitch):
        overlap = np.clip(np.minimum(edges[1:], e) - np.maximum(edges[:-1], s), 0, None)
        roll[:, p] += overlap
    n_seg = frames - per_segment + 1  # one segment starts at every frame
    windows = np.lib.stride_tricks.sliding_window_view(roll, per_segment, axis=0)  # (S, 128, F)
    vectors = windows.reshape(n_seg, -1)  # (S, 128·F)
    norms = np.linalg.norm(vectors, axis=1)
    live = norms > 0
    unit = np.where(live[:, None], vectors / np.maximum(norms, 1e-12)[:, None], 0.0)
    sim = unit @ unit.T  # (S, S) cosine
    best = [sim[j, : j - per_segment + 1].max() for j in range(per_segment, n_seg) if live[j]]
    return float(np.mean(best)) if best else None


def piece_features(notes: Notes | pretty_midi.PrettyMIDI, seconds: float | None = None):
    """Features of one piece (see the module docstring).

    Args:
        notes: `Notes` in seconds, or a PrettyMIDI object (drums dropped, sustain folded).
        seconds: length of the span to describe, from 0 s; default the last note's end.

    Returns:
        PieceFeatures.
    """
    if isinstance(notes, pretty_midi.PrettyMIDI):
        notes = notes_from_pretty(notes)
    start, end = np.asarray(notes.start, float), np.asarray(notes.end, float)
    pitch = np.asarray(notes.pitch, np.int64)
    velocity = np.asarray(notes.velocity, np.int64)
    n = len(start)
    if seconds is None:
        seconds = float(end.max()) if n else 0.0
    seconds = max(float(seconds), 1e-9)
    onsets = np.rint(start / ONSET_GRID).astype(np.int64)  # grid units
    sky_onsets, sky_pitch = _skyline(onsets, pitch) if n else (onsets, pitch)

    hist: dict[str, np.ndarray] = {}
    hist["pitch_class"] = _normalized(np.bincount(pitch % 12, minlength=12).astype(float))
    steps = np.clip(np.diff(sky_pitch), -12, 12) + 12
    hist["interval"] = _normalized(np.bincount(steps, minlength=25).astype(float))
    iois = np.diff(np.unique(onsets)) * ONSET_GRID
    hist["ioi"] = _normalized(np.histogram(iois, IOI_EDGES)[0].astype(float))
    hist["velocity"] = _normalized(np.bincount(np.clip(velocity, 0, 127) // 8, minlength=16)[:16])
    frame_times = np.arange(0.0, seconds, POLY_FRAME) + POLY_FRAME / 2
    sounding = _sounding(start, end, frame_times) if n else np.zeros(len(frame_times), int)
    hist["polyphony"] = _normalized(np.bincount(np.clip(sounding, 0, 8), minlength=9).astype(float))
    per_second = np.bincount(
        np.clip((start // 1.0).astype(np.int64), 0, None), minlength=int(np.ceil(seconds))
    )[: max(int(np.ceil(seconds)), 1)]
    hist["note_density"] = _normalized(np.bincount(np.clip(per_second, 0, 16), minlength=17))

    scalars: dict[str, float | None] = {
        "pitch_range": float(pitch.max() - pitch.min()) if n else None,
        "notes_per_second": n / seconds,
        "mean_polyphony": float(sounding[sounding > 0].mean()) if (sounding > 0).any() else None,
        "repetition": _repetition(sky_onsets, sky_pitch),
        "self_similarity": _self_similarity(start, end, pitch, seconds) if n else None,
    }
    return PieceFeatures(n, seconds, {k: v.astype(np.float64) for k, v in hist.items()}, scalars)
