"""From MIDI files to MIDI files: continue a primer, or generate a batch of pieces.

This is the library behind `music-transformer continue` (and, with `batch.generate_pieces`,
`generate`); a Python user calls `continue_midi(...)` directly. Every input is checked before
anything is written: a bad option, a missing model, an unreadable primer or an existing output
(without `force`) raises a ValueError subclass with a one-line message and leaves the disk
untouched. Each output MIDI gets a JSON sidecar (same name, `.json`) recording how it was made.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from midi_data.errors import MidiReadError
from midi_data.files import atomic_write_json

from .checkpoint import (
    CheckpointError,
    LoadedModel,
    bundled_models,
    load_checkpoint,
    package_version,
)
from .filters import SamplingError
from .sampling import (
    PRECISIONS,
    ProgressFn,
    check_sampling,
    default_window,
    generate,
    model_device,
    resolve_precision,
)

DEFAULT_MODEL = "bach-transformer"
DEFAULT_SECONDS = 30.0
# With --seconds only, a token ceiling still stops a model that never advances time;
# expressive piano runs ~33 tokens per second of music (MIDI_NOTES.md), dense passages ~3× that.
MAX_TOKENS_PER_SECOND = 150
MIDI_SUFFIXES = (".mid", ".midi")


class PrimerError(ValueError):
    """A primer that cannot be used (missing, not MIDI, no notes). The message names it."""


class OutputExistsError(ValueError):
    """An output file exists and `force` was not given."""


@dataclass(frozen=True)
class Sampling:
    """How to sample and how much. Checked on construction (SamplingError: a ValueError).

    Attributes:
        temperature: softmax temperature, ≥ 0; 0 is greedy.
        top_k: keep only the k most likely tokens (None: off).
        top_p: nucleus mass in (0, 1] (None: off).
        seed: base seed; sample i uses seed + i. None draws one (recorded in the sidecar).
        seconds: stop after this many seconds of new music (None: no limit in seconds).
        tokens: stop after this many new tokens (None: a ceiling derived from `seconds`).
        primer_seconds: use only the first this-many seconds of each primer (None: all).
        window: context tokens the model attends to (None: the training length).
        precision: "auto" (bf16 where it is faster), "fp32" or "bf16"; sidecars record the
            one used.
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    seconds: float | None = None
    tokens: int | None = None
    primer_seconds: float | None = None
    window: int | None = None
    precision: str = "auto"

    def __post_init__(self) -> None:
        check_sampling(self.temperature, self.top_k, self.top_p)
        if self.seconds is None and self.tokens is None:
            object.__setattr__(self, "seconds", DEFAULT_SECONDS)
        for name in ("seconds", "primer_seconds"):
            value = getattr(self, name)
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if value is not None and not (number and 0 < value < math.inf):
                raise SamplingError(f"{name} must be a number > 0, got {value!r}")
        for name in ("tokens", "window"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise SamplingError(f"{name} must be a whole number, got {value!r}")
        if self.tokens is not None and self.tokens < 1:
            raise SamplingError(f"tokens must be ≥ 1, got {self.tokens}")
        if self.window is not None and self.window < 2:
            raise SamplingError(f"window must be ≥ 2, got {self.window}")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int)
        ):
            raise SamplingError(f"seed must be a whole number, got {self.seed!r}")
        if self.precision not in PRECISIONS:
            raise SamplingError(f"precision must be one of {', '.join(PRECISIONS)}")

    @property
    def max_new_tokens(self) -> int:
        if self.tokens is not None:
            return self.tokens
        return max(64, math.ceil(self.seconds * MAX_TOKENS_PER_SECOND))

    def with_seed(self) -> Sampling:
        """This setting with a concrete seed (drawn now if none was given)."""
        if self.seed is not None:
            return self
        return Sampling(**{**asdict(self), "seed": secrets.randbelow(2**31)})


@dataclass
class Primer:
    """A primer ready for the model: `ids` starts with BOS; `seconds` of music it spans."""

    path: Path | None
    ids: list[int]
    seconds: float


@dataclass
class Output:
    """One written piece: MIDI path, sidecar path and what went into it."""

    midi: Path
    sidecar: Path
    record: dict[str, Any] = field(default_factory=dict)


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' (or None) → CUDA when available, else CPU; anything else as torch reads it."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r} (auto, cpu, cuda)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available here")
    return device


def load_model(
    model: str | Path | LoadedModel | None = None, device: str | torch.device | None = "auto"
) -> LoadedModel:
    """A loaded model from a bundled name or checkpoint/run directory (default: the bundled
    Transformer). Raises CheckpointError (a ValueError) with advice when it is missing."""
    if isinstance(model, LoadedModel):
        return model
    if model is None:
        if DEFAULT_MODEL not in bundled_models():
            raise CheckpointError(
                f"the default model {DEFAULT_MODEL!r} is not installed; train one "
                "(music-transformer prepare music21:bach --out data/bach && music-transformer "
                "train --data data/bach --out runs/bach) and pass --model runs/bach"
            )
        model = DEFAULT_MODEL
    return load_checkpoint(model, pick_device(device))


def read_primer(tokenizer: Any, path: str | Path, primer_seconds: float | None = None) -> Primer:
    """Tokenize a primer MIDI file (optionally only its first `primer_seconds`).

    The whole file goes through the tokenizer's own (lenient) reader; `primer_seconds` then
    cuts the token sequence before the first time step that would pass that many seconds, so
    notes still sounding at the cut stay open and the model decides when they end.

    Raises:
        PrimerError: the file is missing, is not MIDI, or holds no notes (in that span).
    """
    path = Path(path)
    if not path.exists():
        raise PrimerError(f"primer {path} does not exist")
    if path.is_dir():
        raise PrimerError(f"primer {path} is a directory, not a MIDI file")
    try:
        events = list(tokenizer.encode(path))
    except MidiReadError as e:
        raise PrimerError(_name_file(str(e), path)) from None
    except Exception as e:  # any reader failure on an untrusted file is the file's fault
        reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise PrimerError(f"{path}: cannot read ({type(e).__name__}: {reason})") from None
    if primer_seconds is not None:
        events = crop_tokens(events, tokenizer.token_seconds, primer_seconds)
    if not events:
        span = f" in its first {primer_seconds:g} s" if primer_seconds else ""
        raise PrimerError(f"{path}: no notes to continue{span}")
    return Primer(path, [tokenizer.bos_id, *events], float(tokenizer.seconds(events)))


def crop_tokens(ids: Sequence[int], token_seconds: Any, seconds: float) -> list[int]:
    """The longest prefix of `ids` spanning at most `seconds` of music.

    Args:
        ids: event token ids.
        token_seconds: (V,) seconds each id advances.
        seconds: the span to keep, > 0.
    """
    elapsed = np.cumsum(
        np.asarray(token_seconds, dtype=np.float64)[np.asarray(ids, dtype=np.int64)]
    )
    over = np.nonzero(elapsed > seconds + 1e-9)[0]
    return list(ids[: int(over[0])] if len(over) else ids)


def _name_file(message: str, path: Path) -> str:
    return message if str(path) in message else f"{path}: {message}"


def numbered_outputs(out: str | Path, num_samples: int) -> list[Path]:
    """OUT.mid for one sample; OUT-1.mid … OUT-N.mid for several."""
    out = Path(out)
    if num_samples == 1:
        return [out]
    return [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(1, num_samples + 1)]


def sidecar_for(midi: Path) -> Path:
    return midi.with_suffix(".json")


def check_outputs(paths: Sequence[Path], force: bool) -> None:
    """Raise OutputExistsError naming the first existing output (MIDI or sidecar)."""
    for path in paths:
        for p in (path, sidecar_for(path)):
            if p.exists() and not force:
                raise OutputExistsError(f"{p} exists (pass --force to overwrite)")
            if p.is_dir():
                raise OutputExistsError(f"{p} is a directory")


def model_record(loaded: LoadedModel, name: Any) -> dict[str, Any]:
    config = loaded.config
    record = {"name": str(name), "directory": str(loaded.directory), "arch": config.arch}
    if config.arch == "transformer":
        record["position"] = config.position
    record["training_seq_len"] = loaded.meta.get("training", {}).get("seq_len")
    return record


def context_window(loaded: LoadedModel, sampling: Sampling) -> int | None:
    """The sliding window: the option, else the training length, else the model's span."""
    if loaded.config.arch != "transformer":
        return None
    if sampling.window is not None:
        return sampling.window
    seq_len = loaded.meta.get("training", {}).get("seq_len")
    return int(seq_len) if seq_len else default_window(loaded.model)


def sample_tokens(
    loaded: LoadedModel,
    primers: Sequence[list[int]],
    sampling: Sampling,
    seed: int,
    progress: ProgressFn | None = None,
) -> list[list[int]]:
    """Run the sampler for one batch with this package's tokenizer conventions."""
    tok = loaded.tokenizer
    return generate(
        loaded.model,
        primers,
        max_new_tokens=sampling.max_new_tokens,
        temperature=sampling.temperature,
        top_k=sampling.top_k,
        top_p=sampling.top_p,
        seed=seed,
        max_seconds=sampling.seconds,
        token_seconds=tok.token_seconds,
        eos_id=tok.eos_id,
        pad_id=tok.pad_id,
        suppress_ids=[tok.pad_id, tok.bos_id],
        window=context_window(loaded, sampling),
        precision=sampling.precision,
        progress=progress,
    )


def precision_used(loaded: LoadedModel, sampling: Sampling, batch: int) -> str:
    """The precision `generate` runs a batch of `batch` rows in ("fp32" or "bf16")."""
    dtype = resolve_precision(sampling.precision, model_device(loaded.model), batch, loaded.model)
    return "fp32" if dtype is None else "bf16"


def stop_reason(new: list[int], seconds: float, sampling: Sampling) -> str:
    if len(new) >= sampling.max_new_tokens:
        return "tokens"
    if sampling.seconds is not None and seconds >= sampling.seconds - 1e-9:
        return "seconds"
    return "eos"


def write_piece(
    loaded: LoadedModel,
    out: Path,
    primer: Primer | None,
    new: list[int],
    *,
    sampling: Sampling,
    seed: int,
    model_name: Any,
    batch: int = 1,
    continuation_only: bool = False,
) -> Output:
    """Write the MIDI (primer + continuation, or continuation only) and its sidecar."""
    tok = loaded.tokenizer
    primer_events = primer.ids[1:] if primer is not None else []
    ids = new if continuation_only else primer_events + new
    tok.write_midi(ids, out)
    new_seconds = float(tok.seconds(new))
    record = {
        "output": out.name,
        "model": model_record(loaded, model_name),
        "primer": None
        if primer is None
        else {
            "path": str(primer.path) if primer.path else None,
            "tokens": len(primer_events),
            "seconds": round(primer.seconds, 3),
            "primer_seconds": sampling.primer_seconds,
            "included": not continuation_only,
        },
        "continuation": {
            "tokens": len(new),
            "seconds": round(new_seconds, 3),
            "stopped_by": stop_reason(new, new_seconds, sampling),
        },
        "sampling": {
            **asdict(sampling),
            "seed": seed,
            "max_new_tokens": sampling.max_new_tokens,
            "window": context_window(loaded, sampling),
            "precision_used": precision_used(loaded, sampling, batch),
            "batch": batch,
        },
        "version": package_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    sidecar = sidecar_for(out)
    atomic_write_json(sidecar, record)
    return Output(out, sidecar, record)


def continue_midi(
    primer: str | Path,
    out: str | Path,
    *,
    model: str | Path | LoadedModel | None = None,
    sampling: Sampling | None = None,
    num_samples: int = 1,
    batch_size: int = 16,
    continuation_only: bool = False,
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
        sampling: how to sample and how much (default: Sampling()).
        num_samples: continuations to write, ≥ 1 (sample i uses seed + i - 1).
        batch_size: continuations computed together.
        continuation_only: write only the new music, not the primer before it.
        force: overwrite existing outputs.
        device: "auto", "cpu", "cuda", ...
        progress: progress(new_tokens, new_seconds) after every sampler step.

    Returns:
        One Output per sample, in order.
    """
    sampling = (sampling or Sampling()).with_seed()
    check_counts(num_samples, batch_size)
    outs = numbered_outputs(out, num_samples)
    check_outputs(outs, force)
    loaded = load_model(model, device)
    piece = read_primer(loaded.tokenizer, primer, sampling.primer_seconds)
    results: list[Output] = []
    for start in range(0, num_samples, batch_size):
        rows = min(batch_size, num_samples - start)
        seed = sampling.seed + start
        new = sample_tokens(loaded, [piece.ids] * rows, sampling, seed, progress)
        for i, tokens in enumerate(new):
            results.append(
                write_piece(
                    loaded,
                    outs[start + i],
                    piece,
                    tokens,
                    sampling=sampling,
                    seed=seed + i,
                    model_name=model or DEFAULT_MODEL,
                    batch=rows,
                    continuation_only=continuation_only,
                )
            )
    return results


def check_counts(num_samples: int, batch_size: int) -> None:
    for name, value in (("num_samples", num_samples), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SamplingError(f"{name} must be a whole number ≥ 1, got {value!r}")
