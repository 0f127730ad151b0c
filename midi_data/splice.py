"""Splice a continuation onto its primer's own MIDI file, so it fits a musician's DAW.

The output keeps the primer file's events verbatim up to the cut — tracks and their names,
programs, channels, tempo map, time and key signatures, pedal and other controllers, ticks per
beat — and puts the continuation on a track of its own ("Continuation", the program of the
primer's main instrument, a channel the primer does not use), on the primer's tick grid
through the primer's tempo map (extended by its last tempo), so it lines up with the bars.

Where the primer had notes still sounding at the cut, they end where the continuation's
decoding ends them (the model chose when to let go), and a held sustain pedal is released at
the cut (the continuation's notes already carry the pedal in their lengths).

Times: the model's time (10 ms steps for `performance`, beats at 120 BPM for `score` and
`jsb`) is mapped to the file's ticks — seconds through the tempo map, beats through ticks per
beat — and rounded to the nearest tick.

Built on mido (pretty_midi's own dependency): it reads and writes every event as it is, which
symusic and pretty_midi, normalizing their models, do not.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from .files import atomic_write
from .notes import notes_from_pretty
from .pedal import unfold_sustain
from .tempo_map import ParsedMidi, absolute_events, model_ticks, read_mido
from .tokenizer import Tokenizer

CONTINUATION = "Continuation"
# pretty_midi refuses files whose last tick is past this ("likely corrupt"); a primer whose
# tempo map puts the continuation there is not spliced (the caller writes decoded tokens).
MAX_TICK = 10_000_000
_KEEP_AT_CUT = {"set_tempo", "time_signature", "key_signature"}  # they govern what follows


@dataclass
class Spliced:
    """What `splice` did, for the sidecar."""

    cut_tick: int
    ticks_per_beat: int
    tracks: int  # tracks of the output
    note_count: int  # notes on the continuation track(s)
    pedal_spans: int  # sustain pedal presses written on it (with `pedal`)
    rounding: str


def splice(
    tok: Tokenizer,
    primer_file: str | Path,
    primer_ids: Sequence[int],
    new_ids: Sequence[int],
    out: str | Path,
    continuation_only: bool = False,
    exclusive: bool = False,
    pedal: bool = False,
) -> Spliced:
    """Write `out`: the primer file up to the cut, then the continuation on its own track.

    Args:
        tok: the tokenizer of the ids.
        primer_file: the MIDI file the primer was read from.
        primer_ids: the primer's event ids (no BOS), as the model saw them.
        new_ids: the continuation's ids.
        continuation_only: write only the continuation, with the tempo, meter and key in
            effect at the cut, from tick 0 — to drop in at the cut point.
        exclusive: fail if `out` appears meanwhile (see `files.atomic_path`).
        pedal: write the continuation's pedal-held notes as key lifts plus sustain pedal
            (CC64), as `pedal.unfold_sustain` reads them from the note lengths.

    Raises:
        OSError, ValueError (mido): the primer file cannot be parsed event by event.
    """
    parsed = read_mido(primer_file)
    mf, tempo = parsed.mf, parsed.tempo
    used, program = _facts(parsed)
    cut_seconds = float(tok.seconds(primer_ids))
    cut = model_ticks(tok, mf, tempo)(cut_seconds)
    # The output keeps the primer's tempo changes up to the cut only (its last tempo goes on),
    # so the continuation is placed through that clock, not through the whole file's.
    to_tick = model_ticks(tok, mf, tempo.until(cut))
    notes = notes_from_pretty(tok.decode(list(primer_ids) + list(new_ids)), sustain=False)
    later = notes.start >= cut_seconds - 1e-9
    ends = {int(p): float(e) for s, e, p, n in zip(notes.start, notes.end, notes.pitch, later)
            if not n and e > cut_seconds}  # fmt: skip  # primer notes the model let sound on
    channel = next((c for c in range(16) if c != 9 and c not in used), 0)
    new = notes.take(np.nonzero(later)[0])
    spans: list[tuple[float, float]] = []
    if pedal:
        new, spans = unfold_sustain(new)
    track = _continuation_track(new, spans, to_tick, cut if continuation_only else 0,
                                channel, program)  # fmt: skip
    output = mido.MidiFile(type=1, ticks_per_beat=mf.ticks_per_beat)
    if continuation_only:
        output.tracks.append(_conductor_at(mf, cut))
    else:
        for tr in mf.tracks:
            output.tracks.append(_primer_part(tr, cut, {p: to_tick(e) for p, e in ends.items()}))
    output.tracks.append(track)
    last = max(sum(m.time for m in tr) for tr in output.tracks)
    if last > MAX_TICK:
        raise ValueError(f"its tempo map puts the end at tick {last:,}, past what readers accept")
    atomic_write(out, lambda p: output.save(str(p)), exclusive)
    ms = tempo.tempo_at(cut) / 1e3 / mf.ticks_per_beat
    return Spliced(
        cut_tick=cut,
        ticks_per_beat=mf.ticks_per_beat,
        tracks=len(output.tracks),
        note_count=len(new),
        pedal_spans=len(spans),
        rounding=f"continuation times rounded to the file's nearest tick ({ms:.2f} ms at "
        "the cut's tempo)",
    )


@functools.lru_cache(maxsize=2)  # one per parsed file (`tempo_map.read_mido` keeps two)
def _facts(parsed: ParsedMidi) -> tuple[frozenset[int], int]:
    """The channels the file uses and its main program."""
    tracks = parsed.mf.tracks
    used = frozenset(m.channel for tr in tracks for m in tr if hasattr(m, "channel"))
    return used, _main_program(parsed.mf)


def _main_program(mf: mido.MidiFile) -> int:
    """The program of the channel with the most notes (0 when none is set)."""
    programs, counts = {}, {}
    for tr in mf.tracks:
        for m in tr:
            if m.type == "program_change":
                programs.setdefault(m.channel, m.program)
            elif m.type == "note_on" and m.velocity > 0:
                counts[m.channel] = counts.get(m.channel, 0) + 1
    main = max(counts, key=counts.get, default=0)
    return programs.get(main, 0) if main != 9 else 0


def _primer_part(track, cut: int, ends: dict[int, int]) -> mido.MidiTrack:
    """The track's events before the cut, verbatim; notes sounding at the cut end at the
    continuation's end for their pitch (else at the cut); a held pedal is released."""
    events: list[tuple[int, mido.Message]] = []
    sounding: dict[tuple[int, int], int] = {}  # (channel, pitch) → onset tick
    pedal: dict[int, bool] = {}
    for tick, m in absolute_events(track):
        if m.type == "end_of_track":
            continue
        if tick < cut or (tick == cut and m.is_meta and m.type in _KEEP_AT_CUT):
            events.append((tick, m))
            if m.type == "note_on" and m.velocity > 0:
                sounding[(m.channel, m.note)] = tick
            elif m.type in ("note_off", "note_on"):
                sounding.pop((m.channel, m.note), None)
            elif m.type == "control_change" and m.control == 64:
                pedal[m.channel] = m.value >= 64
    for (ch, pitch), _ in sounding.items():
        events.append(
            (max(cut, ends.get(pitch, cut)), mido.Message("note_off", channel=ch, note=pitch))
        )
    for ch, down in pedal.items():
        if down:
            events.append((cut, mido.Message("control_change", channel=ch, control=64, value=0)))
    return _track(events)


def _conductor_at(mf: mido.MidiFile, cut: int) -> mido.MidiTrack:
    """Tempo, time and key signature in effect at the cut, at tick 0."""
    last: dict[str, mido.MetaMessage] = {}
    for tick, m in absolute_events(mido.merge_tracks(mf.tracks)):
        if tick <= cut and m.is_meta and m.type in _KEEP_AT_CUT:
            last[m.type] = m
    return _track([(0, m.copy()) for m in last.values()])


def _continuation_track(notes, spans, to_tick, shift: int, channel: int, program: int):
    events = [(0, mido.MetaMessage("track_name", name=CONTINUATION)),
              (0, mido.Message("program_change", channel=channel, program=program))]  # fmt: skip
    for down, up in spans:
        for t, value in ((down, 127), (up, 0)):
            cc = mido.Message("control_change", channel=channel, control=64, value=value)
            events.append((to_tick(t) - shift, cc))
    for s, e, p, v in zip(notes.start, notes.end, notes.pitch, notes.velocity):
        a, b = to_tick(float(s)) - shift, to_tick(float(e)) - shift
        events.append((a, mido.Message("note_on", channel=channel, note=int(p), velocity=int(v))))
        events.append((max(b, a + 1), mido.Message("note_off", channel=channel, note=int(p))))
    return _track(events, offs_first=True)


def _track(events: list[tuple[int, mido.Message]], offs_first: bool = False) -> mido.MidiTrack:
    """A track from (absolute tick, message), stable-sorted by tick (the primer's own order
    kept); with `offs_first`, note-offs first at a tick, so a re-struck pitch is not cut by
    its own end. Delta times."""
    keys = [t * 2 + (offs_first and m.type != "note_off") for t, m in events]
    order = np.argsort(keys, kind="stable")
    track, now = mido.MidiTrack(), 0
    for i in order:
        tick, m = events[i]
        track.append(_at(m, max(0, tick - now)))
        now = max(now, tick)
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def _at(m: mido.Message | mido.MetaMessage, delta: int) -> mido.Message | mido.MetaMessage:
    """A copy of `m` at delta time `delta` (an int ≥ 0). mido's copy(time=...) validates every
    field again, which was most of the time a splice took; `m` is valid already."""
    moved = m.copy()  # without overrides: a plain copy of its fields
    vars(moved)["time"] = int(delta)
    return moved
