"""KV-cached autoregressive sampling for every model in the package.

`generate(model, primers, settings, tokens)` continues a batch of token primers of different
lengths and returns, per row, the new tokens, why the row stopped, and the window and precision
it ran with. Primers are left-padded to a common length and a `valid` mask tells the model
which columns are padding, so every row keeps its own positions. One forward over the primers
fills the cache; after that each step feeds one token per row.

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

Attention sinks (`sink_tokens` k): each row's first k context tokens stay when the window
slides (`cache.slide`). That is a copy of the window, so it is made once per `sink_hop`
tokens, not per token: the context then holds the k sinks and the newest
window - hop - k … window - k tokens, growing between two slides.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..calibration import choose_decode_threads, choose_precision
from ..nn.cache import MIN_CAPACITY, KVCache
from ..nn.config import attention_span
from ..runtime import autocast, autocast_dtype, decode_threads, precision_name
from .buffer import TokenBuffer, budget_options, check_budget, expected_tokens
from .filters import SamplingError
from .picker import TokenPicker
from .rewind import guard_record, replace_rows, start_guards
from .rules import Rules, TokenInfo
from .settings import SamplingSettings

# progress(tokens, seconds): new tokens made by the last step and the seconds of music they
# add, both summed over the rows still running.
ProgressFn = Callable[[int, float], None]

# Primer columns per forward when reading a long primer (the LSTM reads all of it): a progress
# callback with a `prefill(done, total)` method hears after each, so a minute of reading is
# not silent. Same result as one forward (the cache or state carries over between chunks).
PREFILL_CHUNK = 2048

# Why a row stopped, as recorded in sidecars and manifests.
STOP_REASONS = ("eos", "seconds", "tokens", "time_limit")
_RUNNING, _EOS, _SECONDS, _TOKENS, _TIME = range(5)


@dataclass
class Generated:
    """One row's result.

    Attributes:
        tokens: the new token ids (EOS excluded).
        stopped_by: "eos", "seconds" (of music), "tokens" (the budget) or "time_limit".
        seconds: seconds of music the new tokens span (0.0 without token durations).
        window: context the model attended to (None: all of it — the LSTM's state).
        precision: "fp32" or "bf16", as it ran.
        guard: with `settings.guard`, its settings and the row's backtracks (`rewind`), or
            {"note": why it was not used}; None without.
    """

    tokens: list[int]
    stopped_by: str
    seconds: float
    window: int | None
    precision: str
    guard: dict[str, Any] | None = None


def model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


DEFAULT_CALIBRATION_WINDOW = 1024  # for the LSTM, which has no window


def _decode_runtime(
    model: nn.Module,
    precision: str,
    device: torch.device,
    batch: int,
    window: int | None,
    threads: int | None = None,
) -> tuple[torch.dtype | None, int | None]:
    """(autocast dtype, intra-op threads for the steps) as measured for this model's shape
    (`calibration`), the threads as given when `threads` is set; a model of another kind gets
    the static precision rule and unchanged threads."""
    config = getattr(model, "config", None)
    if config is None:
        return autocast_dtype(precision, device), threads
    length = window or DEFAULT_CALIBRATION_WINDOW
    dtype = choose_precision(precision, device, "decode", config, batch=batch, length=length)
    if threads is None:
        threads = choose_decode_threads(device, config, batch, length)
    return dtype.dtype, threads


def default_window(model: nn.Module) -> int | None:
    """Context the sampler keeps when none is asked for: the model's attention span (none
    for the LSTM). Callers that know the training length (`LoadedModel.context_window`)
    should pass that instead."""
    config = getattr(model, "config", None)
    return attention_span(config) if config is not None else None


def is_absolute(model: nn.Module) -> bool:
    """Whether the model sees absolute positions (the absolute baseline, or sinusoids
    concatenated to its inputs): its context is re-encoded from position 0, not slid."""
    config = getattr(model, "config", None)
    if getattr(config, "arch", None) != "transformer":
        return False
    return config.position == "absolute" or config.concat_positions > 0


def _grain(model: nn.Module) -> int:
    """Tokens between the places a grid model's context may start: its training windows'
    grain (a beat), else its frame (a step)."""
    config = getattr(model, "config", None)
    return max(int(getattr(config, "frame", 1)), int(getattr(config, "grain", 1)))


def _last(seq: Sequence[int], n: int | None, grain: int = 1) -> list[int]:
    """The last ≤ n tokens of a row, starting a multiple of `grain` tokens after its start:
    a grid model's voice labels (and beat phase) follow from the position."""
    if n is None or len(seq) <= n:
        return list(seq)
    start = -(-(len(seq) - n) // grain) * grain  # the first boundary at or after len − n
    return list(seq[start:])


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


def _check_primers(model: nn.Module, primers: Sequence[Sequence[int]]) -> None:
    if not primers or any(len(p) == 0 for p in primers):
        raise SamplingError("every primer needs at least one token (start with the BOS id)")
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab is not None:
        low, high = min(min(p) for p in primers), max(max(p) for p in primers)
        if low < 0 or high >= vocab:
            raise SamplingError(
                f"primer token id {low if low < 0 else high} is outside 0..{vocab - 1}"
            )


def generate(
    model: nn.Module,
    primers: Sequence[Sequence[int]],
    settings: SamplingSettings,
    tokens: TokenInfo | None = None,
    *,
    progress: ProgressFn | None = None,
    device: str | torch.device | None = None,
    rates: Sequence[float] | None = None,
    threads: int | None = None,
) -> list[Generated]:
    """Continue each primer.

    Args:
        model: any model of this package: `model(tokens, cache=None, valid=None)` →
            (logits (B, T, V), cache). Its train/eval mode is restored on return.
        primers: B token lists, each non-empty (start unconditional rows with [bos_id]).
            Only the last `window` tokens of a primer are fed to the model.
        settings: temperature, filters, seed (row i uses seed + i), budget in tokens and/or
            seconds of music, window (None: `default_window(model)`), precision, time limit.
        tokens: the tokenizer's special ids and token durations (default: no EOS, pad 0).
        progress: called after every step as progress(new_tokens, new_seconds); if it has a
            `prefill(done, total)` method, that hears how far a long primer has been read.
        device: where to run; default the model's device (the model is not moved).
        rates: (B,) seconds of the output file per second of the model's time, per row
            (`Primer.rate`; default 1.0): `settings.seconds`, the progress and the results'
            seconds are then the file's.
        threads: intra-op threads for the decoding steps on a CPU (the prefill keeps all);
            default: whichever of one or all `calibration` measured faster here.

    Returns:
        B results, each with at most `settings.max_new_tokens` new tokens (stretched by
        1 / rate for rows with rate < 1).
    """
    tokens = tokens or TokenInfo()
    _check_primers(model, primers)
    if settings.seconds is not None and tokens.token_seconds is None:
        raise SamplingError("a length in seconds needs the tokenizer's token durations")
    check_budget(len(primers), settings.max_new_tokens, budget_options(settings))
    window = settings.window if settings.window is not None else default_window(model)
    k = settings.sink_tokens
    if k and window and (2 * k > window or window - k - sink_hop(window, k) < 1):
        raise SamplingError(
            f"sink_tokens ({k}) must be at most half the window ({window}) and leave room "
            "for the newest tokens"
        )
    device = torch.device(device) if device is not None else model_device(model)
    dtype, threads = _decode_runtime(
        model, settings.precision, device, len(primers), window, threads
    )
    picker = TokenPicker(
        len(primers), device, settings.temperature_used, settings.top_k, settings.top_p,
        settings.seed, tokens.suppress_ids, min_p=settings.min_p,
        entropy_floor=settings.entropy_floor,
    )  # fmt: skip
    # Autocast keeps its bf16 copies of the weights for the whole `with` block only outside
    # inference mode (inside it, every step casts every weight again), so bf16 runs under
    # no_grad and fp32 under inference_mode.
    no_autograd = torch.inference_mode() if dtype is None else torch.no_grad()
    was_training = model.training
    model.eval()
    try:
        with no_autograd, autocast(device, dtype):
            run = _Run(model, primers, settings, tokens, window, picker, device, progress, rates)
            rows, reasons, seconds = run.sample(threads)
    finally:
        model.train(was_training)
    used, stops = precision_name(dtype), STOP_REASONS
    return [
        Generated(row, stops[r - 1], sec, window, used, guard_record(settings, run.guards, i))
        for i, (row, r, sec) in enumerate(zip(rows, reasons, seconds))
    ]


def sink_hop(window: int | None, sinks: int | None) -> int:
    """How many positions a window with `sinks` attention sinks drops at each slide: up to
    64 (the room `KVCache.slide` leaves to append in place), at most an eighth of the
    window's recent part, at least 1."""
    if not window or not sinks:
        return 1
    return max(1, min(MIN_CAPACITY, (window - sinks) // 8))


class _Run:
    """One batch's decoding loop and its bookkeeping (lengths, seconds, stop reasons)."""

    def __init__(self, model, primers, settings, tokens, window, picker, device, progress, rates):
        self.model, self.primers, self.settings, self.tokens = model, primers, settings, tokens
        self.window, self.pick, self.device, self.progress = window, picker, device, progress
        self.rates = rates
        self.absolute, self.grain = is_absolute(model), _grain(model)
        # absolute positions: leave room to grow after a re-encode
        self.keep = window // 2 if self.absolute and window else window
        # attention sinks: slide this many positions at a time (one copy per `hop` tokens)
        self.hop = sink_hop(window, settings.sink_tokens)
        # absolute positions: each row's context since its last re-encode, padding aside
        self.segments = [_last(p, window, self.grain) for p in primers]

    def prefill(self, tails: list[list[int]]) -> tuple[torch.Tensor, Any]:
        """Logits (B, V) after each row's tail, and the cache. Rows with the same tail (the
        samples of one primer) are read once and their cache rows copied: reading a primer
        was most of what each more sample of it cost."""
        unique = list(dict.fromkeys(map(tuple, tails)))
        if len(unique) == len(tails):
            return self._prefill(tails)
        where = {row: i for i, row in enumerate(unique)}
        index = torch.tensor([where[tuple(t)] for t in tails], device=self.device)  # (B,)
        logits, cache = self._prefill([list(row) for row in unique])
        return logits.index_select(0, index), cache.rows(index)

    def _prefill(self, tails: list[list[int]]) -> tuple[torch.Tensor, Any]:
        tokens, valid = _left_pad(tails, self.tokens.pad_id, self.device)  # (B, T), (B, T)|None
        width, cache = tokens.shape[1], None
        report = getattr(self.progress, "prefill", None)
        for a in range(0, width, PREFILL_CHUNK):
            part = valid[:, a : a + PREFILL_CHUNK] if valid is not None else None
            logits, cache = self.model(tokens[:, a : a + PREFILL_CHUNK], cache=cache, valid=part)
            if report is not None and width > PREFILL_CHUNK:
                report(min(a + PREFILL_CHUNK, width), width)
        return logits[:, -1], cache  # (B, V), the last column of the last chunk

    def sample(self, threads: int | None) -> tuple[list[list[int]], list[int], list[float]]:
        s, batch = self.settings, len(self.primers)
        window, device = self.window, self.device
        logits, cache = self.prefill([_last(p, window, self.grain) for p in self.primers])
        k = s.sink_tokens
        self.sinks = cache.first(k) if k and isinstance(cache, KVCache) else None
        rules = Rules(s, self.tokens, self.primers, device, self.rates)
        self.guards = start_guards(
            s, self.tokens.tokenizer, self.primers, rules, self.pick, cache, self.absolute
        )
        budget = rules.budget()
        out = TokenBuffer(batch, budget, expected_tokens(s, budget), self.tokens.pad_id, device)
        lengths = torch.full((batch,), budget, dtype=torch.long, device=device)
        reason = torch.full((batch,), _RUNNING, dtype=torch.long, device=device)
        seconds = torch.zeros(batch, dtype=torch.float64, device=device)
        pos = torch.zeros(batch, dtype=torch.long, device=device)  # (B,) each row's new tokens
        rows = torch.arange(batch, device=device)
        deadline = None if s.time_limit is None else time.monotonic() + s.time_limit

        def stop(which: torch.Tensor, code: int, length: torch.Tensor) -> None:
            nonlocal lengths, reason
            which = which & (reason == _RUNNING)
            lengths = torch.where(which, length, lengths)
            reason = torch.where(which, code, reason)

        with decode_threads(device, threads):
            while True:
                token = self.pick(rules.constrain(logits, seconds))  # (B,)
                token = rules.rewrite(token, seconds)
                running = reason == _RUNNING
                stop(rules.ends_before(token, seconds), _SECONDS, pos)  # a musical end
                if self.tokens.eos_id is not None:
                    stop(token == self.tokens.eos_id, _EOS, pos)
                room = pos < budget  # (B,) a row done at its budget is written no more
                out.put_rows(rows[room], pos[room], token[room])
                added = torch.where(reason == _RUNNING, rules.seconds_of(token), 0.0)  # (B,)
                seconds += added
                rules.update(token)
                pos += 1
                stop(rules.reached(seconds), _SECONDS, pos)
                if self.progress is not None:
                    self.progress(int(running.sum()), float((added * rules.rates).sum()))
                stop(pos >= budget, _TOKENS, pos.clamp(max=budget))
                if deadline is not None and time.monotonic() >= deadline:
                    stop(reason == _RUNNING, _TIME, pos)
                if bool((reason != _RUNNING).all()):
                    break
                back = self.guards.observe(
                    token.tolist(), pos.tolist(), seconds.tolist(), (reason == _RUNNING).tolist()
                ) if self.guards is not None else {}  # fmt: skip
                logits, cache = self.step(token, cache)
                if back:
                    logits, cache = self.put_back(back, out, pos, seconds, logits, cache)

        rows = [out.row(i, int(lengths[i])) for i in range(batch)]
        secs = [rules.total_seconds(r, i) for i, r in enumerate(rows)]
        return rows, reason.tolist(), secs

    def put_back(self, back: dict, out, pos, seconds, logits, cache):
        """Rows `back` (row → snapshot) go back to their snapshots: length and seconds, and
        the model re-fed with each one's last `window` tokens (one batched prefill)."""
        which = sorted(back)
        contexts = []
        for row in which:
            snap = back[row]
            pos[row], seconds[row] = snap.length, snap.seconds
            history = list(self.primers[row]) + out[row, : snap.length].tolist()
            contexts.append(_last(history, self.window, self.grain))
        row_logits, donor = self.prefill(contexts)  # (K, V)
        index = torch.as_tensor(which, dtype=torch.long, device=self.device)
        logits = logits.clone()
        logits[index] = row_logits.to(logits.dtype)
        return logits, replace_rows(cache, index, donor)

    def step(self, token: torch.Tensor, cache: Any):
        """Feed this step's tokens (B,); slide or re-encode first when the window is full."""
        if self.absolute and self.window is not None:
            return self.step_absolute(token, cache)
        if self.window is not None and cache.length >= self.window:
            if self.sinks is not None:  # the context's first tokens stay
                cache = cache.slide(self.window, self.hop, self.sinks)
            else:
                cache = cache.trim(self.keep - 1)  # room for the token fed next
        logits, cache = self.model(token.unsqueeze(1), cache=cache)  # (B, 1, V)
        return logits[:, -1], cache  # (B, V)

    def step_absolute(self, token: torch.Tensor, cache: Any):
        """Absolute positions cannot slide: a row whose context is full is re-encoded from
        position 0 with its last `keep` tokens. Each row keeps its own context (padding
        aside), so when one row is re-encoded the others are re-encoded with all of theirs,
        which gives them the keys they had: a row never depends on its neighbours."""
        full = [len(seg) >= self.window for seg in self.segments]
        for seg, t in zip(self.segments, token.tolist()):
            seg.append(t)
        if any(full):
            self.segments = [
                _last(s, self.keep, self.grain) if f else s for s, f in zip(self.segments, full)
            ]
            return self.prefill(self.segments)
        logits, cache = self.model(token.unsqueeze(1), cache=cache)  # (B, 1, V)
        return logits[:, -1], cache  # (B, V)
