"""Finding MIDI sources: folders, single files, and music21's built-in corpora.

A SOURCE is a folder (searched recursively for .mid/.midi, any file name), one file, a
four-voice grid `.json` file with its own train/valid/test split (the JSB Chorales benchmark,
`Jsb16thSeparated.json`), or `music21:<corpus>` (`music21:bach`, `music21:palestrina`).
music21 scores are converted to MIDI once (repeats expanded where music21 can) and cached in
the user cache directory (`cache.cache_dir`) — never in the repository.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from tqdm import tqdm

from .cache import cache_dir
from .errors import DataError
from .files import atomic_write_text
from .jsb import read_grid_json
from .parallel import parallel_map

MIDI_SUFFIXES = (".mid", ".midi")
GRID_SUFFIX = ".json"  # a four-voice grid file with its own split (JSB Chorales)
MUSIC21_PREFIX = "music21:"
MUSIC21_CORPORA = ("bach", "palestrina")
# Formats music21 ships its scores in, best first; a work present in several is taken once.
# `.rntxt` files are roman-numeral analyses, not music.
_SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".krn", ".abc", ".mei", ".md")


@dataclass(frozen=True)
class SourceFile:
    """One input file of `prepare`.

    Attributes:
        source: the SOURCE it came from, as the user wrote it.
        relative: its path relative to the source (POSIX form); names it in the manifest and
            decides its split.
        path: the MIDI file to read (for music21 corpora: the cached conversion).
        error: why the file cannot be used (e.g. a failed music21 conversion), else None.
        split: the split the source assigns it (a grid JSON's official split), else None
            (split by path hash).
        piece: for a piece of a grid JSON file (`path`), its index in `split`, else None.
    """

    source: str
    relative: str
    path: Path
    error: str | None = None
    split: str | None = None
    piece: int | None = None


def check_sources(sources: Sequence[str]) -> None:
    """Raise DataError naming the first SOURCE that does not exist (before any slow work)."""
    if not sources:
        raise DataError("no SOURCE given")
    for s in sources:
        if s.startswith(MUSIC21_PREFIX):
            name = s[len(MUSIC21_PREFIX) :]
            if name not in MUSIC21_CORPORA:
                raise DataError(
                    f"unknown corpus {s!r} (built in: "
                    + ", ".join(MUSIC21_PREFIX + c for c in MUSIC21_CORPORA)
                    + ")"
                )
        elif not Path(s).exists():
            raise DataError(f"source {s} does not exist")


def find_files(
    sources: Sequence[str], workers: int = 1, progress: bool = False
) -> list[SourceFile]:
    """Every input file of `sources`, in a deterministic order (source order, then path).

    Raises:
        DataError: a source does not exist or is an unknown corpus.
    """
    check_sources(sources)
    found: list[SourceFile] = []
    for s in sources:
        if s.startswith(MUSIC21_PREFIX):
            found += music21_files(s[len(MUSIC21_PREFIX) :], workers=workers, progress=progress)
        elif Path(s).is_dir():
            root = Path(s)
            paths = [
                p for p in root.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file()
            ]
            rels = sorted(p.relative_to(root).as_posix() for p in paths)
            found += [SourceFile(s, rel, root / rel) for rel in rels]
        elif Path(s).suffix.lower() == GRID_SUFFIX:
            found += grid_files(s)
        else:
            found.append(SourceFile(s, Path(s).name, Path(s)))
    return found


def grid_files(source: str) -> list[SourceFile]:
    """One SourceFile per piece of a four-voice grid JSON file (JSB Chorales format, see
    `midi_data.jsb`), named `<split>/<index>` and keeping the file's own split.

    Raises:
        DataError: the file is not valid JSON or not in that format.
    """
    pieces = read_grid_json(source)
    return [
        SourceFile(source, f"{split}/{i:04d}", Path(source), split=split, piece=i)
        for split, grids in pieces.items()
        for i in range(len(grids))
    ]


def music21_scores(name: str) -> list[tuple[str, Path]]:
    """(relative name, score path) of each work in a music21 corpus, one format per work."""
    from music21 import corpus  # slow import, only when a corpus is asked for

    best: dict[str, Path] = {}
    for p in map(Path, corpus.getComposer(name)):
        if p.suffix not in _SCORE_SUFFIXES:
            continue
        key = p.with_suffix("").as_posix()
        old = best.get(key)
        if old is None or _SCORE_SUFFIXES.index(p.suffix) < _SCORE_SUFFIXES.index(old.suffix):
            best[key] = p
    root = _corpus_root()
    return sorted((_relative(p, root, name), p) for p in best.values())


def _corpus_root() -> Path:
    from music21 import corpus

    return Path(corpus.__file__).parent


def _relative(p: Path, root: Path, name: str) -> str:
    try:
        return p.with_suffix("").relative_to(root).as_posix()
    except ValueError:  # a corpus registered outside music21's folder
        return f"{name}/{p.stem}"


def music21_files(
    name: str, limit: int | None = None, workers: int = 1, progress: bool = False
) -> list[SourceFile]:
    """The works of music21 corpus `name` as cached MIDI files, converting missing ones.

    Args:
        name: "bach" or "palestrina".
        limit: only the first `limit` works (in name order), e.g. for tests.
        workers: processes for the conversion.
        progress: show a progress bar while converting.
    """
    if name not in MUSIC21_CORPORA:
        raise DataError(f"unknown music21 corpus {name!r}")
    scores = music21_scores(name)[:limit]
    folder = cache_dir() / f"music21-{metadata.version('music21')}"
    jobs = [(str(p), str(folder / f"{rel}.mid")) for rel, p in scores]
    todo = [j for j in jobs if not _cached(Path(j[1]))]
    if todo:
        bar = tqdm(total=len(todo), desc=f"converting music21:{name}", disable=not progress)
        for _ in parallel_map(_convert_job, todo, workers):
            bar.update()
        bar.close()
    files = []
    for (rel, _), (_, out) in zip(scores, jobs):
        failed = Path(out + ".failed")
        error = failed.read_text(encoding="utf-8").strip() if failed.is_file() else None
        files.append(SourceFile(MUSIC21_PREFIX + name, rel, Path(out), error))
    return files


def _cached(out: Path) -> bool:
    return out.is_file() or Path(str(out) + ".failed").is_file()


def _convert_job(job: tuple[str, str]) -> None:
    score_path, out = job
    try:
        data = convert_to_midi(Path(score_path))
    except Exception as e:  # one bad score must not stop the corpus; remember why
        atomic_write_text(
            out + ".failed", f"music21 could not convert it ({type(e).__name__}: {e})"
        )
        return
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{out}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)


def convert_to_midi(score_path: Path) -> bytes:
    """MIDI bytes of a music21-readable score, with repeats expanded when music21 can."""
    from music21 import converter
    from music21.midi import translate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score = converter.parse(score_path)
        # Inconsistent repeat marks make expandRepeats raise: keep the score as written.
        with contextlib.suppress(Exception):
            score = score.expandRepeats()
        return translate.streamToMidiFile(score).writestr()
