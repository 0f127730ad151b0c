"""The progress bar of every generation command: one tqdm bar over a run's budget."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .sampler import ProgressFn
from .settings import SamplingSettings


@contextlib.contextmanager
def progress_bar(
    rows: int, sampling: SamplingSettings, quiet: bool, desc: str | None = None
) -> Iterator[ProgressFn]:
    """A tqdm bar (titled `desc`) over all rows' budget, in seconds of music when a duration
    was asked for, else in tokens; yields the sampler's progress callback. The bar appears at
    the first step, so an input error raised before generation starts prints no bar."""
    if quiet:
        yield lambda tokens, seconds: None
        return
    from tqdm.auto import tqdm

    by_seconds = sampling.seconds is not None
    total = rows * (sampling.seconds if by_seconds else sampling.max_new_tokens)
    bars: list[Any] = []

    def update(tokens: int, seconds: float) -> None:
        if not bars:
            fmt = "{l_bar}{bar}| {n:.1f}/{total:.1f} s of music [{elapsed}<{remaining}]"
            bars.append(
                tqdm(
                    total=total,
                    desc=desc,
                    unit="s" if by_seconds else "tok",
                    dynamic_ncols=True,
                    bar_format=fmt if by_seconds else None,
                    leave=False,
                )
            )
        bar = bars[0]
        step = seconds if by_seconds else tokens
        bar.update(min(step, total - bar.n))  # the last step may overshoot a row's duration

    reading: list[Any] = []

    def prefill(done: int, total: int) -> None:  # a long primer being read (the LSTM)
        if not reading:
            reading.append(tqdm(total=total, desc="reading primer", unit="tok", leave=False))
        reading[0].update(done - reading[0].n)

    update.prefill = prefill  # type: ignore[attr-defined]
    try:
        yield update
    finally:
        for bar in bars + reading:
            bar.close()
