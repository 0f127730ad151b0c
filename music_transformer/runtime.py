"""Runtime policy, decided in one place for training, sampling and evaluation alike: which
device, which precision (fp32, or bf16 autocast) and how many intra-op threads decoding uses.

    pick_device("auto")                       → cuda (this rank's GPU) when available, else cpu
    check_device("cuda:1")                    → the name, or RuntimeChoiceError (one line)
    autocast_dtype("bf16", device)            → torch.bfloat16, or None (plain fp32)
    with autocast(device, dtype): ...          → autocast when dtype is set, else nothing
    with decode_threads(device, n): ...       → n intra-op threads for decoding steps

What `--precision auto` and the decoding threads should be is measured on the machine, per
model shape, by `calibration` (a layer above this one: it builds models), on every CPU and
GPU alike; the answers are kept in `calibration_file()`, the one place runtime decisions are
cached. A caller that knows better passes its own: a precision name, or a thread count to the
sampler (`generate(..., threads=N)`) — the benchmarks do, to time the alternatives.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch

from midi_data.cache import cache_dir

DEVICE_HELP = "auto, cpu, cuda, cuda:N"
PRECISIONS = ("auto", "fp32", "bf16")
Workload = Literal["train", "eval", "decode"]
CALIBRATION_FILE = "calibration.json"


class RuntimeChoiceError(ValueError):
    """An unknown or unavailable device or precision. The message is one line."""


def calibration_file() -> Path:
    """Where measured runtime choices are cached: calibration.json in the user cache
    directory (`midi_data.cache`), keyed by machine, torch version and model shape."""
    return cache_dir() / CALIBRATION_FILE


def pick_device(name: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """'auto' (or None) → this rank's GPU when CUDA is available, else the CPU; 'cpu',
    'cuda', 'cuda:N' as torch reads them. Raises RuntimeChoiceError (one line) when the name
    is not a device, or names one this machine or torch build cannot run a model on (CUDA
    missing, 'meta', 'mps'/'xpu'/'hpu' without their backend, an index past the last GPU)."""
    if name is None or str(name) == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    device = _usable_device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def check_device(name: str) -> str:
    """`name` unchanged when `pick_device` accepts it, else RuntimeChoiceError: the one check
    of every command's --device, made when the option is parsed."""
    pick_device(name)
    return name


def _usable_device(name: str | torch.device) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise RuntimeChoiceError(f"unknown device {str(name)!r} ({DEVICE_HELP})") from None
    if device.type == "cpu":
        return device
    if device.type == "meta":  # shapes without data: nothing to compute with
        raise RuntimeChoiceError(
            f"device 'meta' holds no data, a model cannot run on it ({DEVICE_HELP})"
        )
    count = _device_count(device.type)
    if count == 0:
        raise RuntimeChoiceError(
            f"device {str(name)!r} was asked for but this machine (torch {torch.__version__}) "
            f"has no usable {device.type} device ({DEVICE_HELP})"
        )
    if device.index is not None and device.index >= count:
        raise RuntimeChoiceError(
            f"device {str(name)!r} was asked for but this machine has {count} {device.type} "
            "device(s), numbered from 0"
        )
    return device


def _device_count(kind: str) -> int:
    """How many devices of this kind torch can run on here (0: none, or no such backend)."""
    if kind == "mps":
        mps = getattr(torch.backends, "mps", None)
        return int(mps is not None and mps.is_available())
    module = getattr(torch, kind, None)  # torch.cuda, torch.xpu, ...; absent for most kinds
    try:
        if module is None or not module.is_available():
            return 0
        return int(module.device_count())
    except (AttributeError, RuntimeError):  # a stub module without a working backend
        return 0


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise RuntimeChoiceError(
            f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}"
        )
    return precision


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` (None = plain fp32) when no model shape is known:
    'bf16' → bf16, 'fp32' and 'auto' → fp32. A caller with a model asks
    `calibration.choose_precision`, which measures what 'auto' should mean."""
    check_precision(precision)
    return torch.bfloat16 if precision == "bf16" else None


def precision_name(dtype: torch.dtype | None) -> str:
    """ "fp32" or "bf16": what records and logs call the precision that ran."""
    return "fp32" if dtype is None else "bf16"


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """torch.autocast to `dtype` on `device`, or a no-op when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def decode_threads(device: torch.device, threads: int | None = None) -> Iterator[None]:
    """Run the block on `threads` intra-op threads on the CPU (None, or another device:
    unchanged). The sampler passes what `calibration` measured decoding fastest with on this
    machine — one thread or all of them — unless its caller gave a count."""
    before = torch.get_num_threads()
    if device.type != "cpu" or threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cpu_has_amx() -> bool:
    """True when the CPU has AMX bf16 tile units: reported beside benchmark figures. It does
    not decide the precision (`calibration` measures that): on a Xeon with AVX512-BF16 but no
    AMX bf16 trained 18% slower than fp32, on an EPYC with the same flags 2× faster."""
    get_caps = getattr(torch.cpu, "get_capabilities", None)
    if get_caps is not None:
        return bool(get_caps().get("amx_bf16"))
    try:  # older torch: read the flags (get_cpu_capability() stops at "AVX512")
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no way to tell cheaply, stay exact
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return "amx_bf16" in flags.split()
