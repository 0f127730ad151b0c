"""Preset `performance`: the Music Transformer paper's encoding (Oore et al., 2018).

Events: NOTE_ON and NOTE_OFF for each of the 128 MIDI pitches, TIME_SHIFT of 10 ms .. 1 s in
10 ms steps, 32 VELOCITY bins; plus PAD, BOS, EOS. 3 + 128 + 128 + 100 + 32 = 391 tokens.

Time is absolute: notes are read in seconds (the file's tempo map applied) and written on a
10 ms grid (miditok MIDILike at 120 BPM, 50 ticks per beat). As in Oore et al., a VELOCITY
token comes before a NOTE_ON only when the velocity changes (miditok would repeat it after
every NOTE_ON; we reorder its output).

What this preset drops or changes by design:
    * drum tracks; programs (all instruments are merged into one piano-like stream);
    * the sustain pedal, after folding it into note durations (CC64 ≥ 64 holds notes);
    * timing finer than 10 ms; notes shorter than 10 ms last 10 ms;
    * same-pitch overlaps: a re-struck pitch ends the sounding one; unisons (same pitch,
      same onset) become one note — a single MIDI channel cannot play them differently;
    * velocity detail finer than one of 32 bins (about 4 steps).
The full pitch range 0..127 is kept, so nothing outside the piano's 21..108 is lost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import miditok
import numpy as np
import pretty_midi
import symusic

from ..midi_io import read_score, source_name
from ..notes import Notes, notes_from_pretty, notes_from_score, quantize
from ..tokenizer import (
    MidiInput,
    Tokenizer,
    as_ids,
    miditok_config,
    miditok_ticks,
    no_notes_error,
)

TICK_SECONDS = 0.01  # one tick = 10 ms: 50 ticks per beat at 120 BPM
TICKS_PER_BEAT = 50
MAX_SHIFT_TICKS = 100  # 1 s
DEFAULT_VELOCITY = 64  # for NOTE_ONs before any VELOCITY token (e.g. a window mid-piece)

SPECIAL, NOTE_ON, NOTE_OFF, VELOCITY, SHIFT = range(5)
_KINDS = {"NoteOn": NOTE_ON, "NoteOff": NOTE_OFF, "Velocity": VELOCITY, "TimeShift": SHIFT}


class PerformanceTokenizer(Tokenizer):
    preset = "performance"
    tokenizer_class = miditok.MIDILike
    pitch_prefixes = ("NoteOn", "NoteOff")
    stretches = True

    def __init__(self) -> None:
        # shifts of 1..100 ticks = 10 ms .. 1 s; the pedal is folded into durations instead
        config = miditok_config({(0, 2): TICKS_PER_BEAT})
        super().__init__(config)
        kinds = [_KINDS.get(p, SPECIAL) for p in self.prefix]
        self._kind_table(kinds, (NOTE_ON, NOTE_OFF, VELOCITY), (SHIFT,), TICKS_PER_BEAT)
        shifts = {int(self.arg[i]): i for i in np.nonzero(self.kind == SHIFT)[0]}
        if sorted(shifts) != list(range(1, MAX_SHIFT_TICKS + 1)):
            raise RuntimeError(f"unexpected miditok time-shift vocabulary: {sorted(shifts)}")
        self._shift_id = np.array([-1] + [shifts[t] for t in range(1, MAX_SHIFT_TICKS + 1)])

    def _token_seconds(self) -> np.ndarray:
        seconds = np.zeros(self.vocab_size, dtype=np.float64)
        for i, (p, v) in enumerate(zip(self.prefix, self.value)):
            if p == "TimeShift":
                seconds[i] = miditok_ticks(v, TICKS_PER_BEAT) * TICK_SECONDS
        return seconds

    # ----- encoding ----------------------------------------------------------------------
    def performance(self, midi: MidiInput) -> Notes:
        """The notes this preset encodes, in 10 ms ticks: drums dropped, sustain folded,
        instruments merged, quantized, same-pitch overlaps resolved (see module docstring)."""
        if isinstance(midi, pretty_midi.PrettyMIDI):
            notes = notes_from_pretty(midi)
        else:
            notes = notes_from_score(read_score(midi))
        return quantize(notes, TICK_SECONDS)

    def encode(self, midi: MidiInput) -> list[int]:
        notes = self.performance(midi)
        if len(notes) == 0:
            raise no_notes_error(source_name(midi), "it has no notes, or only drum notes")
        score = symusic.Score(TICKS_PER_BEAT)
        score.tempos.append(symusic.Tempo(0, 120.0))
        track = symusic.Track(program=0, is_drum=False)
        track.notes = symusic.Note.from_numpy(
            notes.start.astype(np.int32),
            (notes.end - notes.start).astype(np.int32),
            notes.pitch.astype(np.int8),
            notes.velocity.astype(np.int8),
        )
        score.tracks.append(track)
        ids = np.asarray(self._encode_score(score), dtype=np.int64)
        return self._velocity_before_note_on(ids).tolist()

    def _velocity_before_note_on(self, ids: np.ndarray) -> np.ndarray:
        """miditok writes NoteOn, Velocity for every note; Oore et al. write Velocity (only
        when it changes), NoteOn. Swap each pair, then drop repeated velocities."""
        vel = np.nonzero(self.kind[ids] == VELOCITY)[0]
        if len(vel) and (vel[0] == 0 or (self.kind[ids[vel - 1]] != NOTE_ON).any()):
            raise RuntimeError("miditok MIDILike no longer writes Velocity after NoteOn")
        out = ids.copy()
        out[vel - 1], out[vel] = ids[vel], ids[vel - 1]
        values = self.arg[ids[vel]]
        repeated = np.concatenate([[False], values[1:] == values[:-1]])
        keep = np.ones(len(ids), dtype=bool)
        keep[vel[repeated] - 1] = False
        return out[keep]

    # ----- decoding ----------------------------------------------------------------------
    def decode_notes(self, ids: Sequence[int] | np.ndarray) -> Notes:
        """Notes (in 10 ms ticks) from any ids. NOTE_OFF closes the oldest open note of its
        pitch; a NOTE_OFF with nothing open, or at the NOTE_ON's own time, is skipped; notes
        open at the end are closed there (and last at least one tick)."""
        kind, arg = self._kind_list, self._arg_list
        size = self.vocab_size
        t, velocity = 0, DEFAULT_VELOCITY
        open_notes: dict[int, deque[tuple[int, int]]] = {}
        rows: list[tuple[int, int, int, int]] = []  # start, end, pitch, velocity
        for i in as_ids(ids).tolist():
            if not 0 <= i < size:
                continue
            k = kind[i]
            if k == SHIFT:
                t += arg[i]
            elif k == VELOCITY:
                velocity = arg[i]
            elif k == NOTE_ON:
                open_notes.setdefault(arg[i], deque()).append((t, velocity))
            elif k == NOTE_OFF:
                queue = open_notes.get(arg[i])
                if queue and queue[0][0] < t:
                    start, vel = queue.popleft()
                    rows.append((start, t, arg[i], vel))
        for pitch, queue in open_notes.items():
            for start, vel in queue:
                rows.append((start, max(t, start + 1), pitch, vel))
        arr = np.array(rows, dtype=np.int64).reshape(-1, 4)  # (N, 4)
        return Notes(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3]).sorted()

    def note_seconds(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        notes = self.decode_notes(ids)  # no PrettyMIDI objects: a piece's notes in one go
        return (notes.end - notes.start).astype(np.float64) * TICK_SECONDS

    def decode(self, ids: Sequence[int] | np.ndarray) -> pretty_midi.PrettyMIDI:
        notes = self.decode_notes(ids)
        pm = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=120.0)
        piano = pretty_midi.Instrument(program=0, name="Piano")
        piano.notes = [
            pretty_midi.Note(int(v), int(p), s * TICK_SECONDS, e * TICK_SECONDS)
            for s, e, p, v in zip(
                notes.start.tolist(), notes.end.tolist(), notes.pitch.tolist(),
                notes.velocity.tolist(),
            )
        ]  # fmt: skip
        pm.instruments.append(piano)
        return pm

    # ----- augmentation ------------------------------------------------------------------
    def stretch(self, ids: np.ndarray, factor: float) -> np.ndarray:
        """Every event's time (and the window's end) scaled by `factor` and re-quantized to
        10 ms from the window start, so rounding errors do not accumulate. The result may be
        a few tokens longer or shorter. ids: (T,) → (T',) of the same dtype."""
        ids = np.asarray(ids)
        if factor == 1.0 or len(ids) == 0:
            return ids.copy()
        safe = np.clip(ids.astype(np.int64), 0, self.vocab_size - 1)
        is_shift = (self.kind[safe] == SHIFT) & (ids >= 0) & (ids < self.vocab_size)
        ticks = np.where(is_shift, self.arg[safe], 0)
        clock = np.cumsum(ticks) - ticks  # (T,) time before each token
        events = np.nonzero(~is_shift)[0]
        times = np.concatenate([clock[events], [clock[-1] + ticks[-1]]])  # events, then end
        new_times = np.rint(times * factor).astype(np.int64)
        gaps = np.diff(new_times, prepend=0)  # (E + 1,) ticks to wait before each event
        out: list[int] = []
        for gap, event in zip(gaps.tolist(), [*ids[events].tolist(), None]):
            out.extend(self._shift_tokens(gap))
            if event is not None:
                out.append(event)
        return np.asarray(out, dtype=ids.dtype)

    def _shift_tokens(self, ticks: int) -> list[int]:
        full, rest = divmod(ticks, MAX_SHIFT_TICKS)
        tokens = [int(self._shift_id[MAX_SHIFT_TICKS])] * full
        return [*tokens, int(self._shift_id[rest])] if rest else tokens
