"""Batch generation: many pieces into one folder, with or without primers, plus a manifest.

`generate_pieces(out_dir, ...)` writes `num_samples` continuations of every usable primer (or
`num_samples` unconditional pieces when no primer is given), each with a JSON sidecar, and
`out_dir/manifest.json` listing every output and every primer skipped with the reason.
A primer that cannot be read is skipped, never fatal; a primer path that does not exist, an
existing output without `force`, or no usable primer at all raises before anything is written.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from midi_data.files import atomic_write_json

from .checkpoint import LoadedModel, package_version
from .continuation import (
    DEFAULT_MODEL,
    MIDI_SUFFIXES,
    OutputExistsError,
    Primer,
    PrimerError,
    Sampling,
    check_counts,
    check_outputs,
    context_window,
    load_model,
    model_record,
    read_primer,
    sample_tokens,
    write_piece,
)
from .sampling import ProgressFn

MANIFEST = "manifest.json"


def find_primers(paths: Sequence[str | Path]) -> list[Path]:
    """Expand files and folders (searched recursively for .mid/.midi) into primer files.

    Raises:
        PrimerError: a path does not exist, or a folder holds no MIDI file.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES
            )
            if not files:
                raise PrimerError(f"primer folder {path} holds no .mid or .midi file")
            found.extend(files)
        elif path.exists():
            found.append(path)
        else:
            raise PrimerError(f"primer {path} does not exist")
    return list(dict.fromkeys(found))  # a file named twice is used once


def _output_names(primers: Sequence[Primer | None], num_samples: int) -> list[str]:
    """File stems: `<primer stem>-<i>` (deduplicated across folders) or `sample-<i>`."""
    names, used = [], set()
    for primer in primers:
        stem = primer.path.stem if primer is not None else "sample"
        base, n = stem, 1
        while base in used:
            n += 1
            base = f"{stem}_{n}"
        used.add(base)
        names.extend(f"{base}-{i}" for i in range(1, num_samples + 1))
    return names


def generate_pieces(
    out_dir: str | Path,
    *,
    num_samples: int,
    primers: Sequence[str | Path] = (),
    model: str | Path | LoadedModel | None = None,
    sampling: Sampling | None = None,
    batch_size: int = 16,
    force: bool = False,
    device: str | torch.device | None = "auto",
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Generate pieces in batches; return the manifest (also written to out_dir/manifest.json).

    Args:
        out_dir: folder for the MIDI files, their sidecars and manifest.json (created).
        num_samples: pieces per primer, or in all when there is no primer; ≥ 1.
        primers: MIDI files and/or folders; empty for unconditional generation.
        model: bundled name, checkpoint/run directory or LoadedModel (default: bundled).
        sampling: how to sample and how much; piece j (in manifest order) uses seed + j.
        batch_size: pieces computed together (rows of one sampler call).
        force: overwrite an existing manifest and outputs.
        device: "auto", "cpu", "cuda", ...
        progress: progress(new_tokens, new_seconds) after every sampler step.

    Returns:
        The manifest: {"outputs": [...], "skipped": [{"path", "reason"}], ...}.
    """
    sampling = (sampling or Sampling()).with_seed()
    check_counts(num_samples, batch_size)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"output folder {out_dir} is a file")
    if (out_dir / MANIFEST).exists() and not force:
        raise OutputExistsError(f"{out_dir / MANIFEST} exists (pass --force to overwrite)")
    files = find_primers(primers)
    loaded = load_model(model, device)

    usable: list[Primer | None] = []
    skipped: list[dict[str, str]] = []
    for path in files:
        try:
            usable.append(read_primer(loaded.tokenizer, path, sampling.primer_seconds))
        except (PrimerError, OSError) as e:  # read_primer turns reader failures into these
            skipped.append({"path": str(path), "reason": str(e)})
    if files and not usable:
        raise PrimerError(f"none of the {len(files)} primers is usable: {skipped[0]['reason']}")
    if not files:
        usable = [None]

    jobs = [p for p in usable for _ in range(num_samples)]  # one per output piece
    outs = [out_dir / f"{name}.mid" for name in _output_names(usable, num_samples)]
    check_outputs(outs, force)

    bos = loaded.tokenizer.bos_id
    entries = []
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start : start + batch_size]
        seed = sampling.seed + start
        rows = [p.ids if p is not None else [bos] for p in batch]
        new = sample_tokens(loaded, rows, sampling, seed, progress)
        for i, (primer, tokens) in enumerate(zip(batch, new)):
            written = write_piece(
                loaded,
                outs[start + i],
                primer,
                tokens,
                sampling=sampling,
                seed=seed + i,
                model_name=model or DEFAULT_MODEL,
                batch=len(batch),
            )
            entries.append(
                {
                    "file": written.midi.name,
                    "sidecar": written.sidecar.name,
                    "primer": str(primer.path) if primer is not None else None,
                    "seed": seed + i,
                    "tokens": written.record["continuation"]["tokens"],
                    "seconds": written.record["continuation"]["seconds"],
                    "stopped_by": written.record["continuation"]["stopped_by"],
                }
            )

    manifest = {
        "model": model_record(loaded, model or DEFAULT_MODEL),
        "sampling": {
            **asdict(sampling),
            "max_new_tokens": sampling.max_new_tokens,
            "window": context_window(loaded, sampling),
        },
        "num_samples": num_samples,
        "batch_size": batch_size,
        "outputs": entries,
        "skipped": skipped,
        "version": package_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_json(out_dir / MANIFEST, manifest)
    return manifest
