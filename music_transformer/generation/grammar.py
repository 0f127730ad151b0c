"""Token grammars for sampling: which tokens can be right next, row by row, while sampling.

Legend: B rows, V vocabulary, P = 128 MIDI pitches.

The sampler keeps one grammar per batch. Before each step `allowed(time_left)` gives a (B, V)
mask; the logits of everything else are set to -inf. Only what the grammar or a limit
requires is masked:

performance (NOTE_ON / NOTE_OFF / TIME_SHIFT / VELOCITY):
    * NOTE_OFF for a pitch that is not sounding, or that began at this very instant (the
      decoder skips both: the note would sound on).
    And closes notes first, as the decoder does (`rewrite`): a NOTE_ON of a sounding pitch
    becomes its NOTE_OFF, and a TIME_SHIFT that would hold a note past `max_note_seconds` (or
    run past the end the sampler asks for) becomes the NOTE_OFF of the oldest such note; the
    model then chooses again. Masking those shifts instead left the model with only shifts
    shorter than it wanted, and it answered with bursts of random notes.
score (REMI: PITCH, VELOCITY, DURATION per note):
    * anything but VELOCITY after a PITCH, anything but DURATION after its VELOCITY, and
      VELOCITY or DURATION outside a note; DURATIONs longer than `max_note_seconds` (the
      shortest one always stays allowed).
jsb (S, A, T, B per 16th step):
    * a voice above the nearest sounding voice above it (unless voice crossing is allowed);
    * a voice's pitch held past `max_note_seconds` (a repeated pitch is a held note here);
    * EOS in the middle of a step.

`ends_before(tokens)` says where a piece may end musically (a rest in a performance, a bar
line in a score, a long chord or silence at a step boundary on the grid) and `closed()` where
nothing is left sounding that the decoder would have to cut.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from midi_data.jsb import STEP_SECONDS
from midi_data.presets import jsb, performance, score

PHRASE_END_STEPS = 4  # jsb: a chord held a quarter note (4 sixteenths) or longer may end a piece


class Grammar(Protocol):
    def allowed(self, time_left: Tensor | None) -> Tensor:
        """(B, V) bool: tokens that can be right next. `time_left` (B,) seconds of music the
        row may still advance (None: no end); every row keeps at least one allowed token."""

    def rewrite(self, tokens: Tensor, time_left: Tensor | None) -> Tensor:
        """The tokens (B,) to take instead of those sampled (most grammars: the same)."""

    def update(self, tokens: Tensor) -> None:
        """Take the tokens (B,) just sampled (or fed) into the rows' state."""

    def ends_before(self, tokens: Tensor) -> Tensor:
        """(B,) bool: stopping right before `tokens` ends the row at a musical point."""

    def closed(self) -> Tensor:
        """(B,) bool: stopping now leaves nothing the decoder would have to cut short."""


def grammar_for(
    tokenizer: Any,
    primers: Sequence[Sequence[int]],
    device: torch.device,
    max_note_seconds: float | None = None,
    allow_voice_crossing: bool = False,
    primer_note_limit: bool = False,
) -> Grammar | None:
    """The grammar of `tokenizer`'s preset, with the state after each primer (None for a
    preset without one). `primer_note_limit`: for `performance` tokens, each row's note limit
    is tightened to its primer's (`PerformanceGrammar`)."""
    preset = getattr(tokenizer, "preset", None)
    if preset == "performance":
        g = PerformanceGrammar(tokenizer, len(primers), device, max_note_seconds, primer_note_limit)
    elif preset == "score":
        g = ScoreGrammar(tokenizer, len(primers), device, max_note_seconds)
    elif preset == "jsb":
        g = JsbGrammar(tokenizer, len(primers), device, max_note_seconds, allow_voice_crossing)
    else:
        return None
    g.start(primers)
    return g


def _rows(primers: Sequence[Sequence[int]], pad: int, device: torch.device) -> Tensor:
    """Left-padded (B, T) primers: replayed one column at a time; pad is a no-op token."""
    width = max(len(p) for p in primers)
    out = torch.full((len(primers), width), pad, dtype=torch.long)
    for i, p in enumerate(primers):
        out[i, width - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
    return out.to(device)


# A primer's own note lengths bound its continuation's (`primer_note_limit`): no note longer
# than PRIMER_NOTE_FACTOR × the primer's longest, and never below PRIMER_NOTE_FLOOR seconds.
# Chosen on the piano validation split; what the limit does to generated and real
# continuations is measured in MODEL_CARD.md (the piano model's note limits).
PRIMER_NOTE_FACTOR = 2.0
PRIMER_NOTE_FLOOR = 2.0


class PerformanceGrammar:
    """Which pitches sound since when, in seconds of music (see the module docstring).

    limit: the note limit in seconds (None: none). primer_relative: tighten each row's limit
    to PRIMER_NOTE_FACTOR × its primer's longest note (at least PRIMER_NOTE_FLOOR); a row
    whose primer has no notes keeps `limit`. `self.limit` is then (B,) seconds, or None.
    """

    def __init__(
        self,
        tok: Any,
        batch: int,
        device: torch.device,
        limit: float | None,
        primer_relative: bool = False,
    ):
        kind = torch.as_tensor(tok.kind, device=device)  # (V,)
        arg = torch.as_tensor(tok.arg, device=device)  # (V,)
        self.pad, self.device, self.primer_relative = tok.pad_id, device, primer_relative
        self.limit = (  # (B,) seconds per row, or None
            None
            if limit is None
            else torch.full((batch,), float(limit), dtype=torch.float64, device=device)
        )
        self.is_on, self.is_off = kind == performance.NOTE_ON, kind == performance.NOTE_OFF
        self.is_shift = kind == performance.SHIFT
        self.is_velocity = kind == performance.VELOCITY
        self.pitch = torch.where(self.is_on | self.is_off, arg, 0)  # (V,)
        self.shift = torch.as_tensor(tok.token_seconds, dtype=torch.float64, device=device)
        self.shift_cols = torch.nonzero(self.is_shift).squeeze(1)  # (S,)
        self.shortest = int(self.shift_cols[self.shift[self.shift_cols].argmin()])
        self.on_cols = torch.full((128,), -1, dtype=torch.long, device=device)
        self.off_cols = torch.full((128,), -1, dtype=torch.long, device=device)
        self.on_cols[arg[self.is_on]] = torch.nonzero(self.is_on).squeeze(1)
        self.off_cols[arg[self.is_off]] = torch.nonzero(self.is_off).squeeze(1)
        self.since = torch.full((batch, 128), math.nan, dtype=torch.float64, device=device)
        self.clock = torch.zeros(batch, dtype=torch.float64, device=device)  # (B,) seconds
        # rows whose time is up: they close what sounds and start nothing new
        self.closing = torch.zeros(batch, dtype=torch.bool, device=device)

    def start(self, primers: Sequence[Sequence[int]]) -> None:
        longest = torch.zeros_like(self.clock)  # (B,) the primer's longest note, seconds
        for column in _rows(primers, self.pad, self.device).T:
            ends = self.is_off[column] | (self.is_on[column] & self._sounding_pitch(column))
            longest = torch.maximum(longest, torch.where(ends, self._age(column), 0.0))
            self.update(column)
        ages = torch.where(self.sounding(), self.clock[:, None] - self.since, 0.0)  # (B, P)
        longest = torch.maximum(longest, ages.max(1).values)
        if self.primer_relative:
            own = (PRIMER_NOTE_FACTOR * longest).clamp(min=PRIMER_NOTE_FLOOR)
            base = self.limit if self.limit is not None else torch.full_like(own, math.inf)
            self.limit = torch.where(longest > 0, torch.minimum(own, base), base)

    def _sounding_pitch(self, tokens: Tensor) -> Tensor:
        rows = torch.arange(len(tokens), device=self.device)
        return self.sounding()[rows, self.pitch[tokens]]  # (B,)

    def _age(self, tokens: Tensor) -> Tensor:
        """(B,) how long the pitch of each row's token has sounded (nan: not sounding)."""
        rows = torch.arange(len(tokens), device=self.device)
        return torch.nan_to_num(self.clock - self.since[rows, self.pitch[tokens]], nan=0.0)

    def sounding(self) -> Tensor:
        return ~torch.isnan(self.since)  # (B, P)

    def closable(self) -> Tensor:
        """(B, P): sounding and begun before now (a NOTE_OFF at its onset is skipped)."""
        return self.sounding() & (self.since < self.clock[:, None] - 1e-9)

    def allowed(self, time_left: Tensor | None) -> Tensor:
        b, sounding, closable = self.since.shape[0], self.sounding(), self.closable()
        allow = torch.ones(b, len(self.shift), dtype=torch.bool, device=self.device)  # (B, V)
        have_on, have_off = self.on_cols >= 0, self.off_cols >= 0
        # NOTE_ON of a sounding pitch is turned into its NOTE_OFF (`rewrite`): possible only
        # once the note has begun
        allow[:, self.on_cols[have_on]] = (~sounding | closable)[:, have_on]
        allow[:, self.off_cols[have_off]] = closable[:, have_off]
        starting = ~self.closing
        if time_left is not None:  # a note begun now could not be closed before the end
            starting &= time_left >= float(self.shift[self.shortest]) - 1e-9
        allow[:, self.on_cols[have_on]] &= starting[:, None]
        allow[:, self.is_velocity] &= starting[:, None]  # a velocity only matters for a NOTE_ON
        fresh = sounding.any(1) & ~closable.any(1)  # only notes begun this instant
        if time_left is not None:  # out of time with such notes: the shortest step only
            out = fresh & (time_left < float(self.shift[self.shortest]) - 1e-9)
            allow[out] = False
            allow[out, self.shortest] = True
        return allow

    def rewrite(self, tokens: Tensor, time_left: Tensor | None) -> Tensor:
        """Close notes first, as the decoder would: a TIME_SHIFT that would carry a note past
        the note limit (or the row past its end) becomes the NOTE_OFF of the oldest such
        note, and a NOTE_ON of a sounding pitch becomes its NOTE_OFF. The model then chooses
        again, knowing the note has ended. tokens: (B,) → (B,)."""
        closable = self.closable()  # (B, P)
        step = torch.where(self.is_shift[tokens], self.shift[tokens], 0.0)  # (B,)
        age = torch.where(closable, self.clock[:, None] - self.since, -math.inf)  # (B, P)
        blocking = torch.zeros_like(closable)
        if self.limit is not None:
            blocking |= age + step[:, None] > self.limit[:, None] + 1e-9
        if time_left is not None:
            over = step > time_left.to(step.dtype) + 1e-9  # (B,) this shift passes the end
            self.closing |= over
            blocking |= over[:, None] & closable
        blocking &= closable & (step > 0)[:, None]
        oldest = torch.where(blocking, age, -math.inf).argmax(1)  # (B,)
        out = torch.where(blocking.any(1), self.off_cols[oldest], tokens)
        if time_left is not None:  # past the end with only notes begun now: shortest step
            late = (step > time_left.to(step.dtype) + 1e-9) & ~blocking.any(1)
            late &= self.sounding().any(1) & ~closable.any(1)
            out = torch.where(late, self.shortest, out)
        pitch = self.pitch[tokens]
        rows = torch.arange(len(tokens), device=self.device)
        restrike = self.is_on[tokens] & self.sounding()[rows, pitch]
        return torch.where(restrike, self.off_cols[pitch], out)

    def update(self, tokens: Tensor) -> None:
        self.clock += torch.where(self.is_shift[tokens], self.shift[tokens], 0.0)
        rows = torch.arange(len(tokens), device=self.device)
        on, off, pitch = self.is_on[tokens], self.is_off[tokens], self.pitch[tokens]
        self.since[rows[on], pitch[on]] = self.clock[on]
        self.since[rows[off], pitch[off]] = math.nan

    def ends_before(self, tokens: Tensor) -> Tensor:
        return self.is_shift[tokens] & self.closed()  # a rest begins

    def closed(self) -> Tensor:
        return ~self.sounding().any(1)


class ScoreGrammar:
    """Where each row stands in a note's PITCH, VELOCITY, DURATION triple."""

    FREE, AFTER_PITCH, AFTER_VELOCITY = range(3)

    def __init__(self, tok: Any, batch: int, device: torch.device, limit: float | None):
        kind = torch.as_tensor(tok.kind, device=device)  # (V,)
        self.pad, self.device = tok.pad_id, device
        self.is_pitch, self.is_velocity = kind == score.PITCH, kind == score.VELOCITY
        self.is_duration, self.is_bar = kind == score.DURATION, kind == score.BAR
        seconds = torch.as_tensor(tok.arg, device=device) * score.SECONDS_PER_BEAT
        seconds = seconds / score.TICKS_PER_BEAT  # (V,) a DURATION's length, seconds
        ok = self.is_duration.clone()
        if limit is not None:
            shortest = seconds[self.is_duration].min()
            ok &= (seconds <= limit + 1e-9) | (seconds == shortest)
        self.duration_ok = ok  # (V,)
        self.stage = torch.zeros(batch, dtype=torch.long, device=device)  # (B,)

    def start(self, primers: Sequence[Sequence[int]]) -> None:
        for column in _rows(primers, self.pad, self.device).T:
            self.update(column)

    def allowed(self, time_left: Tensor | None) -> Tensor:
        free = ~(self.is_velocity | self.is_duration)  # (V,)
        table = torch.stack([free, self.is_velocity, self.duration_ok])  # (3, V) by stage
        return table[self.stage]  # (B, V)

    def rewrite(self, tokens: Tensor, time_left: Tensor | None) -> Tensor:
        return tokens

    def update(self, tokens: Tensor) -> None:
        nxt = torch.full_like(self.stage, self.FREE)
        nxt = torch.where(self.is_pitch[tokens], self.AFTER_PITCH, nxt)
        after_pitch = (self.stage == self.AFTER_PITCH) & self.is_velocity[tokens]
        nxt = torch.where(after_pitch, self.AFTER_VELOCITY, nxt)
        self.stage = torch.where(tokens == self.pad, self.stage, nxt)

    def ends_before(self, tokens: Tensor) -> Tensor:
        return self.is_bar[tokens] & self.closed()

    def closed(self) -> Tensor:
        return self.stage == self.FREE


class JsbGrammar:
    """Each row's place in the S A T B raster, the pitches of the step being written and how
    long each voice has held its pitch."""

    def __init__(
        self, tok: Any, batch: int, device: torch.device, limit: float | None, crossing: bool
    ):
        v = tok.vocab_size
        self.pad, self.bos, self.eos, self.rest = tok.pad_id, tok.bos_id, tok.eos_id, tok.rest_id
        self.device, self.crossing = device, crossing
        self.value = torch.full((v,), -1, dtype=torch.long, device=device)  # (V,) pitch or -1
        self.value[tok.rest_id + 1 :] = torch.as_tensor(tok.pitches, device=device)
        self.is_note = torch.zeros(v, dtype=torch.bool, device=device)
        self.is_note[tok.rest_id :] = True  # REST and the pitches advance the raster
        self.limit_steps = (
            None if limit is None else max(1, math.floor(limit / STEP_SECONDS + 1e-9))
        )
        self.pos = torch.zeros(batch, dtype=torch.long, device=device)  # tokens into the step
        self.step = torch.full((batch, jsb.VOICES_PER_STEP), -1, dtype=torch.long, device=device)
        self.prev = torch.full_like(self.step, -1)  # the last whole step, (B, 4)
        self.held = torch.zeros_like(self.step)  # steps each voice has held prev's pitch

    def start(self, primers: Sequence[Sequence[int]]) -> None:
        for column in _rows(primers, self.pad, self.device).T:
            self.update(column)

    def allowed(self, time_left: Tensor | None) -> Tensor:
        b, voice = len(self.pos), self.pos % jsb.VOICES_PER_STEP  # (B,)
        allow = torch.ones(b, len(self.value), dtype=torch.bool, device=self.device)  # (B, V)
        pitch = self.value[None, :]  # (1, V)
        if not self.crossing:  # at most the nearest sounding voice above, in this step
            above = torch.arange(jsb.VOICES_PER_STEP, device=self.device)[None, :] < voice[:, None]
            sounding = above & (self.step >= 0)  # (B, 4)
            ceiling = torch.where(sounding, self.step, 128).amin(1)  # (B,)
            allow &= (pitch < 0) | (pitch <= ceiling[:, None])
        if self.limit_steps is not None:  # a voice's pitch held too long must change
            mine = self.prev.gather(1, voice[:, None]).squeeze(1)  # (B,)
            long = self.held.gather(1, voice[:, None]).squeeze(1) >= self.limit_steps
            allow &= ~(long[:, None] & (pitch == mine[:, None]) & (pitch >= 0))
        allow[:, self.eos] &= voice == 0
        return allow

    def rewrite(self, tokens: Tensor, time_left: Tensor | None) -> Tensor:
        return tokens

    def update(self, tokens: Tensor) -> None:
        note = self.is_note[tokens]  # (B,)
        voice = self.pos % jsb.VOICES_PER_STEP
        rows = torch.arange(len(tokens), device=self.device)
        self.step[rows[note], voice[note]] = self.value[tokens][note]
        done = note & (voice == jsb.VOICES_PER_STEP - 1)  # a whole step: hold or re-strike
        same = (self.step == self.prev) & (self.step >= 0)  # (B, 4)
        held = torch.where(same, self.held + 1, torch.where(self.step >= 0, 1, 0))
        self.held = torch.where(done[:, None], held, self.held)
        self.prev = torch.where(done[:, None], self.step, self.prev)
        self.step = torch.where(done[:, None], -1, self.step)
        restart = (tokens == self.bos) | (tokens == self.eos)
        self.pos = torch.where(restart, 0, self.pos + note.long())

    def ends_before(self, tokens: Tensor) -> Tensor:
        at_boundary = self.pos % jsb.VOICES_PER_STEP == 0
        sounding = self.prev >= 0  # (B, 4)
        long_chord = (sounding & (self.held < PHRASE_END_STEPS)).sum(1) == 0
        return at_boundary & long_chord  # all rest, or every voice held a quarter or longer

    def closed(self) -> Tensor:
        return self.pos % jsb.VOICES_PER_STEP == 0
