"""A MIDI file's clocks: its ticks, its seconds (through its tempo map), and the model's time.

The model's time is what `Tokenizer.seconds` counts: seconds for `performance` tokens (read
through the file's tempo map, so the same as the file's), beats at 120 BPM for `score` and
`jsb` (two beats a model second, read through ticks per beat, the tempo ignored). A
continuation spliced onto its primer's file (`midi_data.splice`) is written on the file's
beats and tempo, so for those presets one model second lasts tempo / 500,000 of the file's
seconds (at 96 BPM: 1.25). `FileClock` converts between the two, so that "30 s of new music"
and "the first 12 s of the primer" mean seconds of the file the user hears.
"""

from __future__ import annotations

import bisect
import copy
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from .tokenizer import Tokenizer

DEFAULT_TEMPO = 500_000  # µs per beat: MIDI's 120 BPM, the tempo model time is written at


class TempoMap:
    """Seconds ↔ ticks of one MIDI file (its set_tempo events; 120 BPM before the first)."""

    def __init__(self, mf: mido.MidiFile):
        # each track's own ticks (not mido.merge_tracks, which copies every message)
        changes = sorted(
            (tick, msg.tempo) for track in mf.tracks for tick, msg in absolute_events(track)
            if msg.type == "set_tempo"
        )  # fmt: skip
        self.tpb, self.ticks, self.seconds = mf.ticks_per_beat, [0], [0.0]
        self.tempos = [DEFAULT_TEMPO]
        for tick, tempo in changes:
            self._add(tick, tempo)

    def _add(self, tick: int, tempo: int) -> None:
        if tick == self.ticks[-1]:
            self.tempos[-1] = tempo
            return
        self.seconds.append(self.seconds[-1] + self._span(tick - self.ticks[-1], self.tempos[-1]))
        self.ticks.append(tick)
        self.tempos.append(tempo)

    def _span(self, ticks: float, tempo: int) -> float:
        return ticks * tempo / 1e6 / self.tpb

    def to_tick(self, seconds: float) -> int:
        """The nearest tick to `seconds` (the last tempo extends past the last change)."""
        i = max(0, bisect.bisect_right(self.seconds, seconds) - 1)
        return round(self.ticks[i] + (seconds - self.seconds[i]) * 1e6 * self.tpb / self.tempos[i])

    def to_seconds(self, ticks: float | np.ndarray) -> np.ndarray:
        """The file's seconds at `ticks` (the last tempo extends past the last change)."""
        ticks = np.asarray(ticks, dtype=np.float64)
        i = np.maximum(np.searchsorted(self.ticks, ticks, side="right") - 1, 0)
        tempos = np.asarray(self.tempos, dtype=np.float64)[i]
        return (
            np.asarray(self.seconds)[i]
            + (ticks - np.asarray(self.ticks)[i]) * tempos / 1e6 / self.tpb
        )

    def tempo_at(self, tick: float) -> int:
        return self.tempos[max(0, bisect.bisect_right(self.ticks, tick) - 1)]

    def until(self, tick: int) -> TempoMap:
        """This map without the changes after `tick`, its tempo there going on: the clock
        of the file cut at `tick` (a spliced output keeps the primer only up to its cut)."""
        k = max(1, bisect.bisect_right(self.ticks, tick))
        cut = copy.copy(self)
        cut.ticks, cut.seconds, cut.tempos = self.ticks[:k], self.seconds[:k], self.tempos[:k]
        return cut


@dataclass(frozen=True, eq=False)
class ParsedMidi:
    """A MIDI file as mido reads it, event by event, and its tempo map. Shared: read only."""

    mf: mido.MidiFile
    tempo: TempoMap


def read_mido(path: str | Path) -> ParsedMidi:
    """`path` parsed by mido (clip=True) with its tempo map — once for the primer's clock and
    every piece spliced onto it, until the file changes (inode, size or mtime).

    Raises:
        OSError, ValueError, EOFError, KeyError, IndexError: what mido raises on a bad file.
    """
    st = os.stat(path)
    return _parse(str(Path(path).resolve()), (st.st_ino, st.st_size, st.st_mtime_ns))


@functools.lru_cache(maxsize=2)  # pieces come primer by primer; a parsed file can be large
def _parse(path: str, version: tuple[int, int, int]) -> ParsedMidi:
    mf = mido.MidiFile(path, clip=True)
    return ParsedMidi(mf, TempoMap(mf))


def absolute_events(track: Sequence[mido.Message]) -> Iterator[tuple[int, mido.Message]]:
    """(absolute tick, message) of a track."""
    tick = 0
    for msg in track:
        tick += msg.time
        yield tick, msg


def _grid_start(tok: Tokenizer, mf: mido.MidiFile) -> float:
    """The file tick of model time 0: the `jsb` grid starts at the first onset's 16th."""
    if tok.preset != "jsb":
        return 0
    first = min((t for tr in mf.tracks for t, m in absolute_events(tr)
                 if m.type == "note_on" and m.velocity > 0), default=0)  # fmt: skip
    sixteenth = mf.ticks_per_beat / 4
    return round(first / sixteenth) * sixteenth


def model_ticks(tok: Tokenizer, mf: mido.MidiFile, tempo: TempoMap) -> Callable[[float], int]:
    """token time (seconds, as `tok.seconds` counts) → file tick, for this preset."""
    if tok.preset == "performance":
        return tempo.to_tick
    start = _grid_start(tok, mf)
    # score and jsb count beats, decoded at 120 BPM: two beats a second
    return lambda seconds: round(start + seconds * 2 * mf.ticks_per_beat)


def tick_times(
    tok: Tokenizer, mf: mido.MidiFile, tempo: TempoMap
) -> Callable[[np.ndarray], np.ndarray]:
    """file ticks → token time (seconds, as `tok.seconds` counts): `model_ticks` inverted."""
    if tok.preset == "performance":
        return tempo.to_seconds
    start = _grid_start(tok, mf)
    return lambda ticks: (np.asarray(ticks, dtype=np.float64) - start) / (2 * mf.ticks_per_beat)


class FileClock:
    """Model time ↔ the seconds of one primer file, for one tokenizer (see the module
    docstring). For `performance` tokens both are the same and the file is not read."""

    def __init__(self, tok: Tokenizer, path: str | Path | None = None):
        self.beats = tok.preset != "performance" and path is not None
        if self.beats:
            parsed = read_mido(path)
            mf = parsed.mf
            self.tempo, self.tpb = parsed.tempo, mf.ticks_per_beat
            self.start = _grid_start(tok, mf)
            self.to_tick = model_ticks(tok, mf, self.tempo)

    def model_seconds(self, file_seconds: float) -> float:
        """Model time at the file's `file_seconds` (negative before the grid starts)."""
        if not self.beats:
            return file_seconds
        return (self.tempo.to_tick(file_seconds) - self.start) / (2 * self.tpb)

    def file_seconds(self, model_seconds: float) -> float:
        """The file's seconds at model time `model_seconds`."""
        return float(self.file_times(model_seconds))

    def file_times(self, model_seconds: float | np.ndarray) -> np.ndarray:
        """`file_seconds` of model times (an array of any shape), float64."""
        t = np.asarray(model_seconds, dtype=np.float64)
        if not self.beats:
            return t
        return self.tempo.to_seconds(self.start + t * 2 * self.tpb)

    def rate(self, model_seconds: float) -> float:
        """File seconds per model second from `model_seconds` on (the tempo in effect there;
        the last tempo extends past the file's end, as the splice writes it)."""
        if not self.beats:
            return 1.0
        return self.tempo.tempo_at(self.to_tick(model_seconds)) / DEFAULT_TEMPO
