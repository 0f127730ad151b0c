"""A performance as one flat note list: what the `performance` preset tokenizes.

From any MIDI object we keep the notes of every non-drum instrument, fold the sustain pedal
into their durations, merge them into one stream, quantize to a tick grid and resolve
same-pitch overlaps. The result is exactly what a single-channel piano part can play, which is
why the token round trip of the result is lossless.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pretty_midi
import symusic

SUSTAIN_CC = 64
PEDAL_DOWN = 64  # CC64 values ≥ 64 mean "pedal down" (General MIDI)


@dataclass
class Notes:
    """N notes as parallel arrays, sorted by (start, pitch).

    Attributes:
        start: (N,) note-on times (seconds, float64, or ticks, int64, after `quantize`).
        end: (N,) note-off times, same unit; end > start.
        pitch: (N,) MIDI pitch 0..127, int64.
        velocity: (N,) MIDI velocity 1..127, int64.
    """

    start: np.ndarray
    end: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    def take(self, index: np.ndarray) -> Notes:
        return Notes(self.start[index], self.end[index], self.pitch[index], self.velocity[index])

    def sorted(self) -> Notes:
        return self.take(np.lexsort((self.pitch, self.start)))

    @staticmethod
    def concat(parts: list[Notes]) -> Notes:
        if not parts:
            empty = np.zeros(0)
            return Notes(empty, empty, empty.astype(np.int64), empty.astype(np.int64))
        return Notes(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


_FIELDS = ("start", "end", "pitch", "velocity")


def fold_sustain(
    end: np.ndarray, cc_time: np.ndarray, cc_value: np.ndarray, piece_end: float
) -> np.ndarray:
    """Note ends after applying the sustain pedal: a note released while the pedal is down
    sounds until the pedal comes up (or until the end of the piece, if it never does).

    Args:
        end: (N,) note-off times in seconds.
        cc_time, cc_value: (M,) the CC64 events of the same instrument, any order.
        piece_end: seconds; the time of the piece's last event.
    Returns:
        (N,) new note ends in seconds (≥ the old ones).
    """
    if len(cc_time) == 0 or len(end) == 0:
        return end
    order = np.argsort(cc_time, kind="stable")
    times, down = cc_time[order], cc_value[order] >= PEDAL_DOWN
    # Keep only the events where the pedal state changes; a fresh "up" state precedes them.
    changed = down != np.concatenate([[False], down[:-1]])
    times, down = times[changed], down[changed]
    presses, releases = times[down], times[~down]
    if len(presses) == 0:
        return end
    # a press never released holds to the end of the piece
    ups = np.full(len(presses), max(piece_end, float(end.max())))
    ups[: len(releases)] = releases[: len(presses)]
    i = np.searchsorted(presses, end, side="right") - 1  # last press at or before each end
    held = (i >= 0) & (end < ups[np.maximum(i, 0)])
    return np.where(held, np.maximum(end, ups[np.maximum(i, 0)]), end)


def _instrument_notes(
    start: np.ndarray,
    end: np.ndarray,
    pitch: np.ndarray,
    velocity: np.ndarray,
    cc_time: np.ndarray,
    cc_value: np.ndarray,
    piece_end: float | None,
) -> Notes:
    start, end = start.astype(np.float64), end.astype(np.float64)
    if piece_end is not None:
        end = fold_sustain(end, cc_time.astype(np.float64), cc_value, piece_end)
    return Notes(start, end, pitch.astype(np.int64), velocity.astype(np.int64))


def tick_seconds(score: symusic.Score, ticks: np.ndarray) -> np.ndarray:
    """Seconds (float64) of tick times under the score's tempo map. symusic's own conversion
    is float32, which is off by up to 0.25 ms after half an hour; this is exact."""
    tempos = score.tempos.numpy()
    order = np.argsort(tempos["time"], kind="stable")
    times = tempos["time"][order].astype(np.int64)
    spb = tempos["mspq"][order].astype(np.float64) / 1e6  # seconds per beat
    if len(times) == 0 or times[0] > 0:  # MIDI's default tempo is 120 BPM
        times, spb = np.concatenate([[0], times]), np.concatenate([[0.5], spb])
    per_tick = spb / score.ticks_per_quarter
    starts = np.concatenate([[0.0], np.cumsum(np.diff(times) * per_tick[:-1])])  # (K,) s
    i = np.searchsorted(times, ticks, side="right") - 1  # tempo segment of each tick
    return starts[i] + (ticks - times[i]) * per_tick[i]


def notes_from_score(score: symusic.Score, sustain: bool = True) -> Notes:
    """All non-drum notes of a symusic Score (tick time), in seconds, merged."""
    piece_end = float(tick_seconds(score, np.array([score.end()]))[0]) if sustain else None
    parts = []
    for track in score.tracks:
        if track.is_drum or len(track.notes) == 0:
            continue
        n, c = track.notes.numpy(), track.controls.numpy()
        pedal = c["number"] == SUSTAIN_CC
        onset = n["time"].astype(np.int64)
        # symusic keeps the pedal both as controls and as `pedals`; the controls suffice.
        parts.append(
            _instrument_notes(
                tick_seconds(score, onset),
                tick_seconds(score, onset + n["duration"]),
                n["pitch"], n["velocity"],
                tick_seconds(score, c["time"][pedal].astype(np.int64)), c["value"][pedal],
                piece_end,
            )
        )  # fmt: skip
    return Notes.concat(parts).sorted()


def notes_from_pretty(pm: pretty_midi.PrettyMIDI, sustain: bool = True) -> Notes:
    """All non-drum notes of a PrettyMIDI object, in seconds, merged."""
    piece_end = pm.get_end_time() if sustain else None
    parts = []
    for inst in pm.instruments:
        if inst.is_drum or not inst.notes:
            continue
        arr = np.array([(n.start, n.end, n.pitch, n.velocity) for n in inst.notes])  # (N, 4)
        ccs = [(c.time, c.value) for c in inst.control_changes if c.number == SUSTAIN_CC]
        cc = np.array(ccs, dtype=np.float64).reshape(-1, 2)  # (M, 2)
        parts.append(
            _instrument_notes(
                arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], cc[:, 0], cc[:, 1], piece_end
            )
        )
    return Notes.concat(parts).sorted()


def quantize(notes: Notes, tick_seconds: float) -> Notes:
    """Snap onsets and offsets to the nearest tick (int64); every note lasts ≥ 1 tick;
    velocities clipped to 1..127; then same-pitch overlaps resolved (see `resolve_overlaps`)."""
    start = np.rint(notes.start / tick_seconds).astype(np.int64)
    end = np.maximum(np.rint(notes.end / tick_seconds).astype(np.int64), start + 1)
    start, end = np.maximum(start, 0), np.maximum(end, 1)
    velocity = np.clip(notes.velocity, 1, 127)
    return resolve_overlaps(Notes(start, end, notes.pitch, velocity))


def resolve_overlaps(notes: Notes) -> Notes:
    """Make same-pitch notes disjoint: when a pitch is struck again while it still sounds,
    the sounding note ends at the new onset (what a piano, or one MIDI channel, does).
    Unisons (same pitch, same onset) become one note: the longest one is kept.

    Without this, NOTE_OFF tokens of merged voices cannot be paired with the right NOTE_ON.
    """
    if len(notes) == 0:
        return notes
    n = notes.take(np.lexsort((notes.end, notes.start, notes.pitch)))  # by pitch, start, end
    same_pitch = n.pitch[1:] == n.pitch[:-1]
    end = n.end.copy()
    end[:-1] = np.where(same_pitch, np.minimum(end[:-1], n.start[1:]), end[:-1])
    keep = end > n.start
    return Notes(n.start[keep], end[keep], n.pitch[keep], n.velocity[keep]).sorted()


def notes_to_midi(notes: Notes, name: str = "Piano") -> pretty_midi.PrettyMIDI:
    """One piano track holding `notes` (seconds)."""
    pm = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=120.0)
    piano = pretty_midi.Instrument(program=0, name=name)
    for s, e, p, v in zip(notes.start, notes.end, notes.pitch, notes.velocity):
        if e > s:
            piano.notes.append(pretty_midi.Note(int(v), int(p), float(s), float(e)))
    pm.instruments.append(piano)
    return pm
