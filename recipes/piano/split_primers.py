"""Link the pieces of one split of a prepared data directory into a folder per source, as
primers for `generate --primers DIR --primer-seconds 12` (the long-form measurement).

    python recipes/piano/split_primers.py DATA_DIR SPLIT OUT_DIR [--per-source N]

OUT_DIR/<source folder name>/<file> are symbolic links to the original files (first N of each
source in the manifest's order, which is the sources' sorted file order). The manifest's paths
are relative to the folder `prepare` ran in: run this from the same folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("split", choices=("train", "valid", "test"))
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-source", type=int, default=12)
    args = parser.parse_args()
    try:
        manifest = json.loads((args.data / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        print(f"error: {args.data}: not a prepared data directory ({e})", file=sys.stderr)
        return 2
    taken: dict[str, int] = {}
    for entry in manifest["files"]:
        source = entry["source"]
        if entry.get("split") != args.split or taken.get(source, 0) >= args.per_source:
            continue
        original = Path(source) / entry["path"]
        link = args.out / Path(source).name / entry["path"].replace("/", "__")
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(original.resolve())
        taken[source] = taken.get(source, 0) + 1
    for source, n in taken.items():
        print(f"{args.out / Path(source).name}: {n} {args.split} pieces of {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
