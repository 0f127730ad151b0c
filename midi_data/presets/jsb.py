"""Preset `jsb`: the four-voice 16th-note grid of the JSB Chorales benchmark, serialized as the
Music Transformer paper did for its Table 2 — a raster scan: for each 16th-note step, the
soprano, alto, tenor and bass tokens in that order.

Tokens: one PITCH token per MIDI pitch of the vocabulary (default: the 46 pitches 36..81
that occur in Jsb16thSeparated.json), one REST token, and PAD, BOS, EOS — 50 in all. Pitch
tokens are shared by the four voices; a token's voice is its position in the step (its index
after BOS, modulo 4). The pitch list is saved in tokenizer.json, so ids never change.

Time: every PITCH or REST token advances 1/4 of a step, i.e. 0.03125 s at the decoding tempo
(a 16th at 120 BPM = 0.125 s per step), so `seconds(ids)` is exact on whole steps.

What this preset drops or changes by design:
    * held and re-struck notes are not told apart: a voice's repeated pitch on consecutive
      steps decodes as ONE held note (the benchmark data cannot distinguish them either);
    * timing finer than a 16th, the tempo map (decoded at 120 BPM), dynamics (one velocity),
      instruments, fermatas;
    * more than four simultaneous notes (see `midi_data.jsb.midi_to_grid`);
    * pitches outside the vocabulary: moved by octaves into it when encoding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pretty_midi

from ..jsb import REST, STEP_SECONDS, grid_to_midi, midi_to_grid
from ..midi_io import source_name
from ..tokenizer import MidiInput, Tokenizer, as_ids, no_notes_error

JSB_PITCHES = tuple(range(36, 82))  # every pitch of Jsb16thSeparated.json (all splits)
VOICES_PER_STEP = 4
TOKEN_SECONDS = STEP_SECONDS / VOICES_PER_STEP  # 0.03125 s


class JsbTokenizer(Tokenizer):
    """Four-voice grid ↔ raster-scan token ids (see the module docstring).

    Args:
        pitches: the MIDI pitches of the vocabulary, ascending and distinct (default: the
            JSB data's 36..81).

    Attributes (besides `Tokenizer`'s):
        rest_id: the REST token.
        pitches: the vocabulary's pitches, ascending.
    """

    preset = "jsb"
    frame = 4  # S, A, T, B tokens per 16th step
    grain = 16  # windows start on a quarter-note beat: the chorales start on one (pickups
    # are whole beats), so (position − 1) // 4 mod 4 is the 16th within the beat
    tokenizer_class = None
    pitch_prefixes = ("Pitch",)

    def __init__(self, pitches: Sequence[int] | None = None) -> None:
        pitches = list(JSB_PITCHES if pitches is None else pitches)
        ascending = pitches == sorted(set(pitches))
        if not pitches or not ascending or not 0 <= pitches[0] <= pitches[-1] <= 127:
            raise ValueError("jsb tokenizer: pitches must be distinct MIDI pitches 0..127 in order")
        self.pitches = [int(p) for p in pitches]
        self._set_vocab(["PAD_None", "BOS_None", "EOS_None", "Rest_None"]
                        + [f"Pitch_{p}" for p in self.pitches])  # fmt: skip
        self.rest_id = self.vocab.index("Rest_None")
        # grid value (pitch, or REST at index 128) → token id; −1 where the vocabulary has none
        self._id_of = np.full(129, -1, dtype=np.int64)  # (129,)
        self._id_of[self.pitches] = np.arange(len(self.pitches)) + self.rest_id + 1
        self._id_of[128] = self.rest_id
        # token id → grid value; specials map to a value decoding never reads
        self._value_of = np.full(self.vocab_size, REST, dtype=np.int64)  # (V,)
        self._value_of[self.rest_id + 1 :] = self.pitches

    def options(self) -> dict[str, object]:
        return {"pitches": self.pitches}

    def _token_seconds(self) -> np.ndarray:
        seconds = np.full(self.vocab_size, TOKEN_SECONDS, dtype=np.float64)
        seconds[[self.pad_id, self.bos_id, self.eos_id]] = 0.0
        return seconds

    # ----- encoding ----------------------------------------------------------------------
    def encode(self, midi: MidiInput) -> list[int]:
        """Raster-scan ids of a MIDI file quantized into four voices (`midi_to_grid`).

        Raises:
            MidiReadError: unreadable, no notes, or not makeable into four voices.
        """
        grid = midi_to_grid(midi)
        if len(grid) == 0:
            raise no_notes_error(source_name(midi), "no notes after quantizing")
        return self.encode_grid(grid)

    def encode_grid(self, grid: np.ndarray) -> list[int]:
        """Ids of a grid: steps in order, S, A, T, B within a step. Pitches missing from the
        vocabulary are moved by octaves towards it (then to the nearest pitch it has).

        Args:
            grid: (T, 4) MIDI pitches or REST (−1).
        Returns:
            4·T token ids.
        """
        grid = np.asarray(grid, dtype=np.int64)
        if grid.ndim != 2 or grid.shape[1] != VOICES_PER_STEP:
            raise ValueError(f"a grid has shape (steps, 4), not {grid.shape}")
        values = np.where(grid < 0, 128, self._fold(grid))  # REST → index 128
        return self._id_of[values].reshape(-1).tolist()  # (4T,) raster scan

    def _fold(self, pitches: np.ndarray) -> np.ndarray:
        """Pitches moved by octaves into [lowest, highest] of the vocabulary, then to the
        nearest pitch the vocabulary has."""
        lo, hi = self.pitches[0], self.pitches[-1]
        p = np.clip(pitches, 0, 127)
        while (low := p < lo).any() and hi - lo >= 11:
            p = np.where(low, p + 12, p)
        while (high := p > hi).any() and hi - lo >= 11:
            p = np.where(high, p - 12, p)
        have = np.asarray(self.pitches)
        return have[np.abs(p[..., None] - have).argmin(axis=-1)]

    # ----- decoding ----------------------------------------------------------------------
    def decode_grid(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """The grid of any id sequence; never raises.

        A token's voice is its position after the latest BOS or EOS (or the start), modulo 4:
        BOS and EOS close a partial step (its missing voices rest), so a piece after them
        starts aligned again. PAD and ids outside the vocabulary are skipped.

        Returns:
            (T, 4) int64 grid, REST where there is no pitch.
        """
        ids = as_ids(ids)
        ids = ids[(ids >= 0) & (ids < self.vocab_size) & (ids != self.pad_id)]
        bounds = np.nonzero((ids == self.bos_id) | (ids == self.eos_id))[0]
        rows = []
        for part in np.split(ids, bounds):
            events = part[(part != self.bos_id) & (part != self.eos_id)]
            steps = -(-len(events) // VOICES_PER_STEP)
            grid = np.full(steps * VOICES_PER_STEP, REST, dtype=np.int64)
            grid[: len(events)] = self._value_of[events]
            rows.append(grid.reshape(steps, VOICES_PER_STEP))  # (steps, 4)
        return np.concatenate(rows) if rows else np.zeros((0, VOICES_PER_STEP), np.int64)

    def decode(self, ids: Sequence[int] | np.ndarray) -> pretty_midi.PrettyMIDI:
        """Four instruments (S, A, T, B) at 120 BPM; a voice's repeated pitch on consecutive
        steps is one held note (see `midi_data.jsb.grid_to_midi`). Never raises."""
        return grid_to_midi(self.decode_grid(ids))
