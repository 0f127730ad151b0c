"""Markdown tables of the JSB Chorales results written by recipes/jsb/run.sh, beside the
Music Transformer paper's Table 2.

Usage: python recipes/jsb/table.py RUNS MODEL...
Reads RUNS/<MODEL>/eval-<split>-<context>.json (from `music-transformer evaluate --json`)
and RUNS/<MODEL>/best/config.json. A run not evaluated yet (still training) gets its best
validation so far from RUNS/<MODEL>/metrics.jsonl, marked as such.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from music_transformer.nn import count_parameters
from music_transformer.nn.config import config_from_dict
from music_transformer.training import read_metrics

# Validation NLL (nats/token) in the paper's Table 2, where it has the same model.
PAPER = {
    "absolute": "0.417 (baseline Transformer)",
    "relative": "0.357 (relative attention); best 0.335",
    "first/absolute": "0.417",
    "first/relative": "0.357",
    "relative-transpose": "0.357 / 0.335",
    "absolute-concat": "0.398 (+ concatenated sinusoids)",
    "absolute-concat-voice": "0.370 (+ concatenated sinusoids, instrument labels)",
    "relative-concat-voice": "0.347 (relative + concatenated sinusoids, instrument labels)",
    "relative-pitch-time": "0.335 (+ relative pitch and timing)",
}
TRAIN_LEN, WHOLE = 1024, 4096


def load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def nll(result: dict | None) -> str:
    return "—" if result is None else f"{result['nll']:.4f}"


def in_training(run: Path) -> tuple[str, str]:
    """(valid cell, step cell) of a run not evaluated yet: its best validation so far."""
    rows = read_metrics(run)  # also skips a line a kill cut short
    valid = [r for r in rows if r.get("split") == "valid"]
    if not valid:
        return "—", "not validated yet"
    best = min(valid, key=lambda r: r["nll"])
    offset = (load(run / "options.json") or {}).get("step_offset", 0)  # extend-*.toml runs
    last = max(r.get("step", 0) for r in rows) + offset
    return f"{best['nll']:.4f} (so far)", f"{best['step'] + offset} (training, at {last})"


def main(runs: Path, models: list[str]) -> str:
    lines = [
        "| model | paper, valid | valid (L windows) | valid (whole pieces) "
        "| test (L windows) | test (whole pieces) | best step | parameters |",
        "|---|---|---|---|---|---|---|---|",
    ]
    buckets: list[str] = []
    for m in models:
        ev = {
            (s, c): load(runs / m / f"eval-{s}-{c}.json")
            for s in ("valid", "test")
            for c in (TRAIN_LEN, WHOLE)
        }
        meta = load(runs / m / "best" / "config.json") or {}
        training = meta.get("training", {})
        params = f"{count_parameters(config_from_dict(meta['model'])):,}" if meta else "—"
        valid, best_step = nll(ev["valid", TRAIN_LEN]), training.get("step", "—")
        if training.get("step_offset"):  # a warm start continuing a run (extend-*.toml)
            offset = training["step_offset"]
            best_step = f"{offset + best_step:,} ({offset:,} + {best_step:,})"
        if all(e is None for e in ev.values()):
            valid, best_step = in_training(runs / m)
        lines.append(
            f"| {m} | {PAPER.get(m.removeprefix('extend-'), '—')} | {valid} "
            f"| {nll(ev['valid', WHOLE])} | {nll(ev['test', TRAIN_LEN])} "
            f"| {nll(ev['test', WHOLE])} | {best_step} | {params} |"
        )
        for split in ("valid", "test"):
            whole = ev[split, WHOLE]
            if whole is not None:
                cells = " | ".join(
                    "—" if b["nll"] is None else f"{b['nll']:.4f} ({b['tokens']:,})"
                    for b in whole["buckets"]
                )
                buckets.append(f"| {m} | {split} | {cells} |")
    text = "NLL in nats per token (all non-pad targets, EOS included).\n\n" + "\n".join(lines)
    if buckets:
        L = TRAIN_LEN
        text += "\n\nNLL by position in whole-piece windows (tokens scored in brackets):\n\n"
        text += f"| model | split | 0–{L} | {L}–{2 * L} | {2 * L}–{4 * L} |\n"
        text += "|---|---|---|---|---|\n"
        text += "\n".join(buckets)
    return text + "\n"


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    print(main(Path(sys.argv[1]), sys.argv[2:]), end="")
