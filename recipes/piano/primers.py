"""Primers cut from real piano pieces, each with the real music that follows its cut.

A piece of a prepared data directory's split gives up to two primers: one at its opening and
one from its middle (starting at the first onset after 40% of its length). A primer keeps the
notes that START in its window, shifted so the window starts at 0 s, with velocities and
(sustain-folded) durations; a note still sounding at the window's end is cut there. A cut
followed by less than `min_follow` seconds of music is skipped, so every primer has a real
continuation as long as the model's.

Used by recipes/piano/pianist.py; also the way to cut the bundled primers from test pieces.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from midi_data.files import atomic_write
from midi_data.midi_io import read_score
from midi_data.notes import Notes, notes_from_score, notes_to_midi
from music_transformer.comparison.primers import notes_after

MIDDLE_FRACTION = 0.4  # where the second primer of a piece starts, as a share of its length
MIN_FOLLOW = 60.0  # seconds of real music a cut must be followed by
REPO = Path(__file__).resolve().parents[2]


@dataclass
class PrimerCut:
    """One primer and the real music around it.

    Attributes:
        piece: the MIDI file.
        name: "<path relative to the source>@<start, whole seconds>", unique per cut.
        start: the primer window's start in the piece, seconds.
        cut: the primer window's end (where continuations start), seconds.
        primer: notes starting in [start, cut), shifted by −start, ends clipped at cut − start.
        real: notes starting in [cut, cut + seconds), shifted by −cut, ends clipped at seconds.
        piece_notes: every note of the piece, seconds (sustain folded).
    """

    piece: Path
    name: str
    start: float
    cut: float
    primer: Notes
    real: Notes
    piece_notes: Notes


def split_pieces(data_dir: str | Path, pieces: str | Path | None = None, split: str = "test"):
    """The source MIDI files of one split of a prepared data directory, in manifest order.

    Args:
        data_dir: a folder written by `music-transformer prepare` (its manifest.json).
        pieces: the source folder the manifest's paths are relative to (default: the
            manifest's `source`, tried from the current folder, the data folder and the repo).
        split: "train", "valid" or "test".
    Returns:
        list of (path relative to the source, resolved Path).
    Raises:
        ValueError: no manifest, a file missing, or a file that differs from the prepared one.
    """
    manifest_path = Path(data_dir) / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {manifest_path}: {e}") from None
    out = []
    for entry in (f for f in manifest["files"] if f["split"] == split):
        roots = [Path(pieces)] if pieces else [Path(entry["source"])]
        if not pieces and not roots[0].is_absolute():
            roots += [Path(data_dir) / entry["source"], REPO / entry["source"]]
        path = next((r / entry["path"] for r in roots if (r / entry["path"]).is_file()), None)
        if path is None:
            raise ValueError(f"{entry['path']} of the {split} split not found under {roots[0]}")
        # the split is defined by the prepared files: a different file would be another piece
        if hashlib.sha256(path.read_bytes()).hexdigest() != entry.get("sha256", ""):
            raise ValueError(f"{path} differs from the file prepared in {data_dir}")
        out.append((entry["path"], path.resolve()))
    return out


def cut_piece(
    relative: str,
    path: Path,
    primer_seconds: float,
    seconds: float,
    min_follow: float = MIN_FOLLOW,
    middle: float | None = MIDDLE_FRACTION,
) -> list[PrimerCut]:
    """The primers of one piece: at its first onset and (unless `middle` is None) at the
    first onset after `middle` × its length; a cut with < max(min_follow, seconds) seconds of
    music after it is skipped.

    Args:
        relative: the piece's name in the primers' names.
        path: the MIDI file.
        primer_seconds: primer length, seconds.
        seconds: length of the real continuation to keep, seconds.
    """
    notes = notes_from_score(read_score(path))
    if len(notes) == 0:
        return []
    end = float(notes.end.max())
    onsets = np.unique(notes.start)
    starts = [float(onsets[0])]
    if middle is not None:
        later = onsets[onsets >= middle * end]
        if len(later) and later[0] > starts[0] + primer_seconds:  # disjoint from the opening
            starts.append(float(later[0]))
    cuts = []
    for start in starts:
        cut = start + primer_seconds
        primer = notes_after(notes, start, primer_seconds)  # ends clipped at the cut
        if end - cut < max(min_follow, seconds) or len(primer) == 0:
            continue
        cuts.append(
            PrimerCut(
                piece=path,
                name=f"{relative}@{start:.0f}",
                start=start,
                cut=cut,
                primer=primer,
                real=notes_after(notes, cut, seconds),
                piece_notes=notes,
            )
        )
    return cuts


def write_primer(cut: PrimerCut, path: str | Path) -> Path:
    """Write the primer as a one-track piano MIDI file (times from 0 s); return its path."""
    pm = notes_to_midi(cut.primer)
    atomic_write(Path(path), lambda t: pm.write(str(t)))
    return Path(path)
