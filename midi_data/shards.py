"""`prepare`: tokenize MIDI sources in parallel into a data directory.

A data directory holds
    tokenizer.json                 the tokenizer (load_tokenizer reads it)
    manifest.json                  every input file: split, token count, sha256 — or why skipped
    <split>.tokens.npy             (N,) int16/int32: all pieces of the split, each [BOS] … [EOS]
    <split>.offsets.npy            (P + 1,) int64: piece i is tokens[offsets[i]:offsets[i + 1]]
for split in train, valid, test. Token arrays are memory-mapped on load (`open_data`).

Splits are by file and deterministic, and each source is split on its own: its files are
ordered by the SHA-256 of their path relative to the source and cut at the requested fractions
(every split asked for gets at least one file when there are enough). So a rerun on the same
sources gives the same directory, and adding a source (another genre, say) leaves the splits
of the others exactly as they were. The manifest counts pieces and tokens per source and split.
A source with its own split — a four-voice grid `.json` file such as the JSB Chorales
benchmark's `Jsb16thSeparated.json` — keeps it: its pieces go to their official split, in
file order, are never dropped as duplicates, and the manifest lists the source under
`official_split_sources`.
The directory is built in a temporary folder beside `out` and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .corpus import SourceFile, find_files
from .errors import DataError, MidiReadError
from .files import atomic_write_json, replace_dir, temp_dir_beside
from .jsb import grid_to_midi, read_grid_json
from .midi_io import read_bytes
from .parallel import default_workers, parallel_map
from .presets import make_tokenizer
from .tokenizer import Tokenizer, package_version

SPLITS = ("train", "valid", "test")
MANIFEST = "manifest.json"
TOKENIZER = "tokenizer.json"
DATA_FORMAT = "music-transformer/data"
DATA_FORMAT_VERSION = 1


@dataclass
class PrepareResult:
    """What `prepare` did. Counts per split; `skipped` holds (file, reason) pairs."""

    directory: Path
    pieces: dict[str, int]
    tokens: dict[str, int]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def num_files(self) -> int:
        return sum(self.pieces.values()) + len(self.skipped)


def parse_split(text: str | Sequence[float]) -> tuple[float, float, float]:
    """'0.9,0.05,0.05' → (0.9, 0.05, 0.05): three fractions ≥ 0 summing to 1, train > 0."""
    try:
        parts = [float(x) for x in (text.split(",") if isinstance(text, str) else text)]
    except ValueError:
        raise DataError(f"--split {text!r}: expected three numbers like 0.9,0.05,0.05") from None
    finite = all(math.isfinite(x) for x in parts)
    if (
        not finite
        or len(parts) != 3
        or min(parts) < 0
        or abs(sum(parts) - 1) > 1e-6
        or not parts[0]
    ):
        raise DataError(f"--split {text!r}: need train,valid,test ≥ 0 summing to 1, train > 0")
    return parts[0], parts[1], parts[2]


def split_counts(n: int, fractions: Sequence[float]) -> list[int]:
    """Files per split: largest remainders of n·fraction; a split with a fraction > 0 gets at
    least one file when n allows (taken from the largest split)."""
    raw = [n * f for f in fractions]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])[: n - sum(counts)]:
        counts[i] += 1
    for i, f in enumerate(fractions):
        if f > 0 and counts[i] == 0 and max(counts) > 1:
            counts[counts.index(max(counts))] -= 1
            counts[i] = 1
    return counts


def path_hash(relative: str) -> str:
    return hashlib.sha256(relative.encode("utf-8")).hexdigest()


# ----- worker side ------------------------------------------------------------------------
Result = tuple[np.ndarray | None, str, str | None]  # ids, sha256, reason skipped
_worker_tokenizer: Tokenizer | None = None


def _init_worker(preset: str, options: dict[str, Any]) -> None:
    global _worker_tokenizer
    _worker_tokenizer = make_tokenizer(preset, **options)


def _tokenize(path: str) -> Result:
    """(ids or None, sha256 of the file, reason it was skipped or None)."""
    try:
        data = read_bytes(path)
    except MidiReadError as e:
        return None, "", _reason(str(e), path)
    digest = hashlib.sha256(data).hexdigest()
    assert _worker_tokenizer is not None
    try:
        ids = _worker_tokenizer.encode(Path(path))
    except MidiReadError as e:
        return None, digest, _reason(str(e), path)
    except Exception as e:  # a library bug on one odd file must not stop the run
        return None, digest, f"tokenizer failed ({type(e).__name__}: {e})"
    return np.asarray(ids, dtype=np.int32), digest, None


def _tokenize_grids(tokenizer: Tokenizer, files: list[SourceFile]) -> list[Result]:
    """Results for pieces of grid JSON files (in this process: they are already parsed and
    fast to encode). Presets without `encode_grid` tokenize the grid's MIDI rendering."""
    loaded: dict[Path, dict[str, list[np.ndarray]]] = {}
    results: list[Result] = []
    for f in files:
        if f.path not in loaded:
            loaded[f.path] = read_grid_json(f.path)
        grid = loaded[f.path][str(f.split)][int(f.piece or 0)]
        digest = hashlib.sha256(np.ascontiguousarray(grid, dtype=np.int64).tobytes()).hexdigest()
        try:
            encode_grid = getattr(tokenizer, "encode_grid", None)
            ids = encode_grid(grid) if encode_grid else tokenizer.encode(grid_to_midi(grid))
        except Exception as e:  # one bad piece must not stop the run
            results.append((None, digest, f"tokenizer failed ({type(e).__name__}: {e})"))
            continue
        results.append((np.asarray(ids, dtype=np.int32), digest, None))
    return results


def _reason(message: str, path: str) -> str:
    """The error message without the leading file name (the manifest names the file)."""
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


# ----- main side --------------------------------------------------------------------------
def prepare(
    sources: Sequence[str],
    out: str | Path,
    preset: str = "performance",
    workers: int | None = None,
    split: str | Sequence[float] = (0.9, 0.05, 0.05),
    progress: bool = True,
    tokenizer: Tokenizer | None = None,
    force: bool = False,
) -> PrepareResult:
    """Tokenize every file of `sources` into the data directory `out`.

    Args:
        sources: folders, files, or `music21:<corpus>` names.
        out: the data directory. An existing one (a folder whose manifest.json carries this
            program's data format marker) is replaced only with `force`; any other non-empty
            folder is refused, `force` or not.
        preset: tokenizer preset.
        workers: processes (default: the CPUs available).
        split: train, valid, test fractions.
        progress: show progress bars.
        tokenizer: use this tokenizer (e.g. a model's, to fine-tune it) instead of a fresh
            one of `preset`; its ids are kept exactly.
        force: replace an existing data directory at `out`.
    Raises:
        DataError: missing source, bad split, an `out` that is not safe to replace, or no
            usable piece at all (then nothing is written and an old `out` stays as it was).
    """
    began = time.perf_counter()
    fractions = parse_split(split)
    out = Path(out)
    check_out_dir(out, force)
    tokenizer = tokenizer or make_tokenizer(preset)
    workers = workers or default_workers()
    files = find_files(sources, workers=workers, progress=progress)

    results: list[Result] = [(None, "", None)] * len(files)
    grids = [i for i, f in enumerate(files) if f.error is None and f.piece is not None]
    for i, result in zip(grids, _tokenize_grids(tokenizer, [files[i] for i in grids])):
        results[i] = result
    readable = [i for i, f in enumerate(files) if f.error is None and f.piece is None]
    paths = [str(files[i].path) for i in readable]
    bar = tqdm(total=len(paths), desc="tokenizing", unit="file", disable=not progress or not paths)
    for i, result in zip(
        readable,
        parallel_map(
            _tokenize, paths, workers, _init_worker, (tokenizer.preset, tokenizer.options())
        ),
    ):
        results[i] = result
        bar.update()
    bar.close()

    entries, pieces = _assign(files, results, fractions)
    _check_usable(entries, out)
    result = _write(out, tokenizer, entries, pieces, sources, fractions)
    result.seconds = time.perf_counter() - began
    return result


def is_data_dir(path: Path) -> bool:
    """Whether `path` is a folder `prepare` wrote: its manifest.json carries DATA_FORMAT (a
    folder that merely holds some manifest.json, e.g. generate's output, is not one)."""
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == DATA_FORMAT


def check_out_dir(out: Path, force: bool = False) -> None:
    """Refuse to replace anything but an empty folder or, with `force`, a data directory."""
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError(f"--out {out} exists and is not a directory")
    if not any(out.iterdir()):
        return
    if not is_data_dir(out):
        raise DataError(
            f"--out {out} is a non-empty folder but not a data directory written by prepare; "
            "refusing to overwrite it (give a new or empty folder)"
        )
    if not force:
        raise DataError(f"--out {out} is an existing data directory (pass --force to replace it)")


def _check_usable(entries: list[dict[str, Any]], out: Path) -> None:
    """No piece at all (an empty folder, only broken files): refuse before anything is
    written, so an existing data directory is not replaced by an empty one."""
    if any(e["split"] is not None for e in entries):
        return
    if not entries:
        raise DataError(f"no MIDI files found in the sources; {out} was not written")
    first = next(e for e in entries if "skipped" in e)
    raise DataError(
        f"none of the {len(entries)} files is usable ({first['source']}:{first['path']}: "
        f"{first['skipped']}); {out} was not written"
    )


def _assign(
    files: list[SourceFile],
    results: list[Result],
    fractions: Sequence[float],
) -> tuple[list[dict[str, Any]], dict[str, list[np.ndarray]]]:
    """Manifest entries (input order) and the pieces of each split (in input order)."""
    entries: list[dict[str, Any]] = []
    seen: dict[str, str] = {}  # content hash → first file with it
    good: list[int] = []
    for f, (ids, digest, reason) in zip(files, results):
        entry: dict[str, Any] = {"source": f.source, "path": f.relative, "sha256": digest or None}
        if f.error is not None:
            reason = f.error
        elif ids is not None and digest in seen and f.split is None:
            reason = f"duplicate of {seen[digest]} (same content)"
        if reason is not None:
            entry.update(split=None, tokens=0, skipped=reason)
        elif f.split is not None:  # the source's own (official) split is kept as published
            entry.update(split=f.split, tokens=len(ids), official_split=True)
        else:
            seen[digest] = f"{f.source}:{f.relative}"
            entry.update(split=None, tokens=len(ids))
            good.append(len(entries))
        entries.append(entry)
    by_source: dict[str, list[int]] = {}
    for i in good:
        by_source.setdefault(files[i].source, []).append(i)
    for members in by_source.values():  # each source split on its own (stratified)
        ranked = sorted(members, key=lambda i: path_hash(files[i].relative))
        counts = split_counts(len(ranked), fractions)
        bounds = np.cumsum([0, *counts])
        for s, name in enumerate(SPLITS):
            for i in ranked[bounds[s] : bounds[s + 1]]:
                entries[i]["split"] = name
    pieces: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for (ids, _, _), entry in zip(results, entries):
        if entry["split"] is not None:
            entry["piece"] = len(pieces[entry["split"]])
            pieces[entry["split"]].append(ids)
    return entries, pieces


def _write(
    out: Path,
    tokenizer: Tokenizer,
    entries: list[dict[str, Any]],
    pieces: dict[str, list[np.ndarray]],
    sources: Sequence[str],
    fractions: Sequence[float],
) -> PrepareResult:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_dir_beside(out)
    dtype = np.int16 if tokenizer.vocab_size <= np.iinfo(np.int16).max else np.int32
    splits: dict[str, dict[str, Any]] = {}
    try:
        for name in SPLITS:
            framed = [
                np.concatenate([[tokenizer.bos_id], ids, [tokenizer.eos_id]])
                for ids in pieces[name]
            ]
            lengths = np.array([len(p) for p in framed], dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)  # (P + 1,)
            flat = np.concatenate(framed).astype(dtype) if framed else np.zeros(0, dtype)
            np.save(tmp / f"{name}.tokens.npy", flat)
            np.save(tmp / f"{name}.offsets.npy", offsets)
            splits[name] = {
                "pieces": len(framed),
                "tokens": len(flat),
                "tokens_file": f"{name}.tokens.npy",
                "offsets_file": f"{name}.offsets.npy",
            }
        tokenizer.save(tmp / TOKENIZER)
        manifest = {
            "format": DATA_FORMAT,
            "format_version": DATA_FORMAT_VERSION,
            "package_version": package_version(),
            "preset": tokenizer.preset,
            "vocab_size": tokenizer.vocab_size,
            "dtype": np.dtype(dtype).name,
            "sources": list(sources),
            "split_fractions": list(fractions),
            "official_split_sources": sorted(
                {e["source"] for e in entries if e.get("official_split")}
            ),
            "splits": splits,
            "by_source": _counts_by_source(entries),
            "skipped": sum(1 for e in entries if "skipped" in e),
            "files": entries,
        }
        atomic_write_json(tmp / MANIFEST, manifest)
        _swap_into_place(tmp, out)
    except OSError as e:  # a full disk: numpy says only "4416 requested and 4032 written"
        reason = e.strerror or f"a file was cut short ({e}; is the disk full?)"
        raise DataError(f"cannot write data directory {out}: {reason}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    skipped = [(f"{e['source']}:{e['path']}", e["skipped"]) for e in entries if "skipped" in e]
    return PrepareResult(
        directory=out,
        pieces={k: v["pieces"] for k, v in splits.items()},
        tokens={k: v["tokens"] for k, v in splits.items()},
        skipped=skipped,
    )


def _counts_by_source(entries: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """{source: {split: {"pieces": n, "tokens": n}}} over the files that were kept (tokens
    without the BOS/EOS frame)."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for e in entries:
        if e["split"] is None:
            continue
        split = counts.setdefault(e["source"], {}).setdefault(
            e["split"], {"pieces": 0, "tokens": 0}
        )
        split["pieces"] += 1
        split["tokens"] += e["tokens"]
    return counts


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Swap the finished directory onto `out` (see `files.replace_dir`): `out` is at every
    moment either the old or the new complete directory (or absent)."""
    if out.exists():
        check_out_dir(out, force=True)  # it may have changed while we worked
    replace_dir(tmp, out)
