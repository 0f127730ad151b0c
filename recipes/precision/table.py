"""Markdown report of recipes/precision/run.sh: valid NLL by step of every run, each best
checkpoint evaluated in fp32 and in bf16, and the bf16-vs-fp32 gap per seed beside the
seed-to-seed gap of each precision (the noise a 1% parity target has to be read against).

Usage: python recipes/precision/table.py RUN_DIR...   (directories named <precision>-seed<N>)
Reads RUN_DIR/metrics.jsonl and RUN_DIR/eval-valid-{fp32,bf16}.json.
"""

from __future__ import annotations

import json
import re
import sys
from itertools import pairwise
from pathlib import Path


def valid_curve(run: Path) -> dict[int, float]:
    """Validation NLL by step from a run's metrics.jsonl (the last record of a step wins)."""
    curve = {}
    for line in (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record.get("split") == "valid" and record.get("nll") is not None:
            curve[int(record["step"])] = float(record["nll"])
    return curve


def evaluated(run: Path, precision: str) -> float | None:
    try:
        return float(json.loads((run / f"eval-valid-{precision}.json").read_text())["nll"])
    except (OSError, ValueError, KeyError):
        return None


def gap(a: float | None, b: float | None) -> str:
    """|a − b| relative to their mean, in percent."""
    if a is None or b is None:
        return "—"
    return f"{100 * abs(a - b) / ((a + b) / 2):.2f}%"


def main(runs: list[Path]) -> str:
    kinds = {}
    for run in runs:
        m = re.fullmatch(r"(fp32|bf16)-seed(\d+)", run.name)
        if m is None:
            raise SystemExit(f"Error: {run} is not named <fp32|bf16>-seed<N>")
        kinds[run] = (m.group(1), int(m.group(2)))
    curves = {run: valid_curve(run) for run in runs}
    steps = sorted({s for c in curves.values() for s in c})
    best = {run: min(c.values()) if c else None for run, c in curves.items()}
    lines = [
        "Valid NLL (nats/token, windows of 256 tokens) during training, in the run's precision:",
        "",
        "| run | " + " | ".join(str(s) for s in steps) + " | best | eval fp32 | eval bf16 |",
        "|---" * (len(steps) + 4) + "|",
    ]
    for run in runs:
        cells = [f"{curves[run][s]:.4f}" if s in curves[run] else "—" for s in steps]
        ev = [evaluated(run, p) for p in ("fp32", "bf16")]
        lines.append(
            f"| {run.name} | " + " | ".join(cells) + f" | {best[run]:.4f} | "
            + " | ".join("—" if e is None else f"{e:.4f}" for e in ev) + " |"
        )  # fmt: skip
    by = {kinds[r]: r for r in runs}
    seeds = sorted({s for _, s in kinds.values()})
    lines += [
        "",
        "Gaps in best valid NLL (|a − b| / mean); the bf16 column also with both evaluated "
        "in fp32:",
        "",
        "| compared | best valid NLL | evaluated in fp32 |",
        "|---|---|---|",
    ]
    for seed in seeds:
        a, b = by.get(("bf16", seed)), by.get(("fp32", seed))
        if a and b:
            lines.append(
                f"| bf16 vs fp32, seed {seed} | {gap(best[a], best[b])} "
                f"| {gap(evaluated(a, 'fp32'), evaluated(b, 'fp32'))} |"
            )
    for p in ("fp32", "bf16"):
        for s1, s2 in pairwise(seeds):
            a, b = by.get((p, s1)), by.get((p, s2))
            if a and b:
                lines.append(
                    f"| {p}: seed {s1} vs seed {s2} | {gap(best[a], best[b])} "
                    f"| {gap(evaluated(a, 'fp32'), evaluated(b, 'fp32'))} |"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    print(main([Path(a) for a in sys.argv[1:]]))
