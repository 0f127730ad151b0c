"""The sampler's token buffer: (B, capacity) int64, grown as rows get longer.

A budget is a ceiling, not a size: `--seconds 1 --tokens 200000000` stops after about a second
of music (a few hundred tokens), so allocating the whole token budget up front (1.6 GB per row
there, a terabyte for `--seconds 1e9`) wastes memory or fails with a traceback. The buffer
starts at the smaller of the budgets (at most INITIAL_TOKENS) and doubles when full; a budget
whose full buffer could never fit in this machine's memory is refused in one line first.
"""

from __future__ import annotations

import math
import os

import torch

from .filters import SamplingError
from .settings import MAX_TOKENS_PER_SECOND, SamplingSettings

INITIAL_TOKENS = 1 << 16  # per row: a 30 s piece needs ~1,000–4,500, so no growth for those
BYTES_PER_TOKEN = 8  # int64


def physical_memory() -> int | None:
    """Bytes of RAM of this machine (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def check_budget(rows: int, budget: int, what: str) -> None:
    """Refuse (SamplingError, one line) a token budget whose buffer — rows × budget tokens,
    8 bytes each — could not fit in memory if every row used all of it. `what` names the
    option(s) the budget comes from, for the message."""
    memory = physical_memory()
    need = rows * budget * BYTES_PER_TOKEN
    if memory is not None and need > memory:
        raise SamplingError(
            f"{what} allows {budget:,} new tokens per piece, {need / 2**30:,.1f} GiB for "
            f"{rows} piece(s) at most, more than this machine's {memory / 2**30:.1f} GiB of "
            "memory; ask for less"
        )


def expected_tokens(settings: SamplingSettings, budget: int) -> int:
    """The smaller of the two budgets: with both `tokens` and `seconds`, whichever comes
    first — the seconds' ceiling is then usually far below `tokens`."""
    if settings.seconds is None:
        return budget
    return min(budget, max(64, math.ceil(settings.seconds * MAX_TOKENS_PER_SECOND)))


def budget_options(settings: SamplingSettings) -> str:
    """The option the token budget comes from, as the user wrote it."""
    if settings.tokens is not None:
        return f"--tokens {settings.tokens}"
    return f"--seconds {settings.seconds:g}"


class TokenBuffer:
    """New tokens of B rows: `put(step, token)` writes column `step` (`put_rows`: a column
    per row), growing as needed."""

    def __init__(self, rows: int, budget: int, expected: int, pad_id: int, device) -> None:
        """`budget`: the most tokens a row may get; `expected`: the smaller budget (e.g. the
        ceiling from seconds of music), the first size tried."""
        self.budget, self.pad_id = budget, pad_id
        first = max(1, min(budget, expected, INITIAL_TOKENS))
        self.tokens = torch.full((rows, first), pad_id, dtype=torch.long, device=device)

    def put(self, step: int, token: torch.Tensor) -> None:
        """Column `step` ← token (B,)."""
        self._room(step + 1)
        self.tokens[:, step] = token

    def put_rows(self, rows: torch.Tensor, cols: torch.Tensor, token: torch.Tensor) -> None:
        """Row rows[k], column cols[k] ← token[k] (K,): rows advance on their own once one
        has backtracked."""
        if cols.numel():
            self._room(int(cols.max()) + 1)
        self.tokens[rows, cols] = token

    def __getitem__(self, index):
        return self.tokens[index]

    def _room(self, width: int) -> None:
        """Grow (doubling, at most to the budget) until `width` columns fit."""
        have = self.tokens.shape[1]
        if width <= have:
            return
        grown = min(self.budget, max(2 * have, width))
        more = torch.full(
            (self.tokens.shape[0], grown - have), self.pad_id,
            dtype=torch.long, device=self.tokens.device,
        )  # fmt: skip
        self.tokens = torch.cat([self.tokens, more], dim=1)  # (B, grown)

    def row(self, i: int, length: int) -> list[int]:
        """The first `length` tokens of row i."""
        return self.tokens[i, :length].tolist()
