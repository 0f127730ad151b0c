"""Negative log-likelihood over evaluation windows: the one implementation behind the
trainer's validation, `music-transformer evaluate` and the tests.

NLL is in nats per predicted token: every token of a window after its first is a target
(rests, time shifts, BOS→first event and the final EOS included); PAD targets never count.
An `events` tally can also sum only the targets that are not special tokens (the final EOS
left out: the figure comparable with NLLs reported over the musical events alone).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..runtime import autocast


@dataclass
class Tally:
    """NLL summed over some predictions."""

    nll_sum: float = 0.0  # nats
    tokens: int = 0

    @property
    def nll(self) -> float | None:
        return self.nll_sum / self.tokens if self.tokens else None


@dataclass(kw_only=True)
class Bucket(Tally):
    """The Tally of the predictions made at positions [start, end) of their window."""

    start: int  # first position (0-based index of the predicted token's predecessor)
    end: int  # one past the last position


def position_buckets(train_len: int, context: int) -> list[Bucket]:
    """[0, L), [L, 2L), [2L, 4L), [4L, 8L) … cut at `context`."""
    edges = [0, train_len]
    while edges[-1] < context:
        edges.append(edges[-1] * 2)
    edges = sorted({min(e, context) for e in edges})
    return [Bucket(start=a, end=b) for a, b in itertools.pairwise(edges)]


@torch.no_grad()
def window_nll(
    model: torch.nn.Module,
    windows: Sequence[np.ndarray | torch.Tensor],
    pad_id: int,
    batch_size: int,
    device: torch.device,
    *,
    dtype: torch.dtype | None = None,
    window: int | None = None,
    buckets: Sequence[Bucket] = (),
    events: Tally | None = None,
    special_ids: Sequence[int] = (),
    progress: Callable[[int, int], None] | None = None,
) -> tuple[float, int]:
    """Total NLL (nats) and number of scored tokens over `windows` (each (n,) token ids).

    Windows are sorted by length and right-padded with pad_id per batch (causal models never
    look right, so padding cannot change a real token's score); each batch is one forward.
    The model's train/eval mode is restored on return.

    Args:
        dtype: autocast dtype (None: fp32), as `runtime.autocast_dtype` decides.
        window: attend only to the last W positions in every layer (None: full attention).
        buckets: per-position sums are added into these too.
        events: the sums over targets whose id is not in `special_ids` are added into it.
        progress: called after every batch as progress(windows done, windows in all).
    """
    was_training = model.training
    model.eval()
    order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
    total, count = 0.0, 0
    try:
        for i in range(0, len(order), batch_size):
            group = [
                torch.as_tensor(windows[j], dtype=torch.long) for j in order[i : i + batch_size]
            ]
            width = max(len(w) for w in group)
            batch = torch.full((len(group), width), pad_id, dtype=torch.long)  # (B, T+1)
            for row, w in enumerate(group):
                batch[row, : len(w)] = w
            batch = batch.to(device)
            inputs, targets = batch[:, :-1], batch[:, 1:]  # (B, T) each
            with autocast(device, dtype):
                logits, _ = model(inputs, window=window)  # (B, T, V)
            nll = F.cross_entropy(
                logits.float().transpose(1, 2), targets, reduction="none"
            )  # (B, T): nats per predicted token
            keep = targets != pad_id  # (B, T)
            # summed in float64: an fp32 sum of n NLLs is off by up to n·2^-24 of it, and
            # which n (whole batch, bucket slice) would change that error from call to call
            nll = nll.double() * keep
            for b in buckets:
                b.nll_sum += float(nll[:, b.start : b.end].sum())
                b.tokens += int(keep[:, b.start : b.end].sum())
            total, count = total + float(nll.sum()), count + int(keep.sum())
            if events is not None:
                special = torch.tensor(list(special_ids), dtype=torch.long, device=device)
                event = keep & ~torch.isin(targets, special)  # (B, T)
                events.nll_sum += float((nll * event).sum())
                events.tokens += int(event.sum())
            if progress is not None:
                progress(min(i + batch_size, len(order)), len(order))
    finally:
        model.train(was_training)
    return total, count
