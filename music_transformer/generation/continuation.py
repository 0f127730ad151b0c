"""`continue_midi`: continue one MIDI primer and write the result — the library behind
`music-transformer continue`.

Every input is checked before anything is written: a bad option, a missing model, an
unreadable primer or an existing output (without `force`) raises a ValueError subclass with a
one-line message and leaves the disk untouched.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoint import LoadedModel
from .loading import DEFAULT_MODEL, check_window, load_model
from .outputs import check_outputs, numbered_outputs
from .primers import read_primer
from .runner import DEFAULT_BATCH_SIZE, Job, plan, run
from .sampler import ProgressFn
from .settings import SamplingSettings, check_counts
from .sidecars import Output, write_piece


def continue_midi(
    primer: str | Path,
    out: str | Path,
    *,
    model: str | Path | LoadedModel | None = None,
    settings: SamplingSettings | None = None,
    num_samples: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    continuation_only: bool = False,
    sustain_pedal: bool = False,
    force: bool = False,
    device: str | torch.device | None = "auto",
    progress: ProgressFn | None = None,
) -> list[Output]:
    """Continue the MIDI file `primer` and write OUT.mid (or OUT-1.mid … OUT-N.mid).

    Args:
        primer: path of a MIDI file with notes.
        out: output MIDI path; with num_samples > 1, numbered as OUT-i.mid.
        model: bundled name, checkpoint/run directory or LoadedModel (default: the bundled
            Transformer).
        settings: how to sample and how much (default: SamplingSettings()).
        num_samples: continuations to write, ≥ 1 (sample i uses seed + i - 1).
        batch_size: continuations computed together.
        continuation_only: write only the new music, not the primer before it.
        sustain_pedal: write pedalled notes as key lifts + CC64 (`midi_data.pedal`).
        force: overwrite existing outputs.
        device: "auto", "cpu", "cuda", ...
        progress: progress(new_tokens, new_seconds) after every sampler step.

    Returns:
        One Output per sample, in order.
    """
    settings = (settings or SamplingSettings()).with_seed()
    check_counts(num_samples, batch_size)
    outs = numbered_outputs(out, num_samples)
    check_outputs(outs, force, inputs=[Path(primer)])
    loaded = load_model(model, device)
    check_window(loaded, settings)
    settings = plan(loaded, settings)
    piece = read_primer(loaded.tokenizer, primer, settings.primer_seconds, file_time=True)
    takes = run(loaded, [Job(piece, o) for o in outs], settings, batch_size, progress)
    return [
        write_piece(
            loaded,
            take,
            model_name=model or DEFAULT_MODEL,
            continuation_only=continuation_only,
            pedal=sustain_pedal,
            force=force,
        )
        for take in takes
    ]
