"""Record a model's note limit — the 99.9th percentile note length of its training data —
in its config.json, for models trained before the trainer recorded it (the sampler's default
`--max-note-seconds`; see music_transformer/generation/grammar.py).

Usage: python recipes/note_limit.py DATA_DIR MODEL_DIR [MODEL_DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from midi_data import open_data
from midi_data.files import atomic_write_json
from music_transformer.checkpoint import CONFIG_FILE, resolve_model_dir


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    data = open_data(sys.argv[1])
    limit = round(data.note_length_quantile("train", 99.9), 3)
    for name in sys.argv[2:]:
        path = resolve_model_dir(name) / CONFIG_FILE
        meta = json.loads(Path(path).read_text(encoding="utf-8"))
        if meta["tokenizer"]["vocab_size"] != data.tokenizer.vocab_size:
            sys.exit(f"{name}: its tokenizer is not the one of {sys.argv[1]}")
        meta.setdefault("training", {})["max_note_seconds"] = limit
        atomic_write_json(path, meta)
        print(f"{name}: max_note_seconds = {limit} s (99.9th percentile of {sys.argv[1]} train)")


if __name__ == "__main__":
    main()
