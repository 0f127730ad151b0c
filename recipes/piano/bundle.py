"""Ship a trained piano run as a bundled model (bf16 weights), and cut the bundled piano primers.

Usage: python recipes/piano/bundle.py RUN_DIR NAME [--data DATA_DIR] [--primers N]
                                      [--temperature T] [--guard] [--sink-tokens K]
  RUN_DIR: a run of recipes/piano/transformer.toml or lstm.toml; its best checkpoint (lowest
  valid NLL) goes to music_transformer/bundled/NAME/ (piano-transformer, piano-lstm).
  --data: the prepared piano data (default data/piano); with --primers N (default 0), the
  openings of the first N test-split pieces of each of its collections (12 s each;
  recipes/piano/primers.py) are written to music_transformer/bundled/primers/: piano-<piece>.mid
  from piano-midi.de's classical pieces (CC BY-SA 3.0 DE, Bernd Krueger), pop909-<song>.mid from
  POP909's songs (MIT): see music_transformer/bundled/primers/NOTICE.md.
  --temperature: the sampling temperature the card recommends (the default of continue,
  generate and compare for this model), chosen on the valid split with
  `recipes/piano/pianist.py --split valid`.
  --guard: the card recommends the sampler's guard (`--guard` becomes the default for this
  model), chosen on 180-s continuations of valid primers with `music-transformer judge`
  without worse pianist measurements.
  --sink-tokens: the attention sinks the card recommends (the default of --sink-tokens for
  this model), chosen the same way.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch

from music_transformer.checkpoint import BUNDLED_DIR, export_checkpoint, load_checkpoint
from music_transformer.nn import count_parameters

sys.path.insert(0, str(Path(__file__).resolve().parent))
from primers import cut_piece, split_pieces, write_primer

LIMIT_MB = 25.0  # the most a bundled model may weigh
PRIMER_SECONDS = 12.0
SUITS = {
    "piano-transformer": "expressive solo piano{genres}: dynamics, pedal, rubato "
    "(the default model)",
    "piano-lstm": "expressive solo piano{genres} (the RNN baseline of piano-transformer)",
}
PREFIX = {"classical-piano": "piano", "pop909": "pop909"}  # primer file names per collection


def collections(data_dir: str) -> list[str]:
    """The folder names of the collections `data_dir` was prepared from, in manifest order."""
    manifest = json.loads((Path(data_dir) / "manifest.json").read_text(encoding="utf-8"))
    return [Path(source).name for source in manifest["sources"]]


def first_test_pieces(data_dir: str, per_collection: int) -> list[tuple[str, str, Path]]:
    """(collection, path relative to it, file) of the first test pieces of each collection."""
    out: list[tuple[str, str, Path]] = []
    names = collections(data_dir)
    for relative, path in split_pieces(data_dir):
        collection = next(n for n in names if n in path.parts)
        if sum(c == collection for c, _, _ in out) < per_collection:
            out.append((collection, relative, path))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("name")
    ap.add_argument("--data", default="data/piano")
    ap.add_argument("--primers", type=int, default=0)
    ap.add_argument("--temperature", type=float, default=None)
    ap.add_argument("--guard", action="store_true")
    ap.add_argument("--sink-tokens", type=int, default=0)
    args = ap.parse_args()
    names = collections(args.data)
    genres = " (classical and pop)" if {"classical-piano", "pop909"} <= set(names) else ""
    suits = SUITS.get(args.name, "expressive solo piano{genres} (performance MIDI)")
    card = {"suits": suits.format(genres=genres)}
    sampling = {"temperature": args.temperature} if args.temperature is not None else {}
    card["sampling"] = {**sampling, **({"guard": True} if args.guard else {})}
    if args.sink_tokens:
        card["sampling"]["sink_tokens"] = args.sink_tokens
    out = export_checkpoint(args.run, BUNDLED_DIR / args.name, dtype=torch.bfloat16, card=card)
    size = (out / "model.safetensors").stat().st_size / 1e6
    params = count_parameters(load_checkpoint(out).config)
    print(f"{args.name}: {params:,} parameters, {size:.1f} MB (bf16) from {args.run}")
    if size > LIMIT_MB:
        sys.exit(f"Error: {args.name} weighs {size:.1f} MB, over the {LIMIT_MB:.0f} MB limit")
    for collection, relative, path in first_test_pieces(args.data, args.primers):
        cut = cut_piece(relative, path, PRIMER_SECONDS, 60.0, middle=None)[0]
        slug = re.sub(r"[^A-Za-z0-9]+", "-", Path(relative).stem).strip("-").lower()
        name = f"{PREFIX.get(collection, collection)}-{slug}.mid"
        print("primer", write_primer(cut, BUNDLED_DIR / "primers" / name))


if __name__ == "__main__":
    main()
