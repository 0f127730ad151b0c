"""Ship the JSB relative Transformer as the bundled model `jsb-relative` (bf16 weights).

Usage: python recipes/jsb/bundle.py RUN_DIR
  RUN_DIR is a training run of a relative recipe, e.g. runs/jsb/relative-pitch-time (the
  shipped one); its best checkpoint (lowest valid NLL) goes to
  music_transformer/bundled/jsb-relative/. Then anyone can run
  `music-transformer evaluate jsb-relative --data DATA --split valid`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from music_transformer.checkpoint import BUNDLED_DIR, export_checkpoint, load_checkpoint
from music_transformer.nn import count_parameters

NAME = "jsb-relative"
LIMIT_MB = 25.0  # the most a bundled model may weigh (issue 8)
CARD = {"suits": "four-voice chorale grids, S A T B on 16ths (the paper's JSB benchmark)"}


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    run = Path(sys.argv[1])
    out = export_checkpoint(run, BUNDLED_DIR / NAME, dtype=torch.bfloat16, card=CARD)
    size = (out / "model.safetensors").stat().st_size / 1e6
    params = count_parameters(load_checkpoint(out).config)
    print(f"{NAME}: {params:,} parameters, {size:.1f} MB (bf16) from {run}")
    if size > LIMIT_MB:
        sys.exit(f"Error: {NAME} weighs {size:.1f} MB, over the {LIMIT_MB:.0f} MB limit")


if __name__ == "__main__":
    main()
