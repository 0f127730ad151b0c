"""Runtime policy, decided in one place for training, sampling and evaluation alike: which
device, which precision (fp32, or bf16 autocast) and how many threads decoding uses.

    pick_device("auto")                       → cuda (this rank's GPU) when available, else cpu
    autocast_dtype("bf16", device)            → torch.bfloat16, or None (plain fp32)
    with autocast(device, dtype): ...          → autocast when dtype is set, else nothing
    with decode_threads(device, n): ...       → n intra-op threads for decoding steps

What `--precision auto` and the decoding threads should be is measured, per model shape, by
`calibration` (a layer above this one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import torch

DEVICES = ("auto", "cpu", "cuda")  # `cuda:N` is accepted too
PRECISIONS = ("auto", "fp32", "bf16")
Workload = Literal["train", "eval", "decode"]

# Decoding steps are chains of small ops (M ≤ 16 rows). On this project's 2-core CPU one
# intra-op thread decoded as fast as two at batch 1 and fp32, 5-8% faster in bf16 at batch 16
# with the machine idle, and 11-25% faster with the other core busy (bench/results/
# generate.md) — and it leaves a core to other work. The prefill keeps every thread. Larger
# CPUs (more than SMALL_CPU_THREADS threads) are left alone: not measured.
DECODE_THREADS_CPU = 1
SMALL_CPU_THREADS = 2


class RuntimeChoiceError(ValueError):
    """An unknown or unavailable device or precision. The message is one line."""


def pick_device(name: str | torch.device | None = "auto", local_rank: int = 0) -> torch.device:
    """'auto' (or None) → this rank's GPU when CUDA is available, else the CPU; 'cpu',
    'cuda', 'cuda:N' as torch reads them. Raises RuntimeChoiceError when CUDA is asked for
    but missing, or the name is not a device."""
    if name is None or str(name) == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise RuntimeChoiceError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeChoiceError(
                f"device {str(name)!r} was asked for but CUDA is not available"
            )
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


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
    """Run the block on `threads` intra-op threads on the CPU (as `calibration` measured);
    None: DECODE_THREADS_CPU on a small CPU, else unchanged."""
    before = torch.get_num_threads()
    if threads is None and DECODE_THREADS_CPU < before <= SMALL_CPU_THREADS:
        threads = DECODE_THREADS_CPU
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
