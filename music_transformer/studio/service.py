"""What the studio does, without HTTP: check a request, queue generation, keep its takes,
show a take's notes, render and export it. The web layer (`app.py`) only translates.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from pathlib import Path
from typing import Any

from midi_data.midi_io import read_score
from midi_data.notes import notes_from_score
from midi_data.render import RenderError, encode_audio, render_audio

from ..comparison.bars import bar_times
from . import generation as gen
from .generation import SEED_LIMIT, SamplingSettings
from .jobs import Job, JobQueue
from .pieces import ROOT, PieceError, Pieces, lineage

MAX_CANDIDATES = 8
MAX_SECONDS = 600.0  # ten minutes of new music per take: more is a typo, not a wish
MAX_TEMPERATURE = 5.0
MAX_TOP_K = 100_000
WAV_CACHE = 40  # rendered WAVs kept per piece (~8 MB for 45 s); older ones are rendered again
FIELDS = {"node", "model", "seconds", "candidates", "temperature", "top_k", "top_p", "seed",
          "primer_seconds"}  # fmt: skip


def _number(body: dict, name: str, low: float, high: float, whole: bool = False, default=None):
    """body[name] as a number in [low, high] (None/absent: default); PieceError otherwise."""
    value = body.get(name, default)
    if value is None or value == "":
        return default
    kind = int if whole else (int, float)
    ok = isinstance(value, kind) and not isinstance(value, bool)
    if not ok or not (low <= value <= high) or (isinstance(value, float) and math.isnan(value)):
        what = "a whole number" if whole else "a number"
        raise PieceError(f"{name} must be {what} from {low:g} to {high:g}, got {value!r}")
    return value


class Studio:
    """The pieces folder, the models on offer and the generation queue of one server."""

    def __init__(self, pieces_dir: Path, models: gen.Models, orphan_seconds: float = 30.0):
        self.pieces = Pieces(pieces_dir)
        self.models = models
        self.jobs = JobQueue(orphan_seconds)
        self._render_locks: dict[Path, threading.Lock] = {}
        self._locks_lock = threading.Lock()

    # --- generation ------------------------------------------------------------------------

    def settings(self, body: Any, parent: str) -> tuple[str, SamplingSettings, int]:
        """(model, settings, candidates) from a request body; PieceError on anything odd."""
        if not isinstance(body, dict):
            raise PieceError("the request body must be a JSON object")
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            raise PieceError(f"unknown setting {unknown[0]!r} (known: {', '.join(sorted(FIELDS))})")
        try:
            model = self.models.check(body.get("model", self.models.default))
        except ValueError as e:
            raise PieceError(str(e)) from None
        seconds = _number(body, "seconds", 1.0, MAX_SECONDS, default=30.0)
        count = _number(body, "candidates", 1, MAX_CANDIDATES, whole=True, default=4)
        primer_seconds = _number(body, "primer_seconds", 0.5, 4 * 3600.0)
        if parent != ROOT:
            primer_seconds = None  # a take is continued whole, as `continue TAKE.mid` does
        try:
            settings = SamplingSettings(
                temperature=_number(body, "temperature", 0.0, MAX_TEMPERATURE),
                top_k=_number(body, "top_k", 1, MAX_TOP_K, whole=True),
                top_p=_number(body, "top_p", 1e-6, 1.0),
                seed=_number(body, "seed", 0, SEED_LIMIT - 1 - MAX_CANDIDATES, whole=True),
                seconds=float(seconds),
                primer_seconds=primer_seconds,
            ).with_seed()
        except ValueError as e:
            raise PieceError(str(e)) from None
        return model, settings, count

    def submit(self, piece_id: str, body: Any) -> Job:
        """Queue `candidates` continuations of a take (body: the settings, see FIELDS)."""
        piece = self.pieces.load(piece_id)
        parent = body.get("node", piece["current"]) if isinstance(body, dict) else ROOT
        self.pieces.node(piece, parent)
        model, settings, count = self.settings(body, parent)
        request = {"node": parent, "model": model, "candidates": count, **settings.record()}

        def run(job: Job) -> None:
            job.takes = self.make_takes(job, piece_id, parent, [(model, settings, count)])

        return self.jobs.submit("candidates", piece_id, request, run)

    def make_takes(self, job: Job, piece_id: str, parent: str, batches, blind=None) -> list[str]:
        """Run each (model, settings, count) batch from `parent` and keep the takes; `blind`
        labels them (one per batch) as hidden takes of a blind trial."""
        parent_file = self.take_file(piece_id, parent)
        made = []
        for b, (model, settings, count) in enumerate(batches):
            loaded = self.models.load(model)
            primer = gen.read_parent(loaded, parent_file, settings.primer_seconds)

            def report(fraction: float, b=b) -> None:
                job.report((b + fraction) / len(batches))

            takes = gen.sample_takes(loaded, primer, settings, count, job.should_stop, report)
            made += [(model, loaded, primer, take) for take in takes]
        ids = self.pieces.reserve(piece_id, len(made))
        nodes = []
        for i, (node_id, (model, loaded, primer, take)) in enumerate(zip(ids, made)):
            gen.write_take(loaded, primer, take, self.pieces.midi_path(piece_id, node_id), model)
            r = take.result
            nodes.append({
                "id": node_id, "parent": parent, "model": model, "tokens": r.tokens,
                "settings": take.settings.record(), "seed": take.settings.seed,
                "cut": round(primer.heard_seconds, 4), "seconds": round(r.seconds, 4),
                "stopped_by": r.stopped_by, "precision": r.precision, "window": r.window,
                "batch": take.batch,
                "job": job.id, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "blind": None if blind is None else blind[i],
            })  # fmt: skip
        self.pieces.keep(piece_id, nodes)  # one atomic write: all the takes or none
        for node in nodes:
            job.emit("take", node=public_node(node))
        return ids

    # --- files -----------------------------------------------------------------------------

    def take_file(self, piece_id: str, node_id: str) -> Path:
        """The node's MIDI file, written again from its parent and tokens if it is missing."""
        path = self.pieces.midi_path(piece_id, node_id)
        if path.is_file():
            return path
        piece = self.pieces.load(piece_id)
        node = self.pieces.node(piece, node_id)
        if node_id == ROOT:
            raise PieceError(f"piece {piece_id!r} lost its primer file", 500)
        parent = self.take_file(piece_id, node["parent"])
        gen.rewrite_take(self.models.load(node["model"]), parent, node, path)
        return path

    def notes(self, piece_id: str, node_id: str) -> dict[str, Any]:
        """What the page draws: notes [start, end, pitch, velocity, part] in the file's
        seconds (part 0 the primer, k the k-th take on the way here), the cuts between
        parts, the downbeats and the length."""
        piece = self.pieces.load(piece_id)
        self.pieces.node(piece, node_id)
        path = self.take_file(piece_id, node_id)
        notes = notes_from_score(read_score(path), sustain=False)
        cuts = [n["cut"] for n in lineage(piece, node_id)]
        rows = [
            [round(float(s), 3), round(float(e), 3), int(p), int(v),
             bisect.bisect_right(cuts, float(s) + 1e-6)]
            for s, e, p, v in zip(notes.start, notes.end, notes.pitch, notes.velocity)
        ]  # fmt: skip
        duration = float(notes.end.max()) if len(notes) else 0.0
        bars = [round(float(t), 3) for t in bar_times(path, duration)]
        return {"node": node_id, "notes": rows, "cuts": cuts, "bars": bars,
                "duration": round(duration, 3)}  # fmt: skip

    def audio(self, piece_id: str, node_id: str, kind: str = "wav") -> Path:
        """The node's audio (primer + every take up to it), rendered with FluidSynth on first
        request: "wav" to listen in the page (FluidSynth alone: about a second; over
        loopback its size costs nothing), "mp3" to export (encoded from that WAV by
        `midi_data.render`, 128 kbit/s — the encoder takes ten times the render, so only
        exports pay it). The newest WAV_CACHE WAVs are kept.

        Raises:
            PieceError (503): FluidSynth, a soundfont or the encoder is missing.
        """
        wav = self.pieces.audio_path(piece_id, node_id, "wav")
        out = wav.with_suffix(f".{kind}")
        with self._locks_lock:
            lock = self._render_locks.setdefault(out, threading.Lock())
        with lock:
            try:
                if not wav.is_file() and not (kind == "mp3" and out.is_file()):
                    render_audio(self.take_file(piece_id, node_id), wav)
                    prune(wav.parent, "*.wav", WAV_CACHE)
                if not out.is_file():
                    encode_audio(wav, out)
            except RenderError as e:
                raise PieceError(f"no audio: {e}", 503) from None
        return out

    def command(self, piece_id: str, node_id: str) -> str:
        """The `music-transformer continue` line that writes this take again."""
        piece = self.pieces.load(piece_id)
        node = self.pieces.node(piece, node_id)
        if node_id == ROOT:
            raise PieceError("the primer is not a take: choose a take to copy its command")
        parent = self.take_file(piece_id, node["parent"]).resolve()
        model = node["model"]
        return gen.command_line(model, self.models.paths[model], parent, f"{node_id}.mid", node)

    def select(self, piece_id: str, node_id: str) -> dict[str, Any]:
        """Make `node_id` the current take (where the next generation starts)."""

        def change(piece: dict[str, Any]) -> None:
            self.pieces.node(piece, node_id)
            piece["current"] = node_id

        return self.pieces.update(piece_id, change)


def prune(folder: Path, pattern: str, keep: int) -> None:
    """Delete all but the `keep` newest files matching `pattern` in `folder`."""
    files = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        old.unlink(missing_ok=True)


def public_node(node: dict[str, Any], hide: bool = False) -> dict[str, Any]:
    """A node for the API: its tokens counted, not listed; a blind take's model and
    settings hidden until its trial is revealed."""
    out = {k: v for k, v in node.items() if k != "tokens"}
    if "tokens" in node:
        out["tokens"] = len(node["tokens"])
    if hide:
        for key in ("model", "settings", "precision", "window", "seed"):
            out.pop(key, None)
    if "cut" in node:
        out["end"] = round(node["cut"] + node["seconds"], 4)
    return out
