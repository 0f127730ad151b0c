"""Backtracking for the guarded sampler: per-row snapshots, and a row put back to one.

Legend: B rows, K rows put back at once, V vocabulary.

`RowGuards` reads every row's new tokens (`guards.RowWatch`); every `check_every` seconds of
model time it measures the row's last `window` seconds. A good (or not yet judgeable) window
leaves a snapshot: the row's length, its seconds, its grammar state and its watch. A bad one
puts the row back to the latest snapshot at least `attempt × rewind` seconds earlier: the
grammar rows and the watch are restored from the snapshot, the row's random stream is
reseeded (seed + `RESEED` × backtrack number, recorded, so the run stays reproducible) and the
sampler re-feeds the row's last `window` tokens to the model (`replace_rows`): the row then
continues exactly as a fresh run from that prefix would (tested). Other rows do not wait: the
batch keeps stepping, and the re-fed rows' keys are spliced into the batch's cache.

After `max_attempts` backtracks at one place the window is accepted as it is and the row is
not checked again until the window has passed; a row backtracks at most `max_backtracks`
times. Each backtrack is recorded: seconds of the continuation (the file's) where the bad
window ended and where the row went back to (and its new tokens then and after), why, which
attempt, and the seed the row went on with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from ..nn.cache import KVCache
from ..nn.lstm import LSTMState
from .guards import GuardBands, GuardSettings, OnsetReader, start_watch, window_stats

RESEED = 1 << 32  # a backtracked row's stream: its seed + RESEED × (its backtracks so far)

# The per-row state of each grammar (`generation.grammar`): tensors whose first dimension is
# the row. Their other attributes are tables or limits that never change while sampling.
GRAMMAR_STATE = {
    "PerformanceGrammar": ("since", "clock", "closing"),
    "ScoreGrammar": ("stage",),
    "JsbGrammar": ("pos", "step", "prev", "held"),
}


NOT_USED = "not used: it needs performance tokens, and relative positions or an LSTM"


def start_guards(
    settings: Any, tokenizer: Any, primers: Sequence[Sequence[int]], rules: Any, picker: Any,
    model_state: Any, reencodes: bool,
) -> RowGuards | None:  # fmt: skip
    """The rows' guards when `settings.guard` asks for them and they can work: `performance`
    tokens, and a model whose rows can be re-fed — a sliding KV cache or an LSTM state (a
    model that `reencodes` its context, the absolute-position baseline, cannot). Else None."""
    if settings.guarded is None or getattr(tokenizer, "preset", None) != "performance":
        return None
    if reencodes or not supports(model_state, rules.grammar):
        return None
    return RowGuards(
        settings.guarded, tokenizer, primers, rules, picker, rules.rates, settings.seed
    )


def guard_record(settings: Any, guards: RowGuards | None, row: int) -> dict[str, Any] | None:
    """What `Generated.guard` records of one row (None when no guard was asked for)."""
    if settings.guarded is None:
        return None
    return guards.record(row) if guards is not None else {"note": NOT_USED}


def supports(model_state: Any, grammar: Any) -> bool:
    """Whether rows of this model state and grammar can be put back (a KV cache or an LSTM
    state; a grammar whose row state is known, or none)."""
    known = grammar is None or type(grammar).__name__ in GRAMMAR_STATE
    return isinstance(model_state, KVCache | LSTMState) and known


def replace_rows(state: Any, rows: Tensor, donor: Any) -> Any:
    """The model state with rows `rows` (K,) replaced by the K rows of `donor`."""
    if isinstance(state, LSTMState):
        h, c = state.h.clone(), state.c.clone()  # (L, B, N)
        h[:, rows], c[:, rows] = donor.h, donor.c
        return LSTMState(h, c, max(state.length, donor.length))
    return state.replace_rows(rows, donor)


@dataclass
class Snapshot:
    length: int  # the row's new tokens kept
    seconds: float  # their seconds of music (model time)
    grammar: dict[str, Tensor]
    watch: tuple


@dataclass
class Spot:
    """Where a row keeps going bad: the end of its first bad window, attempts there."""

    at: float
    attempts: int = 0


class RowGuards:
    """Watches, snapshots and backtracks of a batch's rows (see the module docstring)."""

    def __init__(
        self,
        settings: GuardSettings,
        tokenizer: Any,
        primers: Sequence[Sequence[int]],
        rules: Any,
        picker: Any,
        rates: Tensor,
        seed: int | None,
    ) -> None:
        self.s, self.rules, self.picker, self.seed = settings, rules, picker, seed
        self.rates = rates.tolist()
        self.reader = OnsetReader(tokenizer)
        bands = settings.bands or GuardBands()
        self.watches = [start_watch(self.reader, p, bands, settings.window) for p in primers]
        self.snapshots: list[list[Snapshot]] = [[] for _ in primers]
        self.spots: list[Spot | None] = [None] * len(primers)
        self.records: list[list[dict[str, Any]]] = [[] for _ in primers]
        for row in range(len(primers)):
            self.snapshots[row].append(self._snapshot(row, 0, 0.0))

    def _snapshot(self, row: int, length: int, seconds: float) -> Snapshot:
        grammar = self.rules.grammar
        names = GRAMMAR_STATE.get(type(grammar).__name__, ()) if grammar is not None else ()
        state = {name: getattr(grammar, name)[row].clone() for name in names}
        return Snapshot(length, seconds, state, self.watches[row].mark())

    def observe(
        self, tokens: list[int], lengths: list[int], seconds: list[float], running: list[bool]
    ) -> dict[int, Snapshot]:
        """Take each running row's newest token (`lengths`: new tokens so far, this one
        included; `seconds`: their model seconds); return the rows to put back, each with its
        snapshot (already restored here: grammar, watch, random stream)."""
        back = {}
        for row, (token, go) in enumerate(zip(tokens, running)):
            if not go:
                continue
            watch = self.watches[row]
            clock = self.reader.read([token], watch.tape).clock
            if clock < watch.next_check - 1e-9:
                continue
            watch.next_check = clock + self.s.check_every
            why = self._breach(watch)
            if why is None:
                self.snapshots[row].append(self._snapshot(row, lengths[row], seconds[row]))
                continue
            snap = self._back(row, why, lengths[row])
            if snap is not None:
                back[row] = snap
        return back

    def _breach(self, watch: Any) -> str | None:
        clock = watch.tape.clock
        if clock < self.s.window - 1e-9 or clock < watch.quiet_until:
            return None
        return window_stats(watch.tape, clock - self.s.window, clock).breach(watch.bands)

    def _back(self, row: int, why: str, length: int) -> Snapshot | None:
        """Restore `row` to an earlier snapshot, or None when its attempts are spent."""
        watch, spot = self.watches[row], self.spots[row]
        clock = watch.tape.clock
        if spot is None or spot.at < clock - self.s.window:
            spot = self.spots[row] = Spot(clock)
        spot.attempts += 1
        if spot.attempts > self.s.max_attempts or len(self.records[row]) >= self.s.max_backtracks:
            watch.quiet_until = clock + self.s.window  # accepted as it is
            return None
        target = clock - spot.attempts * self.s.rewind
        snaps = self.snapshots[row]
        while len(snaps) > 1 and snaps[-1].seconds > target + 1e-9:
            snaps.pop()
        snap = snaps[-1]
        rate = self.rates[row]
        seed = None
        if self.seed is not None and self.picker.generators is not None:
            seed = int(self.seed) + row + RESEED * (len(self.records[row]) + 1)
            self.picker.generators[row].manual_seed(seed)
        self.records[row].append(
            {"at": round(clock * rate, 3), "to": round(snap.seconds * rate, 3),
             "from_token": length, "to_token": snap.length, "reason": why,
             "attempt": spot.attempts, "seed": seed}
        )  # fmt: skip
        grammar = self.rules.grammar
        for name, value in snap.grammar.items():
            getattr(grammar, name)[row] = value
        if self.rules.guard is not None:  # --no-repeat-ngram's history
            self.rules.guard.truncate(row, snap.length)
        watch.restore(snap.watch)
        return snap

    def record(self, row: int) -> dict[str, Any]:
        """What the sidecar records of one row: the settings and its backtracks."""
        bands = self.watches[row].bands
        return {**self.s.record(), "bands_used": bands.__dict__, "backtracks": self.records[row]}
