"""KV-cached autoregressive sampling for every model in the package.

`generate(model, primers, ...)` continues a batch of token primers of different lengths.
Primers are left-padded to a common length and a `valid` mask tells the model which columns
are padding, so every row keeps its own positions. One forward over the primers fills the
cache; after that each step feeds one token per row.

Long generations (sliding window). With relative attention a key's contribution depends only
on its distance to the query, so once the cache holds `window` positions the oldest one is
dropped before each step (`cache.trim`): the cost per token stays that of a `window`-long
context however long the piece grows, and nothing is recomputed. (In a deeper stack, the
cached keys of later layers were computed when older tokens were still visible, so the model
still "remembers" a little past the window: this is streaming attention, not a re-encode.)
The absolute-position baseline cannot slide: its positions would run past what it was trained
on. When its window is full, the last `window // 2` tokens are re-encoded from scratch, which
keeps the amortized cost per token bounded at the price of one prefill every window // 2
steps. The LSTM keeps a fixed-size state and needs no window.

Random numbers: row i draws from its own generator seeded with `seed + i`, so a row's
samples do not depend on how many other rows share the batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from .filters import SamplingError, apply_filters, check_top_k, check_top_p
from .precision import bf16_is_fast

# progress(tokens, seconds): new tokens made by the last step and the seconds of music they
# add, both summed over the rows still running.
ProgressFn = Callable[[int, float], None]

PRECISIONS = ("auto", "fp32", "bf16")


def check_sampling(
    temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> None:
    """Raise SamplingError naming the first setting out of range."""
    if isinstance(temperature, bool) or not isinstance(temperature, int | float):
        raise SamplingError(f"temperature must be a number ≥ 0, got {temperature!r}")
    if not temperature >= 0.0 or temperature == float("inf"):
        raise SamplingError(f"temperature must be a finite number ≥ 0, got {temperature!r}")
    check_top_k(top_k)
    check_top_p(top_p)


def model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


# On this project's AMX CPU, bf16 autocast made a decoding step of the `small` Transformer
# slower at batch 1 (~4×: per-step casts and small-M bf16 kernels cost more than they save)
# and faster at batch 16 (~1.5×); see bench/results/generate.md. "auto" follows that.
AUTO_BF16_MIN_BATCH_CPU = 8


def resolve_precision(
    precision: str, device: torch.device, batch: int = 1, model: nn.Module | None = None
) -> torch.dtype | None:
    """'fp32' → None (no autocast); 'bf16' → torch.bfloat16; 'auto' → bf16 on CUDA with bf16,
    and on AMX CPUs for Transformers at batch ≥ AUTO_BF16_MIN_BATCH_CPU."""
    if precision not in PRECISIONS:
        raise SamplingError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp32" or not bf16_is_fast(device):
        return None
    if device.type == "cuda":
        return torch.bfloat16
    is_transformer = getattr(getattr(model, "config", None), "arch", None) == "transformer"
    return torch.bfloat16 if is_transformer and batch >= AUTO_BF16_MIN_BATCH_CPU else None


def default_window(model: nn.Module) -> int | None:
    """Context the sampler keeps: the relative table's span for Transformers, none for the
    LSTM. Callers that know the training length (checkpoint metadata) should pass it."""
    config = getattr(model, "config", None)
    if getattr(config, "arch", None) != "transformer":
        return None
    window = config.max_rel_dist
    if config.position == "absolute":
        window = min(window, config.max_abs_len)
    return window


def _left_pad(
    rows: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Rows of different lengths → tokens (B, T) int64 and valid (B, T) bool (None if no
    row is padded). Padding goes on the left so every row's last token is in column T-1."""
    width = max(len(r) for r in rows)
    tokens = torch.full((len(rows), width), pad_id, dtype=torch.long)
    valid = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        if row:
            tokens[i, width - len(row) :] = torch.as_tensor(list(row), dtype=torch.long)
            valid[i, width - len(row) :] = True
    if bool(valid.all()):
        return tokens.to(device), None
    return tokens.to(device), valid.to(device)


def _trim(cache: Any, keep: int) -> Any:
    trimmed = cache.trim(keep)
    return cache if trimmed is None else trimmed  # trim may work in place or return a copy


def _is_absolute(model: nn.Module) -> bool:
    config = getattr(model, "config", None)
    return getattr(config, "arch", None) == "transformer" and config.position == "absolute"


class _Sampler:
    """Draws one token per row from (B, V) logits: greedy, or filtered softmax sampling."""

    def __init__(
        self,
        batch: int,
        device: torch.device,
        temperature: float,
        top_k: int | None,
        top_p: float | None,
        seed: int | None,
        suppress_ids: Sequence[int] | None,
    ) -> None:
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.suppress = (
            torch.as_tensor(sorted(set(suppress_ids)), dtype=torch.long, device=device)
            if suppress_ids
            else None
        )
        self.device = device
        self.generators = None
        if seed is not None and temperature > 0:
            self.generators = [
                torch.Generator(device=device).manual_seed(int(seed) + i) for i in range(batch)
            ]

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """logits (B, V) → tokens (B,) int64."""
        logits = logits.float()
        if self.suppress is not None:
            logits = logits.index_fill(-1, self.suppress, float("-inf"))
        if self.temperature == 0:
            return logits.argmax(dim=-1)
        logits = apply_filters(logits / self.temperature, top_k=self.top_k, top_p=self.top_p)
        probs = torch.softmax(logits, dim=-1)  # (B, V)
        if self.generators is None:
            u = torch.rand(probs.size(0), device=self.device)  # (B,)
        else:
            u = torch.stack(
                [torch.rand((), generator=g, device=self.device) for g in self.generators]
            )  # (B,)
        # Inverse CDF: the first token whose cumulative mass exceeds u. `right=True` never
        # picks a zero-probability (filtered) token, and u < 1 keeps the index in range.
        cdf = probs.cumsum(dim=-1)  # (B, V)
        target = (u * cdf[:, -1]).unsqueeze(1)  # (B, 1)
        return torch.searchsorted(cdf, target, right=True).squeeze(1).clamp_max(probs.size(1) - 1)


def generate(
    model: nn.Module,
    primers: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    max_seconds: float | None = None,
    token_seconds: Sequence[float] | torch.Tensor | None = None,
    eos_id: int | None = None,
    pad_id: int = 0,
    suppress_ids: Sequence[int] | None = None,
    window: int | None = None,
    precision: str = "fp32",
    progress: ProgressFn | None = None,
    device: str | torch.device | None = None,
) -> list[list[int]]:
    """Continue each primer; return the new tokens of each row (EOS itself excluded).

    Args:
        model: any model of this package: `model(tokens, cache=None, valid=None)` →
            (logits (B, T, V), cache). Its train/eval mode is restored on return.
        primers: B token lists, each non-empty (start unconditional rows with [bos_id]).
            Only the last `window` tokens of a primer are fed to the model.
        max_new_tokens: token budget per row, ≥ 1.
        temperature: softmax temperature; 0 means greedy (argmax; filters ignored).
        top_k, top_p: logit filters (see `filters.py`); None disables each.
        seed: row i samples from a generator seeded with `seed + i`; None uses torch's
            global RNG.
        max_seconds: stop a row once its new tokens advance this many seconds of music
            (needs `token_seconds`).
        token_seconds: (V,) seconds each token id advances (tokenizer.token_seconds).
        eos_id: a row that samples this id stops (the id is not returned).
        pad_id: id put in padded columns (masked out; any valid id works).
        suppress_ids: ids never sampled (e.g. PAD and BOS).
        window: context kept in the cache; default `default_window(model)`.
        precision: "fp32", "bf16" (autocast) or "auto" (bf16 where it measured faster; see
            `resolve_precision`).
        progress: called after every step as progress(new_tokens, new_seconds).
        device: where to run; default the model's device (the model is not moved).

    Returns:
        B lists of new token ids, each at most `max_new_tokens` long.
    """
    check_sampling(temperature, top_k, top_p)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise SamplingError(f"max_new_tokens must be a whole number, got {max_new_tokens!r}")
    if max_new_tokens < 1:
        raise SamplingError(f"max_new_tokens must be ≥ 1, got {max_new_tokens}")
    if not primers or any(len(p) == 0 for p in primers):
        raise SamplingError("every primer needs at least one token (start with the BOS id)")
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab is not None:
        low, high = min(min(p) for p in primers), max(max(p) for p in primers)
        if low < 0 or high >= vocab:
            raise SamplingError(
                f"primer token id {low if low < 0 else high} is outside 0..{vocab - 1}"
            )
    if max_seconds is not None:
        if not max_seconds > 0:
            raise SamplingError(f"max_seconds must be > 0, got {max_seconds!r}")
        if token_seconds is None:
            raise SamplingError("max_seconds needs token_seconds (the tokenizer's durations)")
    window = default_window(model) if window is None else window
    if window is not None and window < 2:
        raise SamplingError(f"window must be ≥ 2 tokens, got {window}")
    device = torch.device(device) if device is not None else model_device(model)
    autocast_dtype = resolve_precision(precision, device, len(primers), model)

    # Autocast keeps its bf16 copies of the weights for the whole `with` block only outside
    # inference mode (inside it, every step re-casts every weight: 59 casts per step instead
    # of 26 for `small`), so bf16 runs under no_grad and fp32 under inference_mode.
    no_autograd = torch.inference_mode() if autocast_dtype is None else torch.no_grad()
    was_training = model.training
    model.eval()
    try:
        with (
            no_autograd,
            torch.autocast(
                device.type,
                dtype=autocast_dtype or torch.float32,
                enabled=autocast_dtype is not None,
            ),
        ):
            return _generate(
                model,
                primers,
                max_new_tokens,
                _Sampler(len(primers), device, temperature, top_k, top_p, seed, suppress_ids),
                max_seconds,
                token_seconds,
                eos_id,
                pad_id,
                window,
                progress,
                device,
            )
    finally:
        model.train(was_training)


# Decoding steps are chains of small ops (M ≤ 16 rows). On this project's 2-core CPU one
# intra-op thread decoded as fast as two at batch 1 and fp32, 5-8% faster in bf16 at batch 16
# with the machine idle, and 11-25% faster with the other core busy (bench/results/
# generate.md) — and it leaves a core to other work. The prefill keeps every thread. Larger
# CPUs (more than SMALL_CPU_THREADS threads) are left alone: not measured.
DECODE_THREADS_CPU = 1
SMALL_CPU_THREADS = 2


@contextlib.contextmanager
def decode_threads(device: torch.device) -> Iterator[None]:
    """Run the block on DECODE_THREADS_CPU intra-op threads when decoding on a small CPU."""
    before = torch.get_num_threads()
    if device.type != "cpu" or not DECODE_THREADS_CPU < before <= SMALL_CPU_THREADS:
        yield
        return
    torch.set_num_threads(DECODE_THREADS_CPU)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _generate(
    model: nn.Module,
    primers: Sequence[Sequence[int]],
    max_new_tokens: int,
    sample: _Sampler,
    max_seconds: float | None,
    token_seconds: Sequence[float] | torch.Tensor | None,
    eos_id: int | None,
    pad_id: int,
    window: int | None,
    progress: ProgressFn | None,
    device: torch.device,
) -> list[list[int]]:
    batch = len(primers)
    absolute = _is_absolute(model)
    keep = window // 2 if absolute else window  # absolute: room to grow after a re-encode

    def prefill(tails: list[list[int]]) -> tuple[torch.Tensor, Any]:
        tokens, valid = _left_pad(tails, pad_id, device)  # (B, T), (B, T) | None
        logits, cache = model(tokens, cache=None, valid=valid)  # (B, T, V)
        return logits[:, -1], cache  # (B, V)

    first = [list(p[-window:]) if window else list(p) for p in primers]
    logits, cache = prefill(first)

    out = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    lengths = torch.full((batch,), max_new_tokens, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    seconds = torch.zeros(batch, dtype=torch.float64, device=device)
    durations = None
    if token_seconds is not None:
        durations = torch.as_tensor(token_seconds, dtype=torch.float64, device=device)  # (V,)

    with decode_threads(device):
        for step in range(max_new_tokens):
            token = sample(logits)  # (B,)
            out[:, step] = token
            running = ~done
            stop = torch.zeros_like(done)
            if eos_id is not None:
                is_eos = token == eos_id
                lengths = torch.where(running & is_eos, step, lengths)
                stop |= is_eos
            if durations is not None:
                added = torch.where(running, durations[token], 0.0)  # (B,)
                seconds += added
                if max_seconds is not None:
                    over = seconds >= max_seconds - 1e-9
                    lengths = torch.where(running & over & ~stop, step + 1, lengths)
                    stop |= over
            done |= stop
            if progress is not None:
                new_seconds = float(added.sum()) if durations is not None else 0.0
                progress(int(running.sum()), new_seconds)
            if step == max_new_tokens - 1 or bool(done.all()):
                break
            if window is not None and cache.length >= window:
                if absolute:  # cannot slide: re-encode the recent tokens from position 0
                    n_new = step + 1
                    recent = out[:, max(0, n_new - keep) : n_new].tolist()
                    need = keep - len(recent[0])  # taken from the primers' ends
                    tails = [list(p[max(0, len(p) - need) :]) if need > 0 else [] for p in primers]
                    logits, cache = prefill([t + r for t, r in zip(tails, recent)])
                    continue
                cache = _trim(cache, keep - 1)  # room for the token fed next
            logits, cache = model(token.unsqueeze(1), cache=cache)  # (B, 1, V)
            logits = logits[:, -1]  # (B, V)

    return [out[i, : int(lengths[i])].tolist() for i in range(batch)]


def generate_without_cache(
    model: nn.Module,
    primer: Sequence[int],
    max_new_tokens: int,
    *,
    window: int | None = None,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    suppress_ids: Sequence[int] | None = None,
) -> list[int]:
    """Reference decoder that recomputes the whole context every step (no cache).

    What public ports do; slow (quadratic). It draws from the same random stream as
    `generate` (row 0, `seed`), so with the same settings both must return the same tokens:
    the tests use it to check the cached sampler, the benchmark to measure what the cache
    buys. Each step runs the model on the last `window` tokens; there is no EOS stop.

    Args:
        model: as for `generate`.
        primer: token ids, non-empty.
        max_new_tokens: number of tokens to produce.
        window: longest context fed to the model; None feeds everything.
        temperature, top_k, top_p, seed, suppress_ids: as for `generate` (default greedy).

    Returns:
        The new tokens.
    """
    check_sampling(temperature, top_k, top_p)
    device = model_device(model)
    sample = _Sampler(1, device, temperature, top_k, top_p, seed, suppress_ids)
    history = list(primer)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for _ in range(max_new_tokens):
                context = history[-window:] if window else history
                tokens = torch.tensor([context], dtype=torch.long, device=device)  # (1, T)
                logits, _ = model(tokens)  # (1, T, V)
                history.append(int(sample(logits[:, -1])))
    finally:
        model.train(was_training)
    return history[len(primer) :]
