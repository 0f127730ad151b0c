"""`generate_pieces`: batch generation — many pieces into one folder, with or without
primers, plus a manifest. The library behind `music-transformer generate`.

Writes `num_samples` continuations of every usable primer (or `num_samples` unconditional
pieces when no primer is given), each with a JSON sidecar, and `out_dir/manifest.json` listing
every output and every primer skipped with the reason. A primer that cannot be read is
skipped, never fatal; a primer path that does not exist, an existing output without `force`,
or no usable primer at all raises before anything is written.

A run that stops early (Ctrl-C, a full disk) still writes the manifest of the pieces it
finished, marked "incomplete"; the same call again resumes it: it keeps those pieces (same
model, settings, primers and seeds — the seed too when none is given) and makes the rest,
exactly as an uninterrupted run would have (`runner.batches`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from midi_data.files import atomic_write_json

from ..checkpoint import LoadedModel
from .loading import DEFAULT_MODEL, check_window, load_model
from .outputs import OutputExistsError, check_outputs, piece_names, sidecar_for
from .primers import Primer, PrimerError, find_primers, read_primer
from .runner import DEFAULT_BATCH_SIZE, Job, Take, plan, run
from .sampler import ProgressFn
from .settings import SamplingSettings, check_counts
from .sidecars import Output, model_record, result_record, settings_record, stamp, write_piece

MANIFEST = "manifest.json"
INCOMPLETE = "incomplete"  # the manifest key of a run that stopped early (absent when done)


class GenerationInterrupted(KeyboardInterrupt):
    """Ctrl-C during `generate_pieces`, after the manifest of what finished was written."""


def generate_pieces(
    out_dir: str | Path,
    *,
    num_samples: int,
    primers: Sequence[str | Path] = (),
    model: str | Path | LoadedModel | None = None,
    settings: SamplingSettings | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
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
        force: overwrite an existing manifest and outputs (an interrupted run starts over).
        sustain_pedal: write pedalled notes as key lifts + CC64 (`midi_data.pedal`).
        device: "auto", "cpu", "cuda", ...
        progress: progress(new_tokens, new_seconds) after every sampler step.

    Returns:
        The manifest: {"outputs": [...], "skipped": [{"path", "reason"}], ...}.

    Raises:
        GenerationInterrupted: Ctrl-C; the manifest (marked incomplete) lists what finished.
    """
    settings = settings or SamplingSettings()
    check_counts(num_samples, batch_size)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExistsError(f"output folder {out_dir} is a file")
    earlier = None if force else _interrupted_run(out_dir / MANIFEST)
    if earlier is not None and settings.seed is None:  # the same command again: its seed
        sampling = earlier.get("sampling")
        settings = replace(
            settings, seed=sampling.get("seed") if isinstance(sampling, dict) else None
        )
    files = find_primers(primers)
    loaded = load_model(model, device)
    check_window(loaded, settings)
    settings = plan(loaded, settings)

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

    names = piece_names(usable, num_samples)
    jobs = [Job(p, out_dir / f"{n}.mid") for p, n in zip(_each(usable, num_samples), names)]
    name = model or DEFAULT_MODEL
    head = {
        "model": model_record(loaded, name),
        "sampling": settings_record(settings),
        "num_samples": num_samples,
        "batch_size": batch_size,
    }
    done = {} if earlier is None else _finished(earlier, head, jobs, settings.seed)
    resuming = force or earlier is not None  # an interrupted run's leftovers may be replaced
    check_outputs([job.out for j, job in enumerate(jobs) if j not in done], resuming, inputs=files)

    entries = dict(done)  # job index → manifest entry
    manifest = {**head, "outputs": [], "skipped": skipped}
    try:
        for take in run(loaded, jobs, settings, batch_size, progress, skip=done):
            written = write_piece(
                loaded, take, model_name=name, force=resuming, pedal=sustain_pedal
            )
            entries[take.index] = _entry(take, written)
    except BaseException as e:
        manifest["outputs"] = [entries[j] for j in sorted(entries)]
        manifest[INCOMPLETE] = (
            f"stopped after {len(entries)} of {len(jobs)} pieces ({type(e).__name__}); "
            "the same command again makes the rest"
        )
        try:
            atomic_write_json(out_dir / MANIFEST, {**manifest, **stamp()})
        except OSError:  # a full disk, say: the error that stopped the run is the one to see
            raise e from None
        if isinstance(e, KeyboardInterrupt):
            raise GenerationInterrupted(
                f"wrote {len(entries)} of {len(jobs)} pieces and {out_dir / MANIFEST} "
                "(incomplete); the same command again makes the rest"
            ) from None
        raise
    manifest["outputs"] = [entries[j] for j in sorted(entries)]
    manifest = {**manifest, **stamp()}
    atomic_write_json(out_dir / MANIFEST, manifest, exclusive=not resuming)
    return manifest


def _each(usable: list[Primer | None], num_samples: int) -> list[Primer | None]:
    """Each primer `num_samples` times, in order: one per output piece."""
    return [p for p in usable for _ in range(num_samples)]


def _entry(take: Take, written: Output) -> dict[str, Any]:
    primer = take.job.primer
    return {
        "file": written.midi.name,
        "sidecar": written.sidecar.name,
        "primer": str(primer.path) if primer is not None else None,
        "seed": take.seed,
        **result_record(take.result),
    }


def _interrupted_run(path: Path) -> dict[str, Any] | None:
    """The manifest at `path` if it is an interrupted run's; None if there is none; an
    OutputExistsError for a finished run's (or anything else)."""
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = None
    if isinstance(manifest, dict) and INCOMPLETE in manifest:
        return manifest
    raise OutputExistsError(f"{path} exists (pass --force to overwrite)")


def _finished(
    earlier: dict[str, Any], head: dict[str, Any], jobs: list[Job], seed: int
) -> dict[int, dict[str, Any]]:
    """Job index → manifest entry of the pieces an interrupted run finished, whose files are
    still there. OutputExistsError when that run made other pieces than this one plans."""
    manifest = jobs[0].out.parent / MANIFEST
    for key, value in json.loads(json.dumps(head)).items():
        if earlier.get(key) != value:
            raise OutputExistsError(
                f"{manifest} is from an interrupted run with another {key.replace('_', ' ')}; "
                "run it again as it was to finish it, or pass --force to start over"
            )
    index = {job.out.name: j for j, job in enumerate(jobs)}
    done = {}
    for entry in earlier.get("outputs", []):
        j = index.get(entry.get("file"))
        primer = jobs[j].primer if j is not None else None
        if (
            j is None
            or entry.get("seed") != seed + j
            or entry.get("primer") != (str(primer.path) if primer is not None else None)
        ):
            raise OutputExistsError(
                f"{manifest} is from an interrupted run with other primers; run it again as "
                "it was to finish it, or pass --force to start over"
            )
        if jobs[j].out.exists() and sidecar_for(jobs[j].out).exists():
            done[j] = entry
    return done
