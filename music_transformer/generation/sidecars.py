"""The one writer of generated pieces: the MIDI file (spliced onto the primer's own file, or
decoded) and the JSON sidecar that says how it was made; and the records every caller shares.

The sidecar records what the sampler reports (`Generated`: stop reason, window, precision),
never a recomputation of it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from midi_data.files import TargetExistsError, atomic_write, atomic_write_json
from midi_data.notes import Notes, notes_from_pretty, notes_to_midi
from midi_data.pedal import with_pedal
from midi_data.splice import splice
from midi_data.tokenizer import Tokenizer

from ..checkpoint import LoadedModel, package_version
from .outputs import sidecar_for
from .primers import Primer
from .runner import Take
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


def stamp() -> dict[str, str]:
    """What every record ends or starts with: the package version and when it was made."""
    return {"version": package_version(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def result_record(result: Generated) -> dict[str, Any]:
    """What the sampler made for one piece: tokens, seconds of music, why it stopped."""
    return {
        "tokens": len(result.tokens),
        "seconds": round(result.seconds, 3),
        "stopped_by": result.stopped_by,
    }


def on_file_clock(primer: Primer | None) -> bool:
    """Whether the model's time differs from the primer file's (a beat-time tokenizer)."""
    return primer is not None and primer.clock is not None and primer.clock.beats


def decoded_notes(tok: Tokenizer, primer: Primer | None, new: list[int]) -> Notes:
    """The notes of primer + `new` as the tokenizer decodes them, in the primer file's
    seconds: a beat-time model's (decoded at 120 BPM) are put on the file's tempo map."""
    notes = notes_from_pretty(tok.decode((primer.ids[1:] if primer else []) + new))
    if not on_file_clock(primer):
        return notes
    clock = primer.clock
    return Notes(clock.file_times(notes.start), clock.file_times(notes.end), notes.pitch,
                 notes.velocity)  # fmt: skip


def write_midi(
    tok: Tokenizer,
    out: Path,
    primer: Primer | None,
    new: list[int],
    *,
    keep_file: bool = True,
    continuation_only: bool = False,
    exclusive: bool = False,
    pedal: bool = False,
) -> dict[str, Any]:
    """Write one piece's MIDI file; return how it was laid out (for the sidecar).

    With `keep_file`, the primer's own file spliced with the continuation
    (`midi_data.splice`); else, or without a primer file (or one mido cannot parse event by
    event), the decoded tokens alone: at 120 BPM, or — without `keep_file`, for a beat-time
    model — on the primer file's tempo map as one piano track (`decoded_notes`), so every
    clip of a comparison plays at the file's tempo."""
    ids = new if continuation_only else (primer.ids[1:] if primer else []) + new
    reason = "no primer file"
    if keep_file and primer is not None and primer.path is not None:
        try:
            done = splice(
                tok, primer.path, primer.ids[1:], new, out, continuation_only, exclusive, pedal
            )
            return {"layout": "primer file verbatim + continuation track", **asdict(done)}
        except TargetExistsError:
            raise
        except (OSError, ValueError, EOFError, KeyError, IndexError) as e:  # what mido raises
            reason = f"the primer file could not be kept as it is ({type(e).__name__}: {e})"
    if not keep_file and on_file_clock(primer) and not continuation_only:
        pm = notes_to_midi(decoded_notes(tok, primer, new))
        atomic_write(out, lambda p: pm.write(str(p)), exclusive)
        return {"layout": "decoded tokens, one track on the primer file's tempo map"}
    if pedal:
        pm = with_pedal(tok.decode(ids))
        atomic_write(out, lambda p: pm.write(str(p)), exclusive)
    else:
        tok.write_midi(ids, out, exclusive=exclusive)
    return {"layout": f"decoded tokens, one track at 120 BPM ({reason})"}


def write_piece(
    loaded: LoadedModel,
    take: Take,
    *,
    model_name: Any,
    continuation_only: bool = False,
    force: bool = False,
    pedal: bool = False,
) -> Output:
    """Write a take's MIDI (primer + continuation, or continuation only) to `take.job.out`
    and its sidecar beside it, recording `take.settings` (this piece's, with its own seed).

    Without `force` both files are created exclusively: if another process made either
    meanwhile, TargetExistsError."""
    out, primer, result = take.job.out, take.job.primer, take.result
    written = write_midi(
        loaded.tokenizer, out, primer, result.tokens,
        continuation_only=continuation_only, exclusive=not force, pedal=pedal,
    )  # fmt: skip
    record = {
        "output": out.name,
        "model": model_record(loaded, model_name),
        "primer": None
        if primer is None
        else {
            "path": str(primer.path) if primer.path else None,
            "tokens": len(primer.ids) - 1,
            "seconds": round(primer.heard_seconds, 3),
            "primer_seconds": take.settings.primer_seconds,
            "included": not continuation_only,
        },
        "midi": written,
        "continuation": result_record(result),
        "sampling": {
            **settings_record(take.settings, take.batch),
            "window": result.window,
            "precision_used": result.precision,
        },
        **({"guard": result.guard} if result.guard is not None else {}),
        **stamp(),
    }
    sidecar = sidecar_for(out)
    atomic_write_json(sidecar, record, exclusive=not force)
    return Output(out, sidecar, record)
