"""Precision and decoding threads chosen by measuring this machine, not by reading CPU flags.

Flags do not tell which precision is faster: on an AMD EPYC with AVX512-BF16 and no AMX, bf16
autocast trained this project's Transformers 1.9–2.3× faster than fp32; on an Intel Xeon with
the same flag and no AMX it trained 18% slower; on an AVX2-only EPYC oneDNN has no bf16 LSTM
at all ("could not create a primitive descriptor"). So `--precision auto` times one block of
the model's own shapes in fp32 and in bf16 autocast — a training step (forward, loss,
backward), a scoring forward, or decoding steps with a KV cache — and keeps the faster one.
Decoding also times one intra-op thread against all of them.

The result is cached per machine (CPU or GPU model, core count, threads) and torch version,
per workload and model shape (lengths and batches rounded up to powers of two), in
`runtime.calibration_file()`. A measurement takes well under a second for the bundled shapes;
the cached answer costs nothing.

    choice = choose_precision("auto", device, "train", config, batch=8, length=1024)
    choice.dtype, choice.reason     # torch.bfloat16 or None (fp32), and why, for the logs
    threads = choose_decode_threads(device, config, batch=1, window=1024)
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from midi_data.files import atomic_write_json

from .nn import AnyConfig, build_model
from .runtime import RuntimeChoiceError, Workload, calibration_file, check_precision

VERSION = 2  # of the probes: a new version measures again
# bf16 must be this much faster to be chosen: within the noise of a shared machine, fp32 is
# the exact choice and wins the tie.
MARGIN = 0.9
PROBE_MAX_TOKENS = 1024  # one probe step trains or scores at most this many tokens
ROUNDS = 2  # timed runs of each candidate, after a warm-up
HOPELESS = 3.0  # a precision this many times slower than the other in a round is not retimed
DECODE_STEPS = 8  # timed decoding steps per candidate
DECODE_CONTEXT = 256  # cached positions the timed decoding steps attend to
_lock = threading.Lock()
_memo: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True)
class PrecisionChoice:
    """What ran and why: dtype None is fp32."""

    dtype: torch.dtype | None
    reason: str

    @property
    def name(self) -> str:
        return "fp32" if self.dtype is None else "bf16"


def machine_key(device: torch.device) -> str:
    """Which hardware and software a measurement holds for."""
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    else:
        hardware = f"{_cpu_name()} {os.cpu_count()} cpus {torch.get_num_threads()} threads"
    return f"v{VERSION} torch {torch.__version__} | {device.type}: {hardware}"


def choose_precision(
    precision: str,
    device: torch.device,
    workload: Workload,
    config: AnyConfig,
    *,
    batch: int = 1,
    length: int = 1024,
) -> PrecisionChoice:
    """The autocast dtype for `precision` ("auto", "fp32" or "bf16") on `device`.

    "auto" measures (once per machine, torch version and shape; then cached). An explicit
    "bf16" is honoured when it runs at all; where this machine's kernels cannot run the
    model in bf16 (oneDNN's LSTM on CPUs without AVX512), RuntimeChoiceError says so.
    """
    check_precision(precision)
    if precision == "fp32":
        return PrecisionChoice(None, "fp32 as asked")
    if precision == "bf16":
        error = bf16_error(device, config)
        if error:
            raise RuntimeChoiceError(
                f"bf16 does not run for this {config.arch} model on this machine ({error}); "
                "use --precision fp32 or auto"
            )
        return PrecisionChoice(torch.bfloat16, "bf16 as asked")
    entry = _measured(device, workload, config, batch, length)
    dtype = torch.bfloat16 if entry["choice"] == "bf16" else None
    return PrecisionChoice(dtype, _explain(entry, workload))


def choose_decode_threads(
    device: torch.device, config: AnyConfig, batch: int, window: int | None
) -> int:
    """Intra-op threads for decoding steps: 1 or all, whichever measured faster at the
    precision auto picks (CPU only; on CUDA, the current setting)."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads <= 1:
        return threads
    entry = _measured(device, "decode", config, batch, window or 1024)
    return int(entry.get("threads", threads))


def forget() -> None:
    """Drop what this process remembers, so the next choice reads the cache file again."""
    with _lock:
        _memo.clear()
        _bf16_errors.clear()


# ---------------------------------------------------------------------------------------------
# Cache


def _shape_key(workload: str, config: AnyConfig, batch: int, length: int) -> str:
    if config.arch == "transformer":
        shape = f"transformer d{config.d_model} ff{config.d_ff} h{config.n_heads}"
        shape += f" {config.position}"
    else:
        shape = f"lstm h{config.hidden} e{config.d_embed}"
    return f"{workload} | {shape} | L{_pow2(length)} | B{_pow2(batch)}"


def _measured(
    device: torch.device, workload: str, config: AnyConfig, batch: int, length: int
) -> dict[str, Any]:
    machine, shape = machine_key(device), _shape_key(workload, config, batch, length)
    key = f"{machine} || {shape}"
    with _lock:
        if key in _memo:
            return _memo[key]
        table = _read_cache()
        entry = table.get(machine, {}).get(shape)
        if not _valid(entry):
            entry = _measure(device, workload, config, _pow2(batch), _pow2(length))
            entry["measured"] = time.strftime("%Y-%m-%d %H:%M")
            table = _read_cache()  # another process may have written meanwhile
            table.setdefault(machine, {})[shape] = entry
            _write_cache(table)
        _memo[key] = entry
        return entry


def _valid(entry: Any) -> bool:
    return isinstance(entry, dict) and entry.get("choice") in ("fp32", "bf16")


def _read_cache() -> dict[str, Any]:
    try:
        data = json.loads(calibration_file().read_text())
    except (OSError, ValueError):  # missing or damaged: measure again
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(table: dict[str, Any]) -> None:
    path = calibration_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, table)
    except OSError:  # a read-only home: measure again next time, nothing else is lost
        pass


def _explain(entry: dict[str, Any], workload: str) -> str:
    what = {"train": "a training step", "eval": "a scoring pass", "decode": "decoding steps"}
    if entry.get("bf16_error"):
        return f"auto: fp32, bf16 does not run here ({entry['bf16_error']})"
    ratio = entry["fp32_ms"] / entry["bf16_ms"]
    return (
        f"auto: {entry['choice']}, measured on this machine: {what[workload]} of one block of "
        f"this model's shape took {entry['bf16_ms']:.1f} ms in bf16 and {entry['fp32_ms']:.1f} "
        f"ms in fp32 ({ratio:.2f}×)"
    )


# ---------------------------------------------------------------------------------------------
# Measurement


def _measure(
    device: torch.device, workload: str, config: AnyConfig, batch: int, length: int
) -> dict[str, Any]:
    torch.manual_seed(0)
    probe = build_model(_one_block(config)).to(device)
    if workload == "decode":
        run = _decode_probe(probe, device, batch, length)
    else:
        run = _step_probe(probe, device, workload == "train", batch, length)
    entry: dict[str, Any] = {}
    runs = {"fp32": lambda: run(None), "bf16": lambda: run(torch.bfloat16)}
    try:
        best = _race(runs, device, hopeless=HOPELESS)
    except RuntimeError as e:  # the kernels refuse bf16 here (fp32 ran first and did not)
        entry.update(choice="fp32", bf16_error=_first_line(e))
        entry["fp32_ms"] = round(_race({"fp32": runs["fp32"]}, device)["fp32"], 3)
    else:
        entry.update(fp32_ms=round(best["fp32"], 3), bf16_ms=round(best["bf16"], 3))
        entry["choice"] = "bf16" if best["bf16"] < MARGIN * best["fp32"] else "fp32"
    if workload == "decode" and device.type == "cpu":
        dtype = torch.bfloat16 if entry["choice"] == "bf16" else None
        entry["threads"] = _decode_threads(lambda: run(dtype), device)
    return entry


def _one_block(config: AnyConfig) -> AnyConfig:
    """The model's shapes with one layer: what a step costs per layer, in a fraction of it."""
    if config.arch == "transformer":
        return replace(config, n_layers=1, grad_checkpoint=False)
    return replace(config, n_layers=1)


Run = Callable[[torch.dtype | None], None]


def _step_probe(model, device: torch.device, train: bool, batch: int, length: int) -> Run:
    length = min(length, PROBE_MAX_TOKENS)
    rows = max(1, min(batch, PROBE_MAX_TOKENS // length))
    tokens = torch.randint(0, _model_vocab(model), (rows, length + 1), device=device)
    model.train(train)

    def run(dtype: torch.dtype | None) -> None:
        with torch.set_grad_enabled(train), _autocast(device, dtype):
            logits, _ = model(tokens[:, :-1])  # (rows, length, V)
            loss = F.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:].flatten())
        if train:
            loss.backward()
            model.zero_grad(set_to_none=True)

    return run


def _decode_probe(model, device: torch.device, batch: int, window: int) -> Run:
    model.eval()
    vocab = _model_vocab(model)
    # The prefill is made once per precision and is not timed; steps continue a copy of it
    # (caches are values). A shorter context than the window changes little: a decoding
    # step's cost is mostly the weights' matmuls at B rows.
    primer = torch.randint(0, vocab, (batch, min(window, DECODE_CONTEXT)), device=device)
    step = torch.randint(0, vocab, (batch, 1), device=device)
    prefilled: dict[Any, Any] = {}

    def run(dtype: torch.dtype | None) -> float:
        with torch.no_grad(), _autocast(device, dtype):
            if dtype not in prefilled:
                prefilled[dtype] = model(primer)[1]
            cache = prefilled[dtype]
            _sync(device)
            start = time.perf_counter()
            for _ in range(DECODE_STEPS):
                _, cache = model(step, cache=cache)
            _sync(device)
            return time.perf_counter() - start

    return run


def _race(
    candidates: dict[str, Callable[[], Any]], device: torch.device, hopeless: float | None = None
) -> dict[str, float]:
    """The fastest of ROUNDS timed runs of each candidate in ms, after one warm-up each; the
    candidates alternate, so a load that comes and goes on a shared machine hits them alike.
    A decode probe times its own steps (it returns seconds); a step probe is timed whole.
    With `hopeless`, a round in which one candidate took more than `hopeless` × the fastest
    ends the race there (emulated bf16 ran 5–13× slower than fp32 on an AVX2 CPU: no need to
    time it again)."""
    best = dict.fromkeys(candidates, float("inf"))
    for round_ in range(ROUNDS + 1):
        this = {}
        for name, run in candidates.items():
            _sync(device)
            start = time.perf_counter()
            inner = run()
            _sync(device)
            this[name] = 1000 * (inner if isinstance(inner, float) else time.perf_counter() - start)
        if round_ > 0:
            best = {name: min(best[name], ms) for name, ms in this.items()}
        if hopeless is not None and max(this.values()) > hopeless * min(this.values()):
            return {name: min(best[name], this[name]) for name in this}
    return best


def _decode_threads(run: Callable[[], Any], device: torch.device) -> int:
    """1 or every intra-op thread, whichever decodes faster (a tie goes to 1: it leaves the
    other cores free)."""
    every = torch.get_num_threads()

    def on(n: int) -> Callable[[], Any]:
        def call() -> Any:
            torch.set_num_threads(n)
            try:
                return run()
            finally:
                torch.set_num_threads(every)

        return call

    best = _race({"1": on(1), "all": on(every)}, device)
    return 1 if best["1"] <= best["all"] / MARGIN else every


def _model_vocab(model) -> int:
    return model.config.vocab_size


def _autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type=device.type, dtype=dtype)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


_bf16_errors: dict[str, str | None] = {}


def bf16_error(device: torch.device, config: AnyConfig) -> str | None:
    """Why one tiny forward of this model's kind fails in bf16 here, or None when it runs."""
    key = f"{machine_key(device)} {config.arch}"
    if key not in _bf16_errors:
        small = _one_block(config)
        model = build_model(small).to(device).eval()
        tokens = torch.zeros(1, 4, dtype=torch.long, device=device)
        try:
            with torch.no_grad(), _autocast(device, torch.bfloat16):
                model(tokens)
            _bf16_errors[key] = None
        except RuntimeError as e:
            _bf16_errors[key] = _first_line(e)
    return _bf16_errors[key]


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:160]


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _cpu_name() -> str:
    """The CPU's model name and a digest of its flags: two "AMD EPYC" here differed in both
    AVX512 and speed."""
    name, flags = "", ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not name:
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].strip()
    except OSError:
        pass
    digest = hashlib.sha1(flags.encode()).hexdigest()[:8] if flags else "no-flags"
    return f"{name or platform.processor() or platform.machine()} flags:{digest}"
