"""Reference corpora for the long-form judge: real music measured the way a continuation is.

A reference is a folder of MIDI files or a prepared data directory (its tokens decoded with its
own tokenizer; `PATH@SOURCE` keeps the pieces of one source, e.g. `data/piano@pop909`). Each
real piece is treated as if its first `primer_seconds` (12 s) were a primer: the music after
them is tiled into 30-s segments (`stats.piece_segments`), register drift measured from those
first seconds. The statistics of every segment are cached as a small JSON file (keyed by the
corpus's file list, sizes and times, and the measuring parameters) under the project's cache
folder, written atomically, so a corpus is read once.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from midi_data.corpus import cache_dir, find_files
from midi_data.dataset import SPLITS, TokenData, open_data
from midi_data.errors import DataError, MidiReadError
from midi_data.files import atomic_write_json
from midi_data.midi_io import read_score
from midi_data.notes import Notes, notes_from_pretty, notes_from_score
from midi_data.parallel import default_workers, parallel_map

from .stats import SEGMENT_SECONDS, STATS, STATS_VERSION, mean_pitch, piece_segments

REFERENCE_PRIMER_SECONDS = 12.0


class JudgeError(ValueError):
    """A bad reference, file or option of the long-form judge (one line, names the culprit)."""


@dataclass
class Corpus:
    """Per-segment statistics of a reference corpus (what the cache file holds).

    Attributes:
        name: the reference's name (e.g. "classical").
        path: what it was read from (folder, or data directory with an optional @source).
        pieces: (P,) piece names.
        piece: (S,) int, the piece of each segment; segments of a piece are in time order.
        values: (S, 6) float64 statistics in `STATS` order (NaN: not measured).
        skipped: [(file, reason)] of pieces that could not be read.
        seconds_taken: how long measuring took (the first time).
        cached: read back from the cache file.
    """

    name: str
    path: str
    pieces: list[str]
    piece: np.ndarray
    values: np.ndarray
    skipped: list[tuple[str, str]]
    seconds_taken: float
    cached: bool = False


def parse_reference(spec: str) -> tuple[str, str]:
    """'classical=DIR' → ('classical', 'DIR'); 'DIR' → (DIR's folder name, 'DIR')."""
    name, sep, path = spec.partition("=")
    if not sep:
        name, path = Path(spec.split("@")[0]).name or spec, spec
    if not path or not re.fullmatch(r"[\w.-]+", name):
        raise JudgeError(f"--reference {spec!r}: expected NAME=PATH (NAME of letters, digits, ._-)")
    return name, path


# ----- reading one real piece (runs in worker processes) --------------------------------------
_DATA: TokenData | None = None
_PIECES: dict[str, list[np.ndarray]] = {}  # split → its pieces, views of the memory map


def _open_worker_data(directory: str | None) -> None:
    global _DATA
    _DATA = open_data(directory) if directory else None
    _PIECES.clear()


def _measure(notes: Notes, primer_seconds: float, segment: float) -> np.ndarray:
    if len(notes) == 0:
        return np.zeros((0, len(STATS)))
    primer_pitch = mean_pitch(notes, 0.0, primer_seconds)
    return piece_segments(notes, primer_seconds, float(notes.end.max()), primer_pitch, segment)


def _midi_job(job: tuple[str, float, float]) -> np.ndarray | str:
    path, primer_seconds, segment = job
    try:
        return _measure(notes_from_score(read_score(path)), primer_seconds, segment)
    except MidiReadError as e:
        return str(e)


def _piece_job(job: tuple[str, int, float, float]) -> np.ndarray:
    split, index, primer_seconds, segment = job
    if split not in _PIECES:
        _PIECES[split] = _DATA.pieces(split)
    ids = np.asarray(_PIECES[split][index], dtype=np.int64)
    notes = notes_from_pretty(_DATA.tokenizer.decode(ids), sustain=False)
    return _measure(notes, primer_seconds, segment)


# ----- the corpus ----------------------------------------------------------------------------
def _data_pieces(directory: Path, source: str | None) -> list[tuple[str, int, str]]:
    """The (split, index, name) of every piece of a data directory (of one source)."""
    data = open_data(directory)
    entries = [f for f in data.manifest.get("files", []) if f.get("split") in SPLITS]
    if source is not None:
        entries = [f for f in entries if source in str(f.get("source", ""))]
        if not entries:
            known = sorted({str(f.get("source")) for f in data.manifest.get("files", [])})
            raise JudgeError(f"{directory}: no pieces from a source matching {source!r} ({known})")
    if entries:
        return [(f["split"], int(f["piece"]), f["path"]) for f in entries]
    # a manifest without a file list: every piece of every split
    return [(s, i, f"{s}/{i}") for s in SPLITS for i in range(data.num_pieces(s))]


def _fingerprint(paths: list[Path], extra: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(extra, sort_keys=True).encode())
    for p in paths:
        info = p.stat()
        digest.update(f"{p}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


def _plan(path: str, primer_seconds: float, segment: float):
    """(fingerprint, worker data dir, jobs, names) for a reference path."""
    base, _, source = path.partition("@")
    root = Path(base)
    params = {"stats": STATS_VERSION, "primer": primer_seconds, "segment": segment}
    params["source"] = source
    if (root / "manifest.json").is_file():
        pieces = _data_pieces(root, source or None)
        arrays = [root / "manifest.json"] + [root / f"{s}.tokens.npy" for s in SPLITS]
        jobs = [(s, i, primer_seconds, segment) for s, i, _ in pieces]
        key = _fingerprint([p for p in arrays if p.exists()], params)
        return key, str(root), jobs, [name for _, _, name in pieces]
    if not root.exists():
        raise JudgeError(f"reference {base} does not exist")
    if source:
        raise JudgeError(f"reference {path}: @SOURCE needs a prepared data directory")
    try:
        files = [f.path for f in find_files([base])]
    except DataError as e:
        raise JudgeError(f"reference {base}: {e}") from None
    if not files:
        raise JudgeError(f"reference {base}: no MIDI files and no manifest.json")
    key = _fingerprint(files, params)
    return key, None, [(str(f), primer_seconds, segment) for f in files], [str(f) for f in files]


def load_corpus(
    spec: str,
    primer_seconds: float = REFERENCE_PRIMER_SECONDS,
    segment: float = SEGMENT_SECONDS,
    workers: int | None = None,
    cache: bool = True,
) -> Corpus:
    """Measure (or read from the cache) every segment of a reference corpus.

    Args:
        spec: "NAME=PATH" or "PATH"; PATH a MIDI folder or a data directory[@SOURCE].
        primer_seconds: each real piece's pretend primer, seconds.
        segment: segment length, seconds.
        workers: processes reading pieces (default: CPUs available).
        cache: read and write the cache file.

    Raises:
        JudgeError: a missing or empty reference, or one with no whole segment at all.
    """
    name, path = parse_reference(spec)
    try:
        key, data_dir, jobs, names = _plan(path, primer_seconds, segment)
    except DataError as e:
        raise JudgeError(f"reference {path}: {e}") from None
    cached = cache_dir() / "judge" / f"{key}.json"
    if cache and cached.is_file():
        try:
            return _from_json(name, json.loads(cached.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is recomputed and replaced
    started = time.time()
    worker = _piece_job if data_dir else _midi_job
    workers = workers or default_workers()
    results = parallel_map(worker, jobs, workers, _open_worker_data, (data_dir,))
    piece, rows, skipped = [], [], []
    for i, (label, result) in enumerate(zip(names, results)):
        if isinstance(result, str):
            skipped.append((label, result))
            continue
        piece += [i] * len(result)
        rows.append(result)
    values = np.concatenate(rows) if rows else np.zeros((0, len(STATS)))
    if len(values) == 0:
        raise JudgeError(f"reference {path}: no piece lasts {primer_seconds + segment:g} s")
    corpus = Corpus(name, path, names, np.array(piece), values, skipped, time.time() - started)
    if cache:
        atomic_write_json(cached, _to_json(corpus))
    return corpus


def _to_json(c: Corpus) -> dict[str, Any]:
    return {
        "path": c.path,
        "stats": list(STATS),
        "pieces": c.pieces,
        "piece": c.piece.tolist(),
        "values": {
            s: [None if np.isnan(v) else round(float(v), 4) for v in c.values[:, k]]
            for k, s in enumerate(STATS)
        },
        "skipped": [list(x) for x in c.skipped],
        "seconds_taken": round(c.seconds_taken, 1),
    }


def _from_json(name: str, obj: dict[str, Any]) -> Corpus:
    if obj["stats"] != list(STATS):
        raise KeyError("stats")
    columns = [np.array(obj["values"][s], dtype=np.float64) for s in STATS]  # None → NaN
    values = np.stack(columns, axis=1).reshape(-1, len(STATS))  # (S, 6)
    skipped = [(a, b) for a, b in obj["skipped"]]
    piece = np.array(obj["piece"], dtype=np.int64)
    return Corpus(
        name, obj["path"], obj["pieces"], piece, values, skipped, obj["seconds_taken"], True
    )
