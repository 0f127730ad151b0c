"""Copy trained Bach runs into the package as bundled models, and cut the bundled primers.

Usage: python recipes/bach/bundle.py DATA_DIR RUNS_DIR
  RUNS_DIR/bach-transformer, RUNS_DIR/bach-lstm (and RUNS_DIR/bach-absolute if present) are
  training run directories; each best checkpoint is stored in bf16 (half the size of fp32) under
  music_transformer/bundled/<name>/. Primers: the first PRIMER_SECONDS of the first three
  test-split chorales (by manifest order) under music_transformer/bundled/primers/.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from midi_data import crop_seconds, read_midi
from midi_data.cache import cache_dir
from midi_data.files import atomic_write
from music_transformer.checkpoint import BUNDLED_DIR, export_checkpoint, load_checkpoint
from music_transformer.nn import count_parameters

PRIMER_SECONDS = 12.0
NAMES = ("bach-transformer", "bach-lstm", "bach-absolute")


def bundle_model(run_dir: Path, name: str) -> None:
    out = export_checkpoint(run_dir, BUNDLED_DIR / name, dtype=torch.bfloat16)
    size = (out / "model.safetensors").stat().st_size / 1e6
    print(f"{name}: {count_parameters(load_checkpoint(out).config):,} parameters, {size:.1f} MB")


def cut_primers(data_dir: Path, count: int = 3) -> None:
    manifest = json.loads((data_dir / "manifest.json").read_text())
    test = [f for f in manifest["files"] if f.get("split") == "test"][:count]
    out_dir = BUNDLED_DIR / "primers"
    for f in test:
        midi = cache_dir() / "music21" / (f["path"] + ".mid")
        if not midi.is_file():  # corpus cache layout differs: search for it
            midi = next(cache_dir().rglob(Path(f["path"]).name + ".mid"))
        pm = crop_seconds(read_midi(midi), 0.0, PRIMER_SECONDS)
        target = out_dir / (Path(f["path"]).name.replace(".", "_") + ".mid")
        atomic_write(target, lambda p, pm=pm: pm.write(str(p)))
        print(f"primer {target.name}: {len(pm.instruments)} tracks, {PRIMER_SECONDS:.0f} s")


def main() -> None:
    data_dir, runs = Path(sys.argv[1]), Path(sys.argv[2])
    for name in NAMES:
        if (runs / name).is_dir():
            bundle_model(runs / name, name)
    cut_primers(data_dir)


if __name__ == "__main__":
    main()
