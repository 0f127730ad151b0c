"""Writing one generated piece: its MIDI file and the JSON sidecar that says how it was made.

The sidecar records what the sampler reports (`Generated`: stop reason, window, precision),
never a recomputation of it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from midi_data.files import TargetExistsError, atomic_write, atomic_write_json
from midi_data.pedal import with_pedal
from midi_data.splice import splice

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


def _write_midi(tok, out: Path, primer, new, continuation_only: bool, exclusive: bool, pedal):
    """The primer's own file spliced with the continuation (`midi_data.splice`), or, without
    a primer file (or one mido cannot parse event by event), the decoded tokens alone."""
    ids = new if continuation_only else (primer.ids[1:] if primer else []) + new
    reason = "no primer file"
    if primer is not None and primer.path is not None:
        try:
            done = splice(
                tok, primer.path, primer.ids[1:], new, out, continuation_only, exclusive, pedal
            )
            return {"layout": "primer file verbatim + continuation track", **asdict(done)}
        except TargetExistsError:
            raise
        except (OSError, ValueError, EOFError, KeyError, IndexError) as e:  # what mido raises
            reason = f"the primer file could not be kept as it is ({type(e).__name__}: {e})"
    if pedal:
        pm = with_pedal(tok.decode(ids))
        atomic_write(out, lambda p: pm.write(str(p)), exclusive)
    else:
        tok.write_midi(ids, out, exclusive=exclusive)
    return {"layout": f"decoded tokens, one track at 120 BPM ({reason})"}


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
    pedal: bool = False,
) -> Output:
    """Write the MIDI (primer + continuation, or continuation only) and its sidecar.

    `settings` are those of this piece's row (its own seed). Without `force` both files are
    created exclusively: if another process made either meanwhile, TargetExistsError."""
    tok = loaded.tokenizer
    primer_events = primer.ids[1:] if primer is not None else []
    written = _write_midi(
        tok, out, primer, result.tokens, continuation_only, exclusive=not force, pedal=pedal
    )
    record = {
        "output": out.name,
        "model": model_record(loaded, model_name),
        "primer": None
        if primer is None
        else {
            "path": str(primer.path) if primer.path else None,
            "tokens": len(primer_events),
            "seconds": round(primer.heard_seconds, 3),
            "primer_seconds": settings.primer_seconds,
            "included": not continuation_only,
        },
        "midi": written,
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
        **({"guard": result.guard} if result.guard is not None else {}),
        "version": package_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    sidecar = sidecar_for(out)
    atomic_write_json(sidecar, record, exclusive=not force)
    return Output(out, sidecar, record)
