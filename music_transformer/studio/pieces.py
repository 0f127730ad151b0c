"""Pieces on disk: one folder per piece, its primer and its tree of takes.

```
PIECES/<piece id>/
  piece.json          the tree: every node = parent + the tokens it added + settings + seed
  primer.mid          the uploaded (or bundled) primer, byte for byte
  takes/<node>.mid    a take: its parent's file verbatim + the continuation on its own track
  takes/<node>.json   the take's sidecar, as `continue` writes it
  audio/<node>.wav    rendered on first listen (the newest 40 kept); .mp3 on first export
  blind/              key.json and answers.json of the blind A/B trials, when exported
```

piece.json is rewritten whole, atomically (temp file + rename), after every change, so a
crash or a restart of the server loses nothing already kept. Ids are checked against one
pattern before they touch a path; file names from uploads are only ever shown, never used as
paths (the primer is always `primer.mid`).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from midi_data.errors import MidiReadError
from midi_data.files import atomic_write, atomic_write_json
from midi_data.midi_io import check_header, max_midi_bytes, read_score
from midi_data.notes import notes_from_score

PIECE_FILE = "piece.json"
PRIMER_FILE = "primer.mid"
FORMAT = "music-transformer/studio-piece"
ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
ROOT = "root"
MAX_NAME = 120  # characters of an uploaded file's name that are kept for display


class PieceError(ValueError):
    """A bad request about pieces (bad upload, unknown id). One line; `status` is HTTP's."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not ID.match(value):
        raise PieceError(f"{what} {value!r} is not a valid id", 404)
    return value


def display_name(name: Any) -> str:
    """An uploaded file's name for display: a plain name, never a path.

    Raises:
        PieceError: a name with a folder in it (/, \\), '..', or control characters.
    """
    if not isinstance(name, str) or not name.strip():
        return "primer.mid"
    if any(c in name for c in "/\\") or name.strip() in (".", "..") or ".." in name:
        raise PieceError(f"file name {name!r} must be a plain name, not a path")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise PieceError("file name has control characters")
    return name.strip()[:MAX_NAME]


def check_midi(data: bytes, name: str) -> float:
    """Refuse what `continue` refuses (size limit, not MIDI, unreadable, no notes); return
    the file's length in seconds."""
    limit = max_midi_bytes()
    if len(data) > limit:
        raise PieceError(
            f"{name}: {len(data) / 2**20:.1f} MiB is more than the {limit / 2**20:g} MiB a MIDI "
            "file may have (set MUSIC_TRANSFORMER_MAX_MIDI_MB to raise it)", 413,
        )  # fmt: skip
    try:
        check_header(data, name)
        notes = notes_from_score(read_score(data), sustain=False)
    except MidiReadError as e:
        raise PieceError(str(e).replace("<" + f"{len(data)} bytes of MIDI>", name)) from None
    if len(notes) == 0:
        raise PieceError(f"{name}: no notes to continue")
    return float(notes.end.max())


class Pieces:
    """The piece folders under one directory. All reads and writes of piece.json go through
    one lock: the generation worker adds takes while the page moves the current take."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()

    def folder(self, piece: str) -> Path:
        return self.root / check_id(piece, "piece")

    def create(self, data: bytes, name: str) -> dict[str, Any]:
        """A new piece from a primer's bytes (checked as `continue` checks a primer)."""
        name = display_name(name)
        seconds = check_midi(data, name)
        piece_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
        folder = self.folder(piece_id)
        folder.mkdir(parents=True)
        atomic_write(folder / PRIMER_FILE, lambda p: p.write_bytes(data))
        piece = {
            "format": FORMAT,
            "id": piece_id,
            "name": name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "primer": {"name": name, "seconds": round(seconds, 3)},
            "current": ROOT,
            "next_take": 1,
            "nodes": {ROOT: {"id": ROOT, "parent": None}},
            "blind": [],
        }
        self.save(piece)
        return piece

    def load(self, piece: str) -> dict[str, Any]:
        path = self.folder(piece) / PIECE_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PieceError(f"no piece {piece!r}", 404) from None
        except (OSError, json.JSONDecodeError) as e:
            raise PieceError(f"cannot read {path}: {e}", 500) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise PieceError(f"{path} is not a studio piece", 500)
        return data

    def save(self, piece: dict[str, Any]) -> None:
        atomic_write_json(self.folder(piece["id"]) / PIECE_FILE, piece)

    def list(self) -> list[dict[str, Any]]:
        """Every readable piece, newest first: id, name, created, number of takes."""
        out = []
        for folder in sorted(self.root.iterdir(), reverse=True):
            if not (folder / PIECE_FILE).is_file() or not ID.match(folder.name):
                continue
            try:
                p = self.load(folder.name)
            except PieceError:
                continue  # a broken folder is not the page's problem
            takes = len(p["nodes"]) - 1
            out.append({"id": p["id"], "name": p["name"], "created": p["created"], "takes": takes})
        return out

    def node(self, piece: dict[str, Any], node: str) -> dict[str, Any]:
        check_id(node, "take")
        if node not in piece["nodes"]:
            raise PieceError(f"piece {piece['id']!r} has no take {node!r}", 404)
        return piece["nodes"][node]

    def midi_path(self, piece_id: str, node: str) -> Path:
        """The node's MIDI file: the primer for the root, else its take file."""
        folder = self.folder(piece_id)
        return folder / PRIMER_FILE if node == ROOT else folder / "takes" / f"{node}.mid"

    def audio_path(self, piece_id: str, node: str, kind: str) -> Path:
        return self.folder(piece_id) / "audio" / f"{check_id(node, 'take')}.{kind}"

    def reserve(self, piece_id: str, count: int) -> list[str]:
        """Ids for `count` takes about to be written (kept in the tree by `keep`)."""
        with self.lock:
            piece = self.load(piece_id)
            first = piece["next_take"]
            piece["next_take"] += count
            self.save(piece)
            return [f"t{first + i}" for i in range(count)]

    def keep(self, piece_id: str, nodes: list[dict[str, Any]]) -> None:
        """Add finished takes (each with its reserved "id") to the tree, in one write."""
        with self.lock:
            piece = self.load(piece_id)
            for node in nodes:
                piece["nodes"][node["id"]] = node
            self.save(piece)

    def update(self, piece_id: str, change) -> dict[str, Any]:
        """Apply change(piece) under the lock and save; returns the piece."""
        with self.lock:
            piece = self.load(piece_id)
            change(piece)
            self.save(piece)
            return piece


def lineage(piece: dict[str, Any], node: str) -> list[dict[str, Any]]:
    """The nodes from the root's first take down to `node` (empty for the root)."""
    chain = []
    while node is not None and node != ROOT:
        chain.append(piece["nodes"][node])
        node = piece["nodes"][node]["parent"]
    return chain[::-1]
