"""What the sampler may pick, and when a row is done: the token grammar, the length asked
for, early ends, and the repeat guard — applied to the logits of every step.

Legend: B rows, V vocabulary.

Endings. With `seconds` S and a tokenizer whose grammar is known, a row ends at a musical
point near S: the first place after 0.9·S where the grammar sees an ending (a rest begins in a
performance; a bar line in a score; at a step boundary of the chorale grid after a chord held
a quarter note or longer); at the latest around 1.1·S, where time may no longer advance and
the notes still sounding are closed first. Without a grammar a row stops the moment it
reaches S. EOS is masked until 0.9·S (with `tokens` only: always), unless `allow_early_end`.
S is in the seconds of the file a row is written into: with per-row `rates` (file seconds per
model second, `Primer.rate`) each row's S becomes S / rate of the model's time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .grammar import grammar_for
from .settings import SamplingSettings

SOFT_END, HARD_END = 0.9, 1.1  # fractions of the seconds asked for


@dataclass(frozen=True)
class TokenInfo:
    """What the sampler needs to know of a tokenizer.

    Attributes:
        pad_id: id put in padded columns (masked out; any valid id works).
        eos_id: a row that samples this id stops (the id is not returned); None: never.
        suppress_ids: ids never sampled (e.g. PAD and BOS).
        token_seconds: (V,) seconds of music each id advances; needed for `settings.seconds`.
        tokenizer: the tokenizer itself, for its grammar (None: no grammar masks).
    """

    pad_id: int = 0
    eos_id: int | None = None
    suppress_ids: tuple[int, ...] = ()
    token_seconds: Any = None
    tokenizer: Any = None

    @classmethod
    def of(cls, tokenizer: Any) -> TokenInfo:
        """From a midi_data tokenizer: stop at EOS, never sample PAD or BOS, its grammar."""
        return cls(
            pad_id=int(tokenizer.pad_id),
            eos_id=int(tokenizer.eos_id),
            suppress_ids=(int(tokenizer.pad_id), int(tokenizer.bos_id)),
            token_seconds=tokenizer.token_seconds,
            tokenizer=tokenizer,
        )


class RepeatGuard:
    """Masks the token that would complete an n-gram its row has already played (primer
    included): `no_repeat_ngram` n. Exact repeats of n tokens become impossible, so a
    greedy or cold decoder cannot loop; shorter motifs still recur."""

    def __init__(self, n: int, primers: Sequence[Sequence[int]], vocab: int, device):
        self.n, self.vocab, self.device = n, vocab, device
        self.history = [list(p) for p in primers]
        self.primer_lengths = [len(p) for p in primers]
        self.seen: list[dict[tuple[int, ...], set[int]]] = [{} for _ in primers]
        for row in range(len(primers)):
            self._learn(row)

    def _learn(self, row: int) -> None:
        """Record every n-gram of row `row`'s history."""
        h, n = self.history[row], self.n
        for i in range(len(h) - n + 1):
            self.seen[row].setdefault(tuple(h[i : i + n - 1]), set()).add(h[i + n - 1])

    def truncate(self, row: int, new_tokens: int) -> None:
        """Forget row `row`'s history after its first `new_tokens` new tokens (a backtrack)."""
        del self.history[row][self.primer_lengths[row] + new_tokens :]
        self.seen[row] = {}
        self._learn(row)

    def allowed(self) -> Tensor:
        allow = torch.ones(len(self.history), self.vocab, dtype=torch.bool)  # (B, V)
        for row, h in enumerate(self.history):
            banned = self.seen[row].get(tuple(h[len(h) - self.n + 1 :]))
            if banned:
                allow[row, sorted(banned)] = False
        return allow.to(self.device)

    def update(self, tokens: Tensor) -> None:
        for row, token in enumerate(tokens.tolist()):
            h = self.history[row]
            h.append(token)
            if len(h) >= self.n:
                self.seen[row].setdefault(tuple(h[-self.n : -1]), set()).add(token)


class Rules:
    """The per-batch policy of one `generate` call (see the module docstring)."""

    def __init__(
        self,
        settings: SamplingSettings,
        tokens: TokenInfo,
        primers: Sequence[Sequence[int]],
        device: torch.device,
        rates: Sequence[float] | None = None,
    ) -> None:
        self.s, self.eos, self.device = settings, tokens.eos_id, device
        # (B,) file seconds per model second: seconds are counted in the model's time, and
        # each row's length asked for (`settings.seconds`, the file's) is turned into it
        rates = [1.0] * len(primers) if rates is None else list(rates)
        self.rates = torch.tensor(rates, dtype=torch.float64, device=device)  # (B,)
        self.target = None if settings.seconds is None else settings.seconds / self.rates
        self.durations = None
        if tokens.token_seconds is not None:
            self.durations = torch.as_tensor(
                tokens.token_seconds, dtype=torch.float64, device=device
            )  # (V,)
        self.grammar = None
        if tokens.tokenizer is not None and settings.grammar:
            self.grammar = grammar_for(
                tokens.tokenizer, primers, device, settings.max_note_seconds,
                settings.allow_voice_crossing, settings.primer_note_limit,
            )  # fmt: skip
        self.guard = None
        if settings.no_repeat_ngram:
            vocab = len(self.durations) if self.durations is not None else None
            vocab = vocab or getattr(tokens.tokenizer, "vocab_size", None)
            self.guard = RepeatGuard(settings.no_repeat_ngram, primers, vocab, device)
        self.musical = self.grammar is not None and settings.seconds is not None
        if self.durations is not None and bool((self.durations > 0).any()):
            self.step_seconds = float(self.durations[self.durations > 0].min())
        else:
            self.step_seconds = 0.0

    def constrain(self, logits: Tensor, seconds: Tensor) -> Tensor:
        """(B, V) logits with -inf wherever the rules forbid; `seconds` (B,) made so far."""
        s, mask = self.s, None
        if self.grammar is not None:
            time_left = HARD_END * self.target - seconds if self.musical else None
            mask = self.grammar.allowed(time_left)
        if self.eos is not None and self.grammar is not None:  # never end with notes sounding
            mask[:, self.eos] &= self.grammar.closed()
        if self.eos is not None and not s.allow_early_end:
            if mask is None:
                mask = torch.ones(logits.shape, dtype=torch.bool, device=logits.device)
            may_end = torch.zeros_like(seconds, dtype=torch.bool)
            if self.target is not None:
                soft = SOFT_END * self.target if self.musical else self.target
                may_end = seconds >= soft - 1e-9
            mask[:, self.eos] &= may_end
        if self.guard is not None:
            allowed = self.guard.allowed()
            mask = allowed if mask is None else mask & allowed
        if mask is None:
            return logits
        mask[~mask.any(1)] = True  # a row with nothing left is left alone (never happens)
        return logits.masked_fill(~mask, float("-inf"))

    def rewrite(self, tokens: Tensor, seconds: Tensor) -> Tensor:
        """The tokens to take instead of those sampled (the grammar closes notes first)."""
        if self.grammar is None:
            return tokens
        time_left = HARD_END * self.target - seconds if self.musical else None
        return self.grammar.rewrite(tokens, time_left)

    def seconds_of(self, tokens: Tensor) -> Tensor:
        """(B,) seconds of music `tokens` add."""
        if self.durations is None:
            return torch.zeros(len(tokens), dtype=torch.float64, device=tokens.device)
        return self.durations[tokens]

    def update(self, tokens: Tensor) -> None:
        if self.grammar is not None:
            self.grammar.update(tokens)
        if self.guard is not None:
            self.guard.update(tokens)

    def ends_before(self, tokens: Tensor, seconds: Tensor) -> Tensor:
        """(B,) rows that end at a musical point right before `tokens` (not kept)."""
        if not self.musical:
            return torch.zeros(len(tokens), dtype=torch.bool, device=tokens.device)
        soft = SOFT_END * self.target
        return (seconds >= soft - 1e-9) & self.grammar.ends_before(tokens)

    def reached(self, seconds: Tensor) -> Tensor:
        """(B,) rows whose length is reached after the token just taken (kept)."""
        if self.target is None:
            return torch.zeros_like(seconds, dtype=torch.bool)
        if not self.musical:
            return seconds >= self.target - 1e-9
        hard = HARD_END * self.target
        return (seconds + self.step_seconds > hard + 1e-9) & self.grammar.closed()

    def budget(self) -> int:
        """The token budget of a row: `settings.max_new_tokens`, stretched for rows whose
        model time runs faster than their file's (rate < 1: a primer faster than 120 BPM)."""
        s, fastest = self.s, float(self.rates.min())
        if s.tokens is not None or fastest >= 1.0:
            return s.max_new_tokens
        return math.ceil(s.max_new_tokens / fastest)

    def total_seconds(self, row: list[int], i: int) -> float:
        """Seconds of music row `i`'s tokens span, in its file's time."""
        if self.durations is None or not row:
            return 0.0
        model = self.durations[torch.as_tensor(row, dtype=torch.long, device=self.device)].sum()
        return float(model * self.rates[i])
