"""Shared by the tests that train models: options for quick, deterministic CPU runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from music_transformer.training import TrainOptions


def cpu_train_options(data_dir: str | Path, out_dir: str | Path, **fields: Any) -> TrainOptions:
    """TrainOptions for a test: the tiny preset on the CPU in fp32, quiet, no TensorBoard;
    `fields` set the rest (steps, lengths, learning rate, ...) and may override these."""
    values: dict[str, Any] = dict(
        data_dir=str(data_dir),
        out_dir=str(out_dir),
        preset="tiny",
        quiet=True,
        device="cpu",
        precision="fp32",
        tensorboard=False,
    )
    values.update(fields)
    return TrainOptions(**values)
