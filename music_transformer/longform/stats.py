"""The long-form judge's per-segment statistics: what a listener hears go wrong over minutes.

The music after a cut (the primer's end) is tiled into segments of `seconds` (30 s by
default); only whole segments are measured. Each segment gets six numbers:

    notes_per_second   onsets in the segment / its length.
    distinct_pitches   how many different MIDI pitches start a note in it.
    longest_silence    seconds: the longest stretch inside the segment where nothing sounds
                       (note durations as written, sustain pedal already folded in).
    two_pitch_share    share of its onsets on its two most used pitches (1 = two keys only).
    repeat_8gram       share of its pitch 8-grams (eight consecutive onsets, chord notes in
                       pitch order) already heard earlier in the same segment.
    register_drift     semitones between the mean onset pitch of the segment and that of the
                       primer (absolute value).

A statistic that cannot be measured (no onset, fewer than 8 onsets, no primer) is NaN: it is
never outside a band by itself (an empty segment is outside through its density and silence).

This module is the judge's own; the sampler and its guards never import it (and it imports
nothing from them), so a sampler cannot be tuned against the very code that judges it.
"""

from __future__ import annotations

import numpy as np

from midi_data.notes import Notes

STATS = (
    "notes_per_second",
    "distinct_pitches",
    "longest_silence",
    "two_pitch_share",
    "repeat_8gram",
    "register_drift",
)
UNITS = {
    "notes_per_second": "notes/s",
    "distinct_pitches": "pitches",
    "longest_silence": "s",
    "two_pitch_share": "share",
    "repeat_8gram": "share",
    "register_drift": "semitones",
}
SEGMENT_SECONDS = 30.0
NGRAM = 8
ONSET_GRID = 0.01  # seconds: onsets this close count as one chord (the 10 ms token quantum)
# Bump when a statistic's definition changes: cached reference bands are then recomputed.
STATS_VERSION = 1


def segment_starts(cut: float, end: float, seconds: float = SEGMENT_SECONDS) -> np.ndarray:
    """(K,) start times of the whole segments between `cut` and `end` (seconds)."""
    count = int(np.floor((end - cut) / seconds + 1e-9)) if end > cut else 0
    return cut + seconds * np.arange(max(count, 0), dtype=np.float64)


def longest_silence(notes: Notes, start: float, end: float) -> float:
    """Seconds of the longest gap in [start, end) where no note of `notes` sounds."""
    sounding = (notes.end > start) & (notes.start < end)
    if not sounding.any():
        return end - start
    on = np.clip(notes.start[sounding], start, end)
    off = np.clip(notes.end[sounding], start, end)
    order = np.argsort(on, kind="stable")
    on, reach = on[order], np.maximum.accumulate(off[order])  # furthest end heard so far
    gaps = np.concatenate([[on[0] - start], on[1:] - reach[:-1], [end - reach[-1]]])
    return float(max(gaps.max(), 0.0))


def two_pitch_share(pitches: np.ndarray) -> float:
    """Share of the onsets (pitches (N,)) on the two most frequent pitches; NaN if N = 0."""
    if len(pitches) == 0:
        return float("nan")
    counts = np.sort(np.bincount(pitches, minlength=128))
    return float(counts[-2:].sum() / len(pitches))


def repeat_share(pitches: np.ndarray, n: int = NGRAM) -> float:
    """Share of the n-grams of `pitches` (N,) that occurred earlier in the same sequence;
    NaN when there are fewer than n pitches."""
    if len(pitches) < n:
        return float("nan")
    grams = np.lib.stride_tricks.sliding_window_view(pitches, n)  # (N - n + 1, n)
    _, first = np.unique(grams, axis=0, return_index=True)
    return float(1.0 - len(first) / len(grams))


def mean_pitch(notes: Notes, start: float, end: float) -> float:
    """Mean pitch of the onsets in [start, end); NaN when there are none."""
    inside = (notes.start >= start) & (notes.start < end)
    return float(notes.pitch[inside].mean()) if inside.any() else float("nan")


def segment_stats(notes: Notes, start: float, end: float, primer_pitch: float) -> list[float]:
    """The six statistics (in `STATS` order) of the segment [start, end) seconds.

    Args:
        notes: every note of the piece, seconds (the primer's too: they may still sound).
        start, end: the segment, seconds.
        primer_pitch: the primer's mean onset pitch (NaN: drift not measured).
    """
    inside = (notes.start >= start) & (notes.start < end)
    chord = np.rint(notes.start[inside] / ONSET_GRID).astype(np.int64)
    pitches = notes.pitch[inside].astype(np.int64)
    pitches = pitches[np.lexsort((pitches, chord))]  # time order; a chord low to high
    drift = abs(float(pitches.mean()) - primer_pitch) if len(pitches) else float("nan")
    return [
        len(pitches) / (end - start),
        float(len(np.unique(pitches))),
        longest_silence(notes, start, end),
        two_pitch_share(pitches),
        repeat_share(pitches),
        drift,
    ]


def piece_segments(
    notes: Notes, cut: float, end: float, primer_pitch: float, seconds: float = SEGMENT_SECONDS
) -> np.ndarray:
    """(K, 6) statistics of every whole segment after `cut` up to `end` (seconds)."""
    starts = segment_starts(cut, end, seconds)
    rows = [segment_stats(notes, s, s + seconds, primer_pitch) for s in starts]
    return np.array(rows, dtype=np.float64).reshape(-1, len(STATS))
