"""Writing one generated piece: its MIDI file and the JSON sidecar that says how it was made.

The sidecar records what the sampler reports (`Generated`: stop reason, window, precision),
never a recomputation of it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from midi_data.files import atomic_write_json

from ..checkpoint import LoadedModel, package_version
from .outputs import sidecar_for
from .primers import Primer
from .sampler import Generated
from .settings import SamplingSettings


@dataclass
class Output:
    """One written piece: MIDI path, sidecar path and what went into it."""

    midi: Path
    sidecar: Path
    record: dict[str, Any] = field(default_factory=dict)


def model_record(loaded: LoadedModel, name: Any) -> dict[str, Any]:
    """Which model made a piece: name, directory, architecture, training length."""
    config = loaded.config
    record = {"name": str(name), "directory": str(loaded.directory), "arch": config.arch}
    if config.arch == "transformer":
        record["position"] = config.position
    record["training_seq_len"] = loaded.training_seq_len
    return record


def settings_record(settings: SamplingSettings, batch: int | None = None) -> dict[str, Any]:
    """The settings as asked for, plus the token budget (and the batch size of one piece)."""
    record = {**settings.record(), "max_new_tokens": settings.max_new_tokens}
    if batch is not None:
        record["batch"] = batch
    return record


def write_piece(
    loaded: LoadedModel,
    out: Path,
    primer: Primer | None,
    result: Generated,
    *,
    settings: SamplingSettings,
    model_name: Any,
    batch: int = 1,
    continuation_only: bool = False,
    force: bool = False,
) -> Output:
    """Write the MIDI (primer + continuation, or continuation only) and its sidecar.

    `settings` are those of this piece's row (its own seed). Without `force` both files are
    created exclusively: if another process made either meanwhile, TargetExistsError."""
    tok = loaded.tokenizer
    primer_events = primer.ids[1:] if primer is not None else []
    ids = result.tokens if continuation_only else primer_events + result.tokens
    tok.write_midi(ids, out, exclusive=not force)
    record = {
        "output": out.name,
        "model": model_record(loaded, model_name),
        "primer": None
        if primer is None
        else {
            "path": str(primer.path) if primer.path else None,
            "tokens": len(primer_events),
            "seconds": round(primer.seconds, 3),
            "primer_seconds": settings.primer_seconds,
            "included": not continuation_only,
        },
        "continuation": {
            "tokens": len(result.tokens),
            "seconds": round(result.seconds, 3),
            "stopped_by": result.stopped_by,
        },
        "sampling": {
            **settings_record(settings, batch),
            "window": result.window,
            "precision_used": result.precision,
        },
        "version": package_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    sidecar = sidecar_for(out)
    atomic_write_json(sidecar, record, exclusive=not force)
    return Output(out, sidecar, record)
