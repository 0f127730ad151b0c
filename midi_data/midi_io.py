"""Reading MIDI robustly, and bridging pretty_midi ↔ symusic.

Two readers are in play: pretty_midi (the public object type of this package) and symusic
(C++, ~100× faster, more lenient: `sanitize_data=True` clamps out-of-range values). Every
reader failure becomes a `MidiReadError` whose one-line message names the file and the reason.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
import pretty_midi
import symusic

from .errors import MidiReadError
from .notes import tick_seconds

MidiSource = str | Path | bytes

# Resolution of PrettyMIDI objects built from symusic scores (their times are in seconds).
_BRIDGE_TPQ = 480

# The largest MIDI file read, in MiB (the largest of the 337 classical piano pieces is 0.2 MiB;
# a whole-corpus MIDI dump stays far below): set MUSIC_TRANSFORMER_MAX_MIDI_MB to change it.
MAX_MIDI_MB_DEFAULT = 64


def max_midi_bytes() -> int:
    try:
        return int(
            float(os.environ.get("MUSIC_TRANSFORMER_MAX_MIDI_MB", MAX_MIDI_MB_DEFAULT)) * 2**20
        )
    except ValueError:
        return MAX_MIDI_MB_DEFAULT * 2**20


def source_name(source: object) -> str:
    """How a MIDI source is named in messages: its path, or a description of the object."""
    if isinstance(source, str | Path):
        return str(source)
    if isinstance(source, bytes | bytearray):
        return f"<{len(source)} bytes of MIDI>"
    return f"<{type(source).__name__}>"


def read_bytes(source: MidiSource) -> bytes:
    """The raw bytes of a MIDI path (or the bytes themselves). Raises MidiReadError.

    Only regular files are read, and only up to `max_midi_bytes()`: a device such as
    /dev/zero would be read until memory runs out, and a FIFO would block forever."""
    if isinstance(source, bytes | bytearray):
        return bytes(source)
    limit = max_midi_bytes()
    try:
        with open(source, "rb", opener=_open_nonblocking) as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise MidiReadError(f"{source}: not a regular file (a device, pipe or socket)")
            if info.st_size > limit:
                raise MidiReadError(
                    f"{source}: {info.st_size / 2**20:.1f} MiB is more than the "
                    f"{limit / 2**20:g} MiB a MIDI file may have (set "
                    "MUSIC_TRANSFORMER_MAX_MIDI_MB to raise it)"
                )
            return f.read(limit + 1)
    except IsADirectoryError:
        raise MidiReadError(f"{source}: is a directory, not a MIDI file") from None
    except OSError as e:
        raise MidiReadError(f"{source}: cannot read file ({e.strerror or e})") from None


def _open_nonblocking(path: str, flags: int) -> int:
    """Open without blocking, so that opening a FIFO with no writer returns at once (and is
    then refused as not a regular file) instead of waiting for one."""
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def check_header(data: bytes, name: str) -> None:
    """Reject what no reader handles, with a specific reason: not MIDI, SMPTE, division 0."""
    if len(data) == 0:
        raise MidiReadError(f"{name}: empty file")
    if len(data) < 14 or not data.startswith(b"MThd"):
        raise MidiReadError(f"{name}: not a standard MIDI file (no MThd header)")
    division = int.from_bytes(data[12:14], "big")
    if division & 0x8000:
        raise MidiReadError(f"{name}: SMPTE time division is not supported (only ticks per beat)")
    if division == 0:
        raise MidiReadError(f"{name}: time division is 0 ticks per beat (corrupt header)")


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def read_score(source: object) -> symusic.core.ScoreTick:
    """A symusic Score (tick time) from a path, bytes, Score or PrettyMIDI; lenient, fast.

    Raises:
        MidiReadError: unreadable file, with the reason.
    """
    if isinstance(source, symusic.Score):
        return source if isinstance(source, symusic.core.ScoreTick) else source.to("tick")
    if isinstance(source, pretty_midi.PrettyMIDI):
        return pretty_to_score(source)
    name = source_name(source)
    data = read_bytes(source)
    check_header(data, name)
    try:
        return symusic.Score.from_midi(data, sanitize_data=True)
    except Exception as first:  # symusic raises RuntimeError subclasses of many kinds
        try:
            return pretty_to_score(_pretty_from_bytes(data))
        except Exception:
            raise MidiReadError(f"{name}: unreadable MIDI ({_one_line(first)})") from None


def _pretty_from_bytes(data: bytes) -> pretty_midi.PrettyMIDI:
    with warnings.catch_warnings():  # "tempo/meta events on non-zero tracks" is noise here
        warnings.simplefilter("ignore")
        return pretty_midi.PrettyMIDI(io.BytesIO(data))


def read_midi(source: MidiSource) -> pretty_midi.PrettyMIDI:
    """Read a MIDI file (path or bytes) into a PrettyMIDI object, as leniently as possible.

    pretty_midi is tried first; when it refuses a file (out-of-range data bytes, huge tick
    values), symusic reads it with `sanitize_data=True` and the result is bridged back.

    Raises:
        MidiReadError: the file cannot be read; the message names it and gives the reason.
    """
    name = source_name(source)
    data = read_bytes(source)
    check_header(data, name)
    try:
        return _pretty_from_bytes(data)
    except Exception as first:
        try:
            score = symusic.Score.from_midi(data, sanitize_data=True)
        except Exception:
            raise MidiReadError(f"{name}: unreadable MIDI ({_one_line(first)})") from None
        return score_to_pretty(score)


def pretty_to_score(pm: pretty_midi.PrettyMIDI) -> symusic.Score:
    """Bridge a PrettyMIDI object to symusic through MIDI bytes."""
    buf = io.BytesIO()
    pm.write(buf)
    return symusic.Score.from_midi(buf.getvalue())


def score_to_pretty(score: symusic.Score) -> pretty_midi.PrettyMIDI:
    """Build a PrettyMIDI object from a symusic Score: instruments, notes, controllers and
    pitch bends at their absolute times (the tempo map is applied, then written as 120 BPM).
    Built directly rather than through bytes, because pretty_midi refuses some files symusic
    reads (huge tick values, event-less tracks)."""

    def seconds(ticks: np.ndarray) -> np.ndarray:
        return tick_seconds(score, np.asarray(ticks, dtype=np.int64))

    pm = pretty_midi.PrettyMIDI(resolution=_BRIDGE_TPQ, initial_tempo=120.0)
    for track in score.tracks:
        inst = pretty_midi.Instrument(int(track.program), is_drum=track.is_drum, name=track.name)
        n, c, b = track.notes.numpy(), track.controls.numpy(), track.pitch_bends.numpy()
        on, off = seconds(n["time"]), seconds(n["time"].astype(np.int64) + n["duration"])
        inst.notes = [
            pretty_midi.Note(int(v), int(p), float(s), float(e))
            for v, p, s, e in zip(n["velocity"], n["pitch"], on, off)
        ]
        inst.control_changes = [
            pretty_midi.ControlChange(int(k), int(v), float(t))
            for k, v, t in zip(c["number"], c["value"], seconds(c["time"]))
        ]
        inst.pitch_bends = [
            pretty_midi.PitchBend(int(v), float(t)) for v, t in zip(b["value"], seconds(b["time"]))
        ]
        pm.instruments.append(inst)
    return pm


def crop_seconds(
    pm: pretty_midi.PrettyMIDI, start: float = 0.0, end: float | None = None
) -> pretty_midi.PrettyMIDI:
    """The notes sounding in [start, end) seconds, clipped to the window and shifted so that
    the window starts at 0 s. Controller values in force at `start` (e.g. a held sustain
    pedal) are restated at 0 s. Tempo becomes 120 BPM; absolute times are unchanged.

    Args:
        pm: the source performance (not modified).
        start: window start in seconds (≥ 0).
        end: window end in seconds; None means the end of the piece.
    """
    if start < 0 or (end is not None and end <= start):
        raise ValueError(f"bad crop window [{start}, {end}) seconds")
    stop = pm.get_end_time() if end is None else end
    out = pretty_midi.PrettyMIDI(resolution=pm.resolution, initial_tempo=120.0)
    for inst in pm.instruments:
        new = pretty_midi.Instrument(inst.program, is_drum=inst.is_drum, name=inst.name)
        for n in inst.notes:
            if n.end > start and n.start < stop:
                s, e = max(n.start, start) - start, min(n.end, stop) - start
                if e > s:
                    new.notes.append(pretty_midi.Note(n.velocity, n.pitch, s, e))
        held: dict[int, int] = {}  # controller number → value in force at `start`
        for cc in sorted(inst.control_changes, key=lambda c: c.time):
            if cc.time <= start:
                held[cc.number] = cc.value
            elif cc.time < stop:
                new.control_changes.append(
                    pretty_midi.ControlChange(cc.number, cc.value, cc.time - start)
                )
        restated = [pretty_midi.ControlChange(k, v, 0.0) for k, v in held.items()]
        new.control_changes = restated + new.control_changes
        if new.notes:
            out.instruments.append(new)
    return out
