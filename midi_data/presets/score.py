"""Preset `score`: REMI (Huang & Yang, 2020) for quantized, score-like music.

Tokens: BAR, POSITION (32nd-note grid, i.e. 8 per beat), PITCH 0..127, VELOCITY (32 bins),
DURATION (1/8 beat up to 4 beats, then 1/4 beat up to 12 beats); plus PAD, BOS, EOS.
Built on miditok REMI; the decoder is ours so that it never raises.

What this preset drops or changes by design:
    * drum tracks; programs (all instruments merged into one stream, played as piano);
    * the tempo map: time is counted in beats and decoded at 120 BPM;
    * time signatures: every bar is 4 beats long (a 3/4 piece's BAR tokens do not fall on
      its bar lines; onsets and durations are still exact on the grid);
    * onsets off the 32nd-note grid and durations off the duration grid are rounded;
      durations longer than 12 beats are cut to 12 beats;
    * the sustain pedal (not folded: score-like data rarely has one).
"""

from __future__ import annotations

from collections.abc import Sequence

import miditok
import numpy as np
import pretty_midi
import symusic

from ..midi_io import read_score, source_name
from ..tokenizer import (
    MidiInput,
    Tokenizer,
    as_ids,
    miditok_config,
    no_notes_error,
)

BEAT_RES = {(0, 4): 8, (4, 12): 4}
TICKS_PER_BEAT = 8  # the finest grid of BEAT_RES
BEATS_PER_BAR = 4
SECONDS_PER_BEAT = 0.5  # decoded at 120 BPM

SPECIAL, BAR, POSITION, PITCH, VELOCITY, DURATION = range(6)
_KINDS = {"Bar": BAR, "Position": POSITION, "Pitch": PITCH, "Velocity": VELOCITY}


class ScoreTokenizer(Tokenizer):
    preset = "score"
    tokenizer_class = miditok.REMI
    pitch_prefixes = ("Pitch",)

    def __init__(self) -> None:
        config = miditok_config(BEAT_RES, use_chords=False)
        super().__init__(config)
        kinds = [DURATION if p == "Duration" else _KINDS.get(p, SPECIAL) for p in self.prefix]
        self._kind_table(kinds, (POSITION, PITCH, VELOCITY), (DURATION,), TICKS_PER_BEAT)

    def _token_seconds(self) -> np.ndarray:
        # REMI positions are absolute within a bar, so only BAR advances time per token:
        # one 4-beat bar at 120 BPM. `seconds(ids)` therefore counts whole bars.
        seconds = np.zeros(self.vocab_size, dtype=np.float64)
        seconds[[i for i, p in enumerate(self.prefix) if p == "Bar"]] = (
            BEATS_PER_BAR * SECONDS_PER_BEAT
        )
        return seconds

    def merged_score(self, midi: MidiInput) -> symusic.Score:
        """One non-drum track holding every note of `midi` (tick time, its own resolution)."""
        score = read_score(midi)
        merged = symusic.Score(score.ticks_per_quarter)
        track = symusic.Track(program=0, is_drum=False)
        for t in score.tracks:
            if not t.is_drum:
                track.notes.extend(t.notes)
        track.notes.sort(key=lambda n: (n.time, n.pitch, n.duration))
        merged.tracks.append(track)
        return merged

    def encode(self, midi: MidiInput) -> list[int]:
        score = self.merged_score(midi)
        if score.note_num() == 0:
            raise no_notes_error(source_name(midi), "it has no notes, or only drum notes")
        return self._encode_score(score)

    def decode_notes(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """(N, 4) int64 rows (start tick, end tick, pitch, velocity), 8 ticks per beat.

        A note is PITCH, VELOCITY, DURATION in this order at the current BAR and POSITION;
        an incomplete triple is skipped; a note before any BAR is placed in bar 0."""
        kind, arg = self._kind_list, self._arg_list
        bar, position = 0, 0
        seen_bar = False
        pitch = velocity = None
        rows: list[tuple[int, int, int, int]] = []
        for i in as_ids(ids).tolist():
            if not 0 <= i < self.vocab_size:
                continue
            k = kind[i]
            if k == PITCH:
                pitch, velocity = arg[i], None
                continue
            if k == VELOCITY and pitch is not None:
                velocity = arg[i]
                continue
            if k == DURATION and pitch is not None and velocity is not None:
                start = bar * BEATS_PER_BAR * TICKS_PER_BEAT + position
                rows.append((start, start + arg[i], pitch, velocity))
            elif k == BAR:
                bar, position = (bar + 1 if seen_bar else 0), 0
                seen_bar = True
            elif k == POSITION:
                position = arg[i]
            pitch = velocity = None  # anything but PITCH, VELOCITY ends a note's triple
        return np.array(rows, dtype=np.int64).reshape(-1, 4)  # (N, 4)

    def decode(self, ids: Sequence[int] | np.ndarray) -> pretty_midi.PrettyMIDI:
        rows = self.decode_notes(ids)
        pm = pretty_midi.PrettyMIDI(resolution=480, initial_tempo=120.0)
        piano = pretty_midi.Instrument(program=0, name="Piano")
        tick = SECONDS_PER_BEAT / TICKS_PER_BEAT
        piano.notes = [
            pretty_midi.Note(int(v), int(p), s * tick, e * tick) for s, e, p, v in rows.tolist()
        ]
        pm.instruments.append(piano)
        return pm
