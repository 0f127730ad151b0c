"""Processes, devices and precision.

Under torchrun (RANK / WORLD_SIZE / LOCAL_RANK in the environment) training runs as DDP:
nccl on CUDA, gloo on CPU; each rank draws its own windows; rank 0 alone writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..precision import bf16_is_fast
from .options import TrainError


@dataclass(frozen=True)
class Dist:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto` → this rank's GPU if CUDA is available, else the CPU."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainError("--device cuda was asked for but CUDA is not available")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def pick_precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `--precision` on `device` (None = plain fp32)."""
    if name == "fp32":
        return None
    if name == "bf16":
        return torch.bfloat16  # asked for explicitly: honour it even where it is emulated
    return torch.bfloat16 if bf16_is_fast(device) else None


def init_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """Join the torchrun job if there is one; return this rank's place and device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), pick_device(device_name)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank, world, local), device


def close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def all_sum(values: list[float], place: Dist, device: torch.device) -> list[float]:
    """Sum a few floats over all ranks (identity in a single process)."""
    if not place.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def barrier(place: Dist) -> None:
    if place.enabled:
        dist.barrier()
