"""The catalog: which models there are and what each holds, without loading weights —
config, size, tokenizer, training. Used by `music-transformer models` and `info`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .calibration import choose_precision
from .checkpoint import (
    TOKENIZER_FILE,
    CheckpointError,
    bundled_models,
    check_model_dir,
    read_model,
)
from .nn import count_parameters
from .nn.config import config_from_dict, config_to_dict
from .runtime import pick_device

# Keys of tokenizer.json worth showing, when present (the rest is the vocabulary itself).
_TOKENIZER_KEYS = (
    "preset",
    "options",
    "tokenizer_class",
    "miditok_version",
    "package_version",
    "format_version",
)


def _tokenizer_summary(directory: Path, meta: dict[str, Any]) -> dict[str, Any]:
    summary = dict(meta.get("tokenizer", {}))
    try:
        data = json.loads((directory / TOKENIZER_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return summary
    if isinstance(data, dict):
        for key in _TOKENIZER_KEYS:
            if key in data and not isinstance(data[key], list):
                summary.setdefault(key, data[key])
    return summary


def model_info(name_or_dir: str | Path) -> dict[str, Any]:
    """Describe a bundled model or checkpoint/run directory.

    Returns:
        {"name", "directory", "config", "parameters", "tokenizer", "training", "suits",
        "sampling" (the card's recommended sampling settings), "version"}.

    Raises:
        CheckpointError: not a model, no weights, unreadable or bad config.json.
    """
    directory, meta, config = read_model(name_or_dir)
    check_model_dir(directory, config)  # truncated or mismatched weights: broken
    return {
        "name": str(name_or_dir),
        "directory": str(directory),
        "config": config_to_dict(config),
        "parameters": count_parameters(config),
        "tokenizer": _tokenizer_summary(directory, meta),
        "training": meta.get("training", {}),
        "suits": meta.get("card", {}).get("suits"),
        "sampling": meta.get("card", {}).get("sampling", {}),
        "version": meta.get("version"),
    }


def bundled_info() -> list[dict[str, Any]]:
    """model_info of every bundled model (a broken one is listed with its error)."""
    infos = []
    for name in bundled_models():
        try:
            infos.append(model_info(name))
        except CheckpointError as e:
            infos.append({"name": name, "error": str(e)})
    return infos


def precision_here(info: dict[str, Any], device: str = "auto") -> dict[str, dict[str, str]]:
    """What `--precision auto` picks for this model on this machine, and why: training
    (batch 8), scoring and decoding one row, at the model's training length (`calibration`;
    measured once, then cached)."""
    config = config_from_dict(info["config"])
    length = int(info["training"].get("seq_len") or 1024)
    dev = pick_device(device)
    batch = {"train": 8, "eval": 4, "decode": 1}
    out = {}
    for workload, rows in batch.items():
        choice = choose_precision("auto", dev, workload, config, batch=rows, length=length)
        out[workload] = {"precision": choice.name, "why": choice.reason}
    return out
