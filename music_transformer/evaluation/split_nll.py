"""Negative log-likelihood of a model on a data split, overall and by position in the window.

The paper's central claim is that relative attention keeps its NLL past the training length
while an absolute-position Transformer degrades. To show it, every piece of the split is cut
into consecutive windows of up to `context + 1` tokens (default context = 4L, L = the training
seq_len recorded in config.json), each window is scored in ONE forward pass, and the
per-token NLLs are grouped by the position of the predicted token in its window: 0–L, L–2L,
2L–4L (and further doublings when context > 4L). A piece shorter than a bucket contributes to
the buckets it reaches; the token count of each bucket is reported.

With `window=W` every layer attends only to the last W positions (banded attention) — exactly
what the sampler computes when it generates past its window with a sliding cache — so the
buckets then show the quality of long generation rather than of long attention.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from midi_data import eval_windows, open_data

from ..calibration import choose_precision
from ..checkpoint import load_checkpoint
from ..nn.config import ModelConfig
from ..runtime import pick_device, precision_name
from .nll import Bucket, Tally, position_buckets, window_nll


class EvaluationError(ValueError):
    """An evaluation that cannot run (no training length known, empty split, ...). One line."""


@dataclass
class EvalResult:
    model_dir: str
    data_dir: str
    split: str
    train_seq_len: int  # L of the training run
    context: int  # longest window scored in one forward, in tokens of context
    window: int | None  # sliding attention window (None: full causal attention)
    precision: str  # "fp32" or "bf16", as it ran
    pieces: int
    windows: int
    tokens: int  # scored tokens (pads excluded)
    nll: float  # nats/token over all scored tokens
    event_tokens: int  # scored tokens that are not special (EOS left out)
    nll_events: float | None  # nats/token over those (None: there are none)
    buckets: list[Bucket] = field(default_factory=list)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["perplexity"] = self.perplexity
        d["buckets"] = [
            {
                "start": b.start,
                "end": b.end,
                "tokens": b.tokens,
                "nll": b.nll,
                "perplexity": math.exp(b.nll) if b.nll is not None else None,
            }
            for b in self.buckets
        ]
        return d


def check_counts(**counts: int | None) -> None:
    """Each of `counts` is None (its default) or a whole number ≥ 1 (EvaluationError naming
    the option otherwise): 0 is never a silent "default" or "all"."""
    for name, value in counts.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            option = "--" + name.replace("_", "-")
            raise EvaluationError(f"{option} must be a whole number ≥ 1, not {value!r}")


def evaluate(
    model_dir: str | Path,
    data_dir: str | Path,
    split: str = "test",
    context: int | None = None,
    batch_size: int = 4,
    device: str = "auto",
    max_pieces: int | None = None,
    window: int | None = None,
    precision: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Score a model on a data split; see the module docstring for the buckets.

    Args:
        model_dir: checkpoint or run directory, or a bundled model name.
        data_dir: a prepared data directory (its tokenizer must match the model's).
        split: "train", "valid" or "test".
        context: longest window, in tokens of context (default 4 × the training seq_len).
        batch_size: windows per forward pass.
        device: "auto" | "cpu" | "cuda".
        max_pieces: score only the first N pieces of the split (quick checks).
        window: attend only to the last `window` positions in every layer (sliding-window
            attention, as in generation past the window); None: full causal attention.
        precision: "auto" | "fp32" | "bf16", decided as for training (`runtime`).
        progress: called after every batch as progress(windows done, windows in all).
    """
    check_counts(context=context, window=window, batch_size=batch_size, max_pieces=max_pieces)
    dev = pick_device(device)
    loaded = load_checkpoint(model_dir, device=dev)
    train_len = loaded.meta.get("training", {}).get("seq_len")
    if not train_len:
        if context is None:
            raise EvaluationError(
                f"{loaded.directory} records no training seq_len; pass --context N"
            )
        train_len = max(context // 4, 1)
    context = int(4 * train_len if context is None else context)
    config = loaded.config
    absolute = isinstance(config, ModelConfig) and config.position == "absolute"
    if absolute and context > config.max_abs_len:
        raise EvaluationError(
            f"--context {context} exceeds this absolute-position model's "
            f"max_abs_len {config.max_abs_len}"
        )
    data = open_data(data_dir)
    if data.tokenizer.vocab_size != config.vocab_size:
        raise EvaluationError(
            f"data {data_dir} has {data.tokenizer.vocab_size} tokens but model "
            f"{loaded.directory} has {config.vocab_size}"
        )
    pieces = data.pieces(split)
    if max_pieces is not None:
        pieces = pieces[:max_pieces]
    if getattr(config, "voice_dims", 0) and context % config.frame:
        raise EvaluationError(
            f"a model with voice labels scores windows whose length is a multiple of its "
            f"{config.frame} tokens per step: --context {context} is not"
        )
    windows = eval_windows(pieces, context)
    if not windows:
        raise EvaluationError(f"split {split!r} of {data_dir} has no piece of 2 or more tokens")
    buckets = position_buckets(int(train_len), context)
    pad_id = int(data.tokenizer.pad_id)
    events = Tally()
    special = [int(data.tokenizer.bos_id), int(data.tokenizer.eos_id)]
    choice = choose_precision(
        precision, dev, "eval", config, batch=batch_size, length=min(context, window or context)
    )
    dtype = choice.dtype
    total, count = window_nll(
        loaded.model, windows, pad_id, batch_size, dev, dtype=dtype, window=window,
        buckets=buckets, events=events, special_ids=special, progress=progress,
    )  # fmt: skip
    return EvalResult(
        model_dir=str(loaded.directory),
        data_dir=str(data_dir),
        split=split,
        train_seq_len=int(train_len),
        context=context,
        window=window,
        precision=precision_name(dtype),
        pieces=len(pieces),
        windows=len(windows),
        tokens=count,
        nll=total / max(count, 1),
        event_tokens=events.tokens,
        nll_events=events.nll,
        buckets=buckets,
    )


def format_table(result: EvalResult) -> str:
    """Human-readable summary: overall NLL/perplexity, then one row per position bucket."""
    r = result
    lines = [
        f"model   {r.model_dir}",
        f"data    {r.data_dir} [{r.split}]: {r.pieces} pieces, {r.windows} windows "
        f"of ≤ {r.context} tokens context (training length L = {r.train_seq_len})",
        f"attention  {'full causal' if r.window is None else f'sliding window of {r.window}'}"
        f", {r.precision}",
        f"NLL     {r.nll:.4f} nats/token   perplexity {r.perplexity:.3f}   "
        f"over {r.tokens:,} tokens",
        f"events  {r.nll_events or 0:.4f} nats/token over the {r.event_tokens:,} non-special",
        "",
        f"{'positions':>14}  {'tokens':>10}  {'NLL':>8}  {'ppl':>8}",
    ]
    for b in r.buckets:
        label = f"{b.start}–{b.end}"
        if b.nll is None:
            lines.append(f"{label:>14}  {0:>10}  {'—':>8}  {'—':>8}")
        else:
            lines.append(f"{label:>14}  {b.tokens:>10,}  {b.nll:>8.4f}  {math.exp(b.nll):>8.3f}")
    return "\n".join(lines)
