"""Four-voice 16th-note grids (the JSB Chorales benchmark format) ↔ MIDI.

A GRID is a (T, 4) int64 array: T sixteenth-note steps, columns soprano, alto, tenor, bass
(S, A, T, B), each entry a MIDI pitch or REST (−1). This is the format of
`Jsb16thSeparated.json` (Boulanger-Lewandowski et al., 2012, as prepared by C.-Z. A. Huang for
Coconet and used by the Music Transformer paper): `{"train": [piece, ...], "valid": [...],
"test": [...]}`, each piece a list of steps `[s, a, t, b]`.

The grid cannot tell a held note from a re-struck one: a voice singing the same pitch on two
consecutive steps is one held note or two repeated notes alike. `grid_to_midi` always merges
them into one held note; `midi_to_grid` writes a held note into every step it covers.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pretty_midi

from .errors import DataError, MidiReadError
from .midi_io import read_score, source_name

REST = -1
VOICES = ("Soprano", "Alto", "Tenor", "Bass")
STEPS_PER_QUARTER = 4  # sixteenth notes
STEP_SECONDS = 0.125  # one 16th at 120 BPM, the tempo grids are written at
DEFAULT_VELOCITY = 80
# Mean pitch of each voice in Jsb16thSeparated.json (S 70.4, A 65.0, T 59.5, B 50.7): where a
# voice is assumed to be before its first note, when notes are split into voices by pitch.
VOICE_CENTERS = (70, 65, 59, 51)
# `midi_to_grid` refuses music with more than four notes at once in more than this fraction
# of its sounding steps: it is not four-part writing.
MAX_OVERFULL_FRACTION = 0.5
GRID_SPLITS = ("train", "valid", "test")
MAX_STEPS = 200_000  # ≈ 3.5 hours at 120 BPM; longer is a corrupt file, not a primer


# ----- the JSON benchmark file ------------------------------------------------------------
def read_grid_json(path: str | Path) -> dict[str, list[np.ndarray]]:
    """The pieces of a JSB-style grid file, per split, in file order.

    Args:
        path: a JSON file `{"train": [...], "valid": [...], "test": [...]}` (any non-empty
            subset of the three keys), each piece a list of `[s, a, t, b]` steps of MIDI
            pitches 0..127 or −1 (rest).
    Returns:
        {split: [(T, 4) int64 grid, ...]} for the splits present, in the order train, valid,
        test.
    Raises:
        DataError: unreadable file, invalid JSON, or JSON not in this format (the message
            says where).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not valid JSON ({getattr(e, 'msg', e)})") from None
    expected = 'expected {"train"|"valid"|"test": [piece, ...]} with pieces of [S, A, T, B] steps'
    if not isinstance(data, dict) or not data or set(data) - set(GRID_SPLITS):
        raise DataError(f"{path} is not a four-voice grid file ({expected})")
    out: dict[str, list[np.ndarray]] = {}
    for split in (s for s in GRID_SPLITS if s in data):
        if not isinstance(data[split], list):
            raise DataError(f"{path}: {split!r} is not a list of pieces ({expected})")
        out[split] = [_grid_piece(p, f"{path}: {split}[{i}]") for i, p in enumerate(data[split])]
    return out


def _grid_piece(piece: object, where: str) -> np.ndarray:
    try:
        grid = np.array(piece, dtype=np.int64)  # (T, 4)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where} is not a list of [S, A, T, B] pitch steps") from None
    if grid.ndim != 2 or grid.shape[1] != 4 or len(grid) == 0:
        raise DataError(f"{where} is not a non-empty list of [S, A, T, B] steps")
    if grid.min() < REST or grid.max() > 127:
        raise DataError(f"{where} has values outside −1..127")
    return grid


# ----- grid → MIDI ------------------------------------------------------------------------
def voice_notes(line: np.ndarray) -> list[tuple[int, int, int]]:
    """(first step, end step, pitch) of each note of one voice; equal consecutive pitches
    are merged into one held note (the grid cannot say whether they were re-struck).

    Args:
        line: (T,) pitches or REST of one voice.
    """
    line = np.asarray(line, dtype=np.int64)
    if len(line) == 0:
        return []
    starts = np.nonzero(np.concatenate([[True], line[1:] != line[:-1]]))[0]  # (K,)
    ends = np.concatenate([starts[1:], [len(line)]])
    return [(int(s), int(e), int(line[s])) for s, e in zip(starts, ends) if line[s] != REST]


def grid_to_midi(
    grid: np.ndarray,
    step_seconds: float = STEP_SECONDS,
    velocity: int = DEFAULT_VELOCITY,
    program: int = 0,
) -> pretty_midi.PrettyMIDI:
    """A MIDI performance of a grid: one instrument (track) per voice, S, A, T, B in order.

    Args:
        grid: (T, 4) pitches or REST.
        step_seconds: length of one step (default: a 16th at 120 BPM, 0.125 s).
        velocity: MIDI velocity of every note (the grid has no dynamics).
        program: General MIDI program of the four instruments (0: piano).
    """
    grid = np.asarray(grid, dtype=np.int64).reshape(-1, 4)  # (T, 4)
    pm = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=120.0)
    for v, name in enumerate(VOICES):
        inst = pretty_midi.Instrument(program=program, name=name)
        inst.notes = [
            pretty_midi.Note(velocity, p, s * step_seconds, e * step_seconds)
            for s, e, p in voice_notes(grid[:, v])
        ]
        pm.instruments.append(inst)
    return pm


# ----- MIDI → grid ------------------------------------------------------------------------
def midi_to_grid(midi: object) -> np.ndarray:
    """Quantize a MIDI file into a four-voice grid of 16th-note steps.

    Time: onsets and offsets are rounded to the nearest 16th of the file's own beat grid
    (its ticks per quarter note, which its tempo map turns into seconds), so tempo changes
    do not matter and every note lasts at least one step. Leading and trailing silent steps
    are dropped.

    Voices: when the file has exactly four non-drum tracks with notes, each track is a voice,
    ordered by mean pitch (highest = soprano); within a track the most recently struck note
    sounding at a step is taken (of simultaneous onsets, the highest). Otherwise all notes
    are merged and split by pitch order at each step (`split_voices`).

    Args:
        midi: a path, MIDI bytes, a PrettyMIDI object or a symusic Score.
    Returns:
        (T, 4) int64 grid (T ≥ 1).
    Raises:
        MidiReadError: unreadable file, no notes, longer than MAX_STEPS, or too many
            simultaneous notes to be four voices (more than four in over half of the steps
            where anything sounds).
    """
    name = source_name(midi)
    score = read_score(midi)
    step = score.ticks_per_quarter / STEPS_PER_QUARTER  # ticks per 16th
    tracks = []
    for t in score.tracks:
        if t.is_drum or len(t.notes) == 0:
            continue
        n = t.notes.numpy()
        start = np.rint(n["time"] / step).astype(np.int64)
        end = np.maximum(np.rint((n["time"] + n["duration"]) / step).astype(np.int64), start + 1)
        tracks.append((start, end, n["pitch"].astype(np.int64)))
    if not tracks:
        raise MidiReadError(f"{name}: no notes to make four voices of (or only drum notes)")
    steps = int(max(int(e.max()) for _, e, _ in tracks))
    if steps > MAX_STEPS:
        raise MidiReadError(f"{name}: {steps} sixteenth-note steps long; too long for a grid")
    if len(tracks) == 4:
        tracks.sort(key=lambda t: -float(t[2].mean()))
        grid = np.stack([_track_line(*t, steps) for t in tracks], axis=1)  # (T, 4)
    else:
        grid = split_voices(_sounding(tracks, steps), name)
    sounding = np.nonzero((grid != REST).any(axis=1))[0]
    return grid[sounding[0] : sounding[-1] + 1]


def _track_line(start: np.ndarray, end: np.ndarray, pitch: np.ndarray, steps: int) -> np.ndarray:
    """(steps,) the pitch of one track at each step: later onsets overwrite earlier ones."""
    line = np.full(steps, REST, dtype=np.int64)
    for i in np.lexsort((pitch, start)).tolist():
        line[start[i] : end[i]] = pitch[i]
    return line


def _sounding(tracks: list[tuple[np.ndarray, np.ndarray, np.ndarray]], steps: int) -> np.ndarray:
    """(steps, 128) int: how many notes of each pitch sound at each step, all tracks merged
    (a unison of two voices in one track is two notes of one pitch)."""
    roll = np.zeros((steps, 128), dtype=np.int64)
    for start, end, pitch in tracks:
        for s, e, p in zip(start.tolist(), end.tolist(), pitch.tolist()):
            roll[s:e, p] += 1
    return roll


def split_voices(roll: np.ndarray, name: str = "<music>") -> np.ndarray:
    """Four voices from merged notes, by pitch order at each step.

    Notes are counted with repeats, so a unison written as two notes of one pitch feeds two
    voices. Four notes: highest = soprano … lowest = bass. More than four: repeated pitches
    count once (instruments doubling voices); if more than four pitches remain, the highest
    and lowest are soprano and bass, and alto and tenor take the inner pitches closest to
    where they were. Fewer than four: the notes go, in pitch order, to the voices that were
    nearest to them (before its first note a voice is assumed at its JSB mean pitch), and the
    voices left over REST — a unison written as ONE note therefore sounds in one voice only.

    Args:
        roll: (T, 128) int, notes of each pitch sounding at each step.
        name: names the music in errors.
    Returns:
        (T, 4) int64 grid.
    Raises:
        MidiReadError: more than four pitches sound in over half of the sounding steps.
    """
    counts = np.where(roll.sum(axis=1) > 4, (roll > 0).sum(axis=1), roll.sum(axis=1))  # (T,)
    sounding = int((counts > 0).sum())
    overfull = int((counts > 4).sum())
    if sounding and overfull > MAX_OVERFULL_FRACTION * sounding:
        raise MidiReadError(
            f"{name}: more than four notes sound at once in {overfull} of its {sounding} "
            "sixteenth-note steps; cannot make four voices (S, A, T, B) of it"
        )
    grid = np.full((len(roll), 4), REST, dtype=np.int64)
    last = list(VOICE_CENTERS)  # each voice's latest pitch
    for t in np.nonzero(counts)[0].tolist():
        pitches = np.repeat(np.arange(128), roll[t])[::-1].tolist()  # highest first
        if len(pitches) > 4:
            pitches = sorted(set(pitches), reverse=True)
        row = _assign(pitches, last)
        grid[t] = row
        last = [p if p != REST else q for p, q in zip(row, last)]
    return grid


def _assign(pitches: list[int], last: list[int]) -> list[int]:
    """One step's voices from its pitches (highest first), given each voice's last pitch."""
    if len(pitches) == 4:
        return pitches
    if len(pitches) > 4:  # keep the outer voices; inner voices take the closest inner pitches
        inner = min(
            itertools.combinations(pitches[1:-1], 2),
            key=lambda pair: abs(pair[0] - last[1]) + abs(pair[1] - last[2]),
        )
        return [pitches[0], *inner, pitches[-1]]
    voices = min(  # which voices sing, in order (combinations keep S > A > T > B)
        itertools.combinations(range(4), len(pitches)),
        key=lambda vs: sum(abs(p - last[v]) for p, v in zip(pitches, vs)),
    )
    row = [REST] * 4
    for p, v in zip(pitches, voices):
        row[v] = p
    return row
