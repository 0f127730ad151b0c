"""The studio's one door into the generation library.

Every call the studio makes into `music_transformer.generation` is in this module, and it is
the one loop every command uses: the parent take's MIDI file is read with
`read_primer(..., file_time=True)` as `continue` reads its primer, the candidates are one
batch of `generation.run` (candidate i with seed + i, as `continue --num-samples` numbers
them), and each take is written by `write_piece` — the same splice of the primer file's own
events and a continuation track. So `command_line` can print the `continue` invocation that
makes the same file, token for token.

Cancelling: `run` asks the job's `should_stop()` after every decoding step and ends the batch
there; `sample_takes` then raises `Cancelled`.
"""

from __future__ import annotations

import shlex
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..catalog import bundled_info, model_info
from ..checkpoint import LoadedModel, bundled_models
from ..generation.loading import DEFAULT_MODEL, load_model
from ..generation.primers import Primer, read_primer
from ..generation.runner import Job, Take, plan, run
from ..generation.sampler import Generated
from ..generation.settings import SEED_LIMIT, SamplingSettings
from ..generation.sidecars import write_piece

__all__ = ["SEED_LIMIT", "Cancelled", "Models", "SamplingSettings", "Take"]


class Cancelled(Exception):
    """A job's candidates were not all made: its `should_stop()` said so mid-batch."""


class Models:
    """The models the studio offers (every bundled one, plus local directories named at
    start) and the loaded ones, kept in memory once loaded (the worker is single-threaded,
    the lock only guards against a page asking for the list while a model loads)."""

    def __init__(self, extra: dict[str, Path] | None = None, default: str | None = None):
        self.paths: dict[str, Path | str] = {name: name for name in bundled_models()}
        self.paths.update(extra or {})
        self.default = default or (DEFAULT_MODEL if DEFAULT_MODEL in self.paths else None)
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def check(self, name: Any) -> str:
        """`name` if the studio offers it, else ValueError with the names it offers."""
        if not isinstance(name, str) or name not in self.paths:
            raise ValueError(f"unknown model {name!r} (one of {', '.join(self.paths)})")
        return name

    def load(self, name: str) -> LoadedModel:
        with self._lock:
            if name not in self._loaded:
                self._loaded[self.check(name)] = load_model(self.paths[name], "cpu")
            return self._loaded[name]

    def catalog(self) -> list[dict[str, Any]]:
        """Name, kind, what it suits and its sampling defaults, for the page's model list."""
        infos = [i for i in bundled_info() if "error" not in i]
        infos += [model_info(path) | {"name": n} for n, path in self.paths.items()
                  if n not in bundled_models()]  # fmt: skip
        out = []
        for info in infos:
            config, training = info["config"], info["training"]
            out.append({
                "name": info["name"],
                "arch": config.get("arch"),
                "position": config.get("position"),
                "parameters": info["parameters"],
                "tokenizer": info["tokenizer"].get("preset"),
                "suits": info.get("suits"),
                "temperature": info["sampling"].get("temperature"),
                "max_note_seconds": training.get("max_note_seconds"),
                "default": info["name"] == self.default,
            })  # fmt: skip
        return out


def read_parent(loaded: LoadedModel, midi: Path, primer_seconds: float | None) -> Primer:
    """The parent take's file as `continue` reads its primer (PrimerError: one line)."""
    return read_primer(loaded.tokenizer, midi, primer_seconds, file_time=True)


def sample_takes(
    loaded: LoadedModel,
    primer: Primer,
    settings: SamplingSettings,
    count: int,
    should_stop: Callable[[], bool],
    report: Callable[[float], None],
) -> list[Take]:
    """`count` candidates from one batch of the generation loop; candidate i uses seed + i.

    Args:
        settings: with a concrete seed; what they leave open is taken from the model.
        should_stop: polled after every decoding step; True ends the batch (Cancelled).
        report: report(fraction) of the music asked for made so far, 0..1.
    """
    settings = plan(loaded, settings)
    wanted = max(1e-9, count * (settings.seconds or 0.0))
    made = 0.0

    def progress(tokens: int, seconds: float) -> None:
        nonlocal made
        made += seconds
        report(min(1.0, made / wanted) if settings.seconds else 0.0)

    jobs = [Job(primer)] * count
    takes = list(run(loaded, jobs, settings, count, progress, should_stop=should_stop))
    if len(takes) < count:
        raise Cancelled
    return takes


def write_take(
    loaded: LoadedModel, primer: Primer, take: Take, out: Path, model_name: str
) -> dict[str, Any]:
    """Write the take's MIDI (parent file verbatim + continuation track) and its sidecar
    exactly as `continue` writes them; returns the sidecar's record."""
    take = replace(take, job=Job(primer, out))
    # a take's name is new: a file there is a crash's leftover
    return write_piece(loaded, take, model_name=model_name, force=True).record


def rewrite_take(loaded: LoadedModel, parent: Path, node: dict[str, Any], out: Path) -> None:
    """Write a take's MIDI again from its parent's file and the tokens it added (a piece
    folder whose take files were deleted loses nothing but time)."""
    settings = SamplingSettings.from_record(node["settings"])
    primer = read_parent(loaded, parent, settings.primer_seconds)
    result = Generated(
        node["tokens"], node["stopped_by"], node["seconds"], node["window"], node["precision"]
    )
    take = Take(0, Job(primer, out), settings, result, node.get("batch", 1))
    write_take(loaded, primer, take, out, node["model"])


def command_line(
    model: str, model_path: Path | str, parent: Path, out: str, node: dict[str, Any]
) -> str:
    """The `music-transformer continue` line that writes this take again, token for token:
    its parent's file as primer, its own seed, every setting that differs from the
    command's defaults, and the precision it ran at pinned (auto may choose otherwise
    for another batch size), on the CPU as the studio runs."""
    s = node["settings"]
    name = model if model in bundled_models() else str(model_path)
    args = ["music-transformer", "continue", str(parent), "-o", out, "--model", name]
    if s.get("primer_seconds") is not None:
        args += ["--primer-seconds", f"{s['primer_seconds']:g}"]
    args += ["--seconds", f"{s['seconds']:g}", "--seed", str(s["seed"])]
    args += ["--temperature", f"{s['temperature']:g}"]
    if s.get("top_k") is not None:
        args += ["--top-k", str(s["top_k"])]
    if s.get("top_p") is not None:
        args += ["--top-p", f"{s['top_p']:g}"]
    args += ["--guard" if isinstance(s.get("guard"), dict) else "--no-guard"]
    if s.get("sink_tokens") is not None:  # 0 (off) too: the card may say otherwise
        args += ["--sink-tokens", str(s["sink_tokens"])]
    args += ["--precision", node["precision"], "--device", "cpu"]  # where the studio runs
    return shlex.join(args)
