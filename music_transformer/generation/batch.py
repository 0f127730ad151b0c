"""`generate_pieces`: batch generation — many pieces into one folder, with or without
primers, plus a manifest. The library behind `music-transformer generate`.

Writes `num_samples` continuations of every usable primer (or `num_samples` unconditional
pieces when no primer is given), each with a JSON sidecar, and `out_dir/manifest.json` listing
every output and every primer skipped with the reason. A primer that cannot be read is
skipped, never fatal; a primer path that does not exist, an existing output without `force`,
or no usable primer at all raises before anything is written.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from midi_data.files import atomic_write_json

from ..checkpoint import LoadedModel, package_version
from .loading import DEFAULT_MODEL, check_window, load_model, model_settings, sample_batch
from .outputs import OutputExistsError, check_outputs, piece_names
from .primers import Primer, PrimerError, find_primers, read_primer
from .sampler import ProgressFn
from .settings import SamplingSettings, check_counts
from .sidecars import model_record, settings_record, write_piece

MANIFEST = "manifest.json"


def generate_pieces(
    out_dir: str | Path,
    *,
    num_samples: int,
    primers: Sequence[str | Path] = (),
    model: str | Path | LoadedModel | None = None,
    settings: SamplingSettings | None = None,
    batch_size: int = 16,
    force: bool = False,
    sustain_pedal: bool = False,
    device: str | torch.device | None = "auto",
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Generate pieces in batches; return the manifest (also written to out_dir/manifest.json).

    Args:
        out_dir: folder for the MIDI files, their sidecars and manifest.json (created).
        num_samples: pieces per primer, or in all when there is no primer; ≥ 1.
        primers: MIDI files and/or folders; empty for unconditional generation.
        model: bundled name, checkpoint/run directory or LoadedModel (default: bundled).
        settings: how to sample and how much; piece j (in manifest order) uses seed + j.
        batch_size: pieces computed together (rows of one sampler call).
        force: overwrite an existing manifest and outputs.
        sustain_pedal: write pedalled notes as key lifts + CC64 (`midi_data.pedal`).
        device: "auto", "cpu", "cuda", ...
        progress: progress(new_tokens, new_seconds) after every sampler step.

    Returns:
        The manifest: {"outputs": [...], "skipped": [{"path", "reason"}], ...}.
    """
    settings = (settings or SamplingSettings()).with_seed()
    check_counts(num_samples, batch_size)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"output folder {out_dir} is a file")
    if (out_dir / MANIFEST).exists() and not force:
        raise OutputExistsError(f"{out_dir / MANIFEST} exists (pass --force to overwrite)")
    files = find_primers(primers)
    loaded = load_model(model, device)
    check_window(loaded, settings)
    settings = model_settings(loaded, settings)  # what the records show is what ran

    usable: list[Primer | None] = []
    skipped: list[dict[str, str]] = []
    for path in files:
        try:
            usable.append(
                read_primer(loaded.tokenizer, path, settings.primer_seconds, file_time=True)
            )
        except (PrimerError, OSError) as e:  # read_primer turns reader failures into these
            skipped.append({"path": str(path), "reason": str(e)})
    if files and not usable:
        raise PrimerError(f"none of the {len(files)} primers is usable: {skipped[0]['reason']}")
    if not files:
        usable = [None]

    jobs = [p for p in usable for _ in range(num_samples)]  # one per output piece
    outs = [out_dir / f"{name}.mid" for name in piece_names(usable, num_samples)]
    check_outputs(outs, force, inputs=files)

    bos = loaded.tokenizer.bos_id
    name = model or DEFAULT_MODEL
    entries = []
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start : start + batch_size]
        rows = [p.ids if p is not None else [bos] for p in batch]
        rates = [p.rate if p is not None else 1.0 for p in batch]
        generated = sample_batch(
            loaded, rows, replace(settings, seed=settings.seed + start), progress, rates
        )
        for i, (primer, result) in enumerate(zip(batch, generated)):
            seed = settings.seed + start + i
            written = write_piece(
                loaded, outs[start + i], primer, result,
                settings=replace(settings, seed=seed), model_name=name, batch=len(batch),
                force=force, pedal=sustain_pedal,
            )  # fmt: skip
            entries.append(
                {
                    "file": written.midi.name,
                    "sidecar": written.sidecar.name,
                    "primer": str(primer.path) if primer is not None else None,
                    "seed": seed,
                    "tokens": len(result.tokens),
                    "seconds": round(result.seconds, 3),
                    "stopped_by": result.stopped_by,
                }
            )

    manifest = {
        "model": model_record(loaded, name),
        "sampling": {**settings_record(settings), "window": loaded.context_window(settings.window)},
        "num_samples": num_samples,
        "batch_size": batch_size,
        "outputs": entries,
        "skipped": skipped,
        "version": package_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_json(out_dir / MANIFEST, manifest, exclusive=not force)
    return manifest
