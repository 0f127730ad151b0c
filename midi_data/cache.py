"""The user cache directory: what this program computes once per user and keeps between runs
(music21 scores converted to MIDI, the runtime measurements of `music_transformer.runtime`).

$MUSIC_TRANSFORMER_CACHE, else $XDG_CACHE_HOME/music-transformer, else
~/.cache/music-transformer; never the repository. Created by whoever writes into it.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The user cache directory (not created here)."""
    if os.environ.get("MUSIC_TRANSFORMER_CACHE"):
        return Path(os.environ["MUSIC_TRANSFORMER_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "music-transformer"
