"""Write the first N Bach chorales of music21's corpus (public domain) as MIDI files into a
folder: a stand-in for "a folder of your own MIDI" that every installation can rebuild.

Usage: python recipes/finetune/chorales.py OUT_DIR [--count 20]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from midi_data.corpus import music21_files


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--count", type=int, default=20)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    written = 0
    for f in music21_files("bach", limit=args.count):
        if f.error is None:
            shutil.copyfile(f.path, args.out / f"{f.relative.replace('/', '_')}.mid")
            written += 1
    print(f"{written} chorales → {args.out}")


if __name__ == "__main__":
    main()
