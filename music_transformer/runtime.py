"""Runtime policy, decided in one place for training, sampling and evaluation alike: which
device, which precision (fp32, or bf16 autocast) and how many threads decoding uses.

    pick_device("auto")                       → cuda (this rank's GPU) when available, else cpu
    autocast_dtype("auto", device, "train")   → torch.bfloat16 or None (plain fp32)
    with autocast(device, dtype): ...          → autocast when dtype is set, else nothing
    with decode_threads(device): ...          → one intra-op thread for decoding on small CPUs
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

# On this project's AMX CPU, bf16 autocast made a decoding step of the `small` Transformer
# slower at batch 1 (~4×: per-step casts and small-M bf16 kernels cost more than they save)
# and faster at batch 16 (~1.5×); see bench/results/generate.md. "auto" follows that.
AUTO_BF16_MIN_BATCH_CPU = 8

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


def autocast_dtype(
    precision: str,
    device: torch.device,
    workload: Workload = "train",
    *,
    batch: int = 1,
    arch: str | None = "transformer",
) -> torch.dtype | None:
    """The autocast dtype for `precision` (None = plain fp32).

    'fp32' → None; 'bf16' → bf16 (honoured even where it is emulated); 'auto' → bf16 where it
    measured faster: on CUDA with bf16; on AMX CPUs for training and evaluation, and for
    decoding Transformers at batch ≥ AUTO_BF16_MIN_BATCH_CPU. Elsewhere fp32.
    """
    check_precision(precision)
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if not bf16_is_fast(device):
        return None
    if device.type == "cuda" or workload != "decode":
        return torch.bfloat16
    return torch.bfloat16 if arch == "transformer" and batch >= AUTO_BF16_MIN_BATCH_CPU else None


def precision_name(dtype: torch.dtype | None) -> str:
    """ "fp32" or "bf16": what records and logs call the precision that ran."""
    return "fp32" if dtype is None else "bf16"


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """torch.autocast to `dtype` on `device`, or a no-op when dtype is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


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


def bf16_is_fast(device: torch.device) -> bool:
    """True where bf16 matrix multiply is native and measured faster: CUDA with bf16, AMX CPUs."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_amx()


def cpu_has_amx() -> bool:
    """True when the CPU has AMX bf16 tile units.

    Only AMX made bf16 faster than fp32 on this project's Intel CPUs. On a Xeon with
    AVX512-BF16 but no AMX, training the paper-size JSB Transformer (L 1024, batch 8, 2
    threads) ran at 1,253 tokens/s in bf16 against 1,475 in fp32, so AVX512-BF16 alone does
    not count.
    """
    get_caps = getattr(torch.cpu, "get_capabilities", None)
    if get_caps is not None:
        return bool(get_caps().get("amx_bf16"))
    try:  # older torch: read the flags (get_cpu_capability() stops at "AVX512")
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: no way to tell cheaply, stay exact
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return "amx_bf16" in flags.split()
