"""Output file names and the check that nothing is overwritten without `force`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .primers import Primer


class OutputExistsError(ValueError):
    """An output file exists and `force` was not given."""


def numbered_outputs(out: str | Path, num_samples: int) -> list[Path]:
    """OUT.mid for one sample; OUT-1.mid … OUT-N.mid for several."""
    out = Path(out)
    if num_samples == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(1, num_samples + 1)]


def piece_names(primers: Sequence[Primer | None], num_samples: int) -> list[str]:
    """File stems for a batch job: `<primer stem>-<i>` (deduplicated across folders) or
    `sample-<i>` for unconditional pieces; `num_samples` per primer, in order."""
    names, used = [], set()
    for primer in primers:
        stem = primer.path.stem if primer is not None and primer.path else "sample"
        base, n = stem, 1
        while base in used:
            n += 1
            base = f"{stem}_{n}"
        used.add(base)
        names.extend(f"{base}-{i}" for i in range(1, num_samples + 1))
    return names


def sidecar_for(midi: Path) -> Path:
    """OUT.json beside OUT.mid."""
    return midi.with_suffix(".json")


def check_outputs(paths: Sequence[Path], force: bool) -> None:
    """Raise OutputExistsError naming the first existing output (MIDI or sidecar)."""
    for path in paths:
        for p in (path, sidecar_for(path)):
            if p.exists() and not force:
                raise OutputExistsError(f"{p} exists (pass --force to overwrite)")
            if p.is_dir():
                raise OutputExistsError(f"{p} is a directory")
