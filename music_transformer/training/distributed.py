"""Processes: this rank's place in a torchrun job, its device, and collective helpers.

Under torchrun (RANK / WORLD_SIZE / LOCAL_RANK in the environment) training runs as DDP:
nccl on CUDA, gloo on CPU; each rank draws its own windows; rank 0 alone writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..runtime import RuntimeChoiceError, pick_device
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


def init_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """Join the torchrun job if there is one; return this rank's place and device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else 0
    try:
        device = pick_device(device_name, local)
    except RuntimeChoiceError as e:
        raise TrainError(str(e)) from None
    if world <= 1:
        return Dist(), device
    rank = int(os.environ["RANK"])
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
