"""Training: `train(TrainOptions(...)) -> RUN_DIR`, single process or torchrun/DDP.

See `state` for the run directory layout and `trainer` for what makes resuming exact.
"""

from __future__ import annotations

from pathlib import Path

from .options import TrainError, TrainOptions, build_options, load_run_options, read_config_file
from .state import read_metrics, remove_if_unused

__all__ = [
    "TrainError",
    "TrainOptions",
    "build_options",
    "load_run_options",
    "read_config_file",
    "read_metrics",
    "train",
]


def train(options: TrainOptions) -> Path:
    """Train (or, with options.resume, continue) a model; return the run directory.

    Under torchrun every rank calls this; the process group is set up here (gloo on CPU, nccl
    on CUDA) and torn down at the end unless the caller had set it up already.
    """
    import torch.distributed as dist

    from ..allocator import keep_freed_memory
    from .distributed import close_distributed, init_distributed
    from .trainer import Trainer

    options.validate()
    keep_freed_memory()  # the step's big buffers reused warm (allocator.py)
    owned = not dist.is_initialized()
    place, device = init_distributed(options.device)
    fresh = not Path(options.out_dir).exists()
    try:
        return Trainer(options, place, device).run()
    except BaseException:
        if fresh and place.is_main:
            remove_if_unused(Path(options.out_dir))
        raise
    finally:
        if owned:
            close_distributed()
