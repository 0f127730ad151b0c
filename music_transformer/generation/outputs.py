"""Output file names and the check that nothing is overwritten without `force`."""

from __future__ import annotations

import os
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


def check_outputs(paths: Sequence[Path], force: bool, inputs: Sequence[Path] = ()) -> None:
    """Raise OutputExistsError naming the first output (MIDI or sidecar) that may not be
    written: one that is a folder, exists (without `force`), is one of `inputs` (the primers:
    never, `force` or not) or is another output's file (OUT.json's sidecar is OUT.json)."""
    check_distinct(paths)
    check_not_inputs(paths, inputs)
    for path in paths:
        for p in (path, sidecar_for(path)):
            if p.is_dir():
                raise OutputExistsError(
                    f"{p} is a folder; give a file name such as {p / 'out.mid'}"
                )
            if p.exists() and not force:
                raise OutputExistsError(f"{p} exists (pass --force to overwrite)")


def check_distinct(paths: Sequence[Path]) -> None:
    """Every output and sidecar must be a file of its own: `-o take.json` would write the
    MIDI and then its sidecar (take.json) over it."""
    seen: dict[Path, Path] = {}
    for path in paths:
        for p in (path, sidecar_for(path)):
            key = Path(os.path.abspath(p))
            if key in seen and seen[key] == path:
                raise OutputExistsError(
                    f"output {path} would be overwritten by its own JSON sidecar ({p}); "
                    "give an output name ending in .mid"
                )
            if key in seen:
                raise OutputExistsError(
                    f"output {path} and the JSON sidecar of {seen[key]} would both be {p}; "
                    "give an output name ending in .mid"
                )
            seen[key] = path


def check_not_inputs(paths: Sequence[Path], inputs: Sequence[Path]) -> None:
    """No output (nor its sidecar) may be, or resolve to, an input file: a primer is the
    user's own music, overwritten by nothing (`force` included)."""
    own = {_identity(Path(p)) for p in inputs} - {None}
    for path in paths:
        for p in (path, sidecar_for(path)):
            if _identity(p) in own:
                raise OutputExistsError(
                    f"output {p} is an input (a primer); choose another output name"
                )


def _identity(path: Path) -> tuple[int, int] | str | None:
    """What makes two paths one file: (device, inode) when it exists (symlinks and hard
    links included), else the resolved path, normalized (`new/../primer.mid` is
    `primer.mid` once `new` is made), which is then looked up again."""
    try:
        st = path.stat()
        return (st.st_dev, st.st_ino)
    except OSError:
        pass
    try:
        normal = Path(os.path.normpath(path.resolve()))
    except (OSError, RuntimeError):
        return None
    if normal != path:
        return _identity(normal)
    return str(normal)
