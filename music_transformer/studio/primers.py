"""The primers shipped with the package (music_transformer/bundled/primers), for a first
piece without a file of one's own."""

from __future__ import annotations

from typing import Any

from ..checkpoint import BUNDLED_DIR
from .pieces import PieceError

PRIMERS_DIR = BUNDLED_DIR / "primers"


def bundled_primers() -> list[dict[str, Any]]:
    """Name and what it is: piano excerpts first (the default model's kind), then chorales."""
    files = sorted(
        PRIMERS_DIR.glob("*.mid"), key=lambda p: (not p.name.startswith("piano"), p.name)
    )
    return [
        {"name": p.name, "kind": "piano" if p.name.startswith("piano") else "chorale"}
        for p in files
    ]


def bundled_primer(name: str) -> tuple[str, bytes]:
    """(name, bytes) of a bundled primer; PieceError (404) for any other name."""
    known = {p["name"] for p in bundled_primers()}
    if name not in known:
        raise PieceError(f"no bundled primer {name!r} (one of {', '.join(sorted(known))})", 404)
    return name, (PRIMERS_DIR / name).read_bytes()
