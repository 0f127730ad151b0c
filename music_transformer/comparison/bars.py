"""Bar lines for the piano rolls: a primer file's downbeats, in the time a roll is drawn in.

Downbeats come from the file's time signatures (a bar of n/d is n · 4/d quarter notes), in
ticks, so the last bar length simply repeats past the file's end, under the continuation. A
roll's time is the file's seconds (through its tempo map) for the real continuation and for
`performance` models, and beats at 120 BPM for `score`/`jsb` models; both maps are the ones
`midi_data.splice` writes continuations with (`tempo_map.model_ticks`), read backwards here
(`tempo_map.tick_times`).
A file without a time signature has no meter to draw: no bar lines.
"""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np

from midi_data.tempo_map import TempoMap, model_ticks, tick_times
from midi_data.tokenizer import Tokenizer


def time_signatures(mf: mido.MidiFile) -> list[tuple[int, int, int]]:
    """(tick, numerator, denominator) of every time signature, in order; one per tick (the
    last wins). A first signature after tick 0 gets MIDI's default 4/4 before it."""
    found: dict[int, tuple[int, int]] = {}
    for track in mf.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "time_signature" and msg.numerator > 0 and msg.denominator > 0:
                found[tick] = (msg.numerator, msg.denominator)
    sigs = [(t, n, d) for t, (n, d) in sorted(found.items())]
    if sigs and sigs[0][0] > 0:
        sigs.insert(0, (0, 4, 4))
    return sigs


def downbeat_ticks(mf: mido.MidiFile, until: float) -> np.ndarray:
    """Ticks of every downbeat before tick `until` (empty without a time signature)."""
    sigs = time_signatures(mf)
    out = []
    for i, (tick, num, den) in enumerate(sigs):
        bar = num * mf.ticks_per_beat * 4 / den  # ticks per bar
        stop = sigs[i + 1][0] if i + 1 < len(sigs) else until
        out.append(np.arange(tick, stop, bar))
    return np.concatenate(out) if out else np.zeros(0)


def bar_times(path: str | Path, until: float, tok: Tokenizer | None = None) -> np.ndarray:
    """Downbeats of the MIDI file `path` up to `until` seconds of roll time, as seconds.

    Args:
        path: the primer file.
        until: end of the roll, seconds (bars repeat past the file's end up to it).
        tok: draw in this tokenizer's time (what its decoded MIDI shows); None: the file's own
            seconds.

    Returns:
        (B,) float64 downbeat times, bar 1 first; empty when the file has no time signature
        or mido cannot read it (bar lines are a help, never a reason to fail).
    """
    try:
        mf = mido.MidiFile(str(path), clip=True)
        tempo = TempoMap(mf)
        if tok is None:
            to_tick, to_time = tempo.to_tick, tempo.to_seconds
        else:
            to_tick, to_time = model_ticks(tok, mf, tempo), tick_times(tok, mf, tempo)
        downbeats = downbeat_ticks(mf, to_tick(until) + 1)  # (B,) ticks
    except Exception:  # an unusual file symusic read but mido does not: draw no bars
        return np.zeros(0)
    return to_time(downbeats)
