"""A tqdm progress bar for training: step, loss, tokens/s and ETA (tqdm computes the ETA)."""

from __future__ import annotations

from tqdm.auto import tqdm


class Progress:
    """Thin wrapper so the trainer does not care whether the bar is shown."""

    def __init__(self, total: int, initial: int, disabled: bool):
        self.bar = None
        if not disabled:
            self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
        self._ema: float | None = None  # smoothed tokens/s; one slow step should not jump it

    def update(self, step: int, loss: float, tokens_per_s: float) -> None:
        if self.bar is None:
            return
        self._ema = tokens_per_s if self._ema is None else 0.9 * self._ema + 0.1 * tokens_per_s
        self.bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{self._ema:,.0f}", refresh=False)
        self.bar.update(step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
