"""Validation curves of the JSB Chorales runs: valid NLL against window tokens seen, from each
run's metrics.jsonl (finished runs and runs still training alike), as a PNG beside the
paper's Table 2 values and as a Markdown table.

Usage: python recipes/jsb/curves.py RUNS MODEL... [--png FILE] [--every N]
  --png FILE   draw the curves (default: RUNS/curves.png)
  --every N    table columns every N-th validation and the newest (default 4: every 0.82M
               tokens at the recipe's 200 steps × 2,048 tokens); the best of a row in bold
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator

from music_transformer.training import read_metrics

# The paper's Table 2 (valid NLL), for the rows it has.
PAPER = {
    "absolute": 0.417,
    "absolute-concat": 0.398,
    "absolute-concat-voice": 0.370,
    "relative": 0.357,
    "relative-concat-voice": 0.347,
    "relative-pitch-time": 0.335,
}


def valid_curve(run: Path) -> list[tuple[int, float]]:
    """(window tokens seen, valid NLL) at every validation of the run, in step order."""
    rows = read_metrics(run)
    per_step = {r["step"]: r["tokens_seen"] for r in rows if "tokens_seen" in r}
    tokens_per_step = next((t / s for s, t in sorted(per_step.items()) if s), 0.0)
    return [
        (round(r["step"] * tokens_per_step), r["nll"])
        for r in rows
        if r.get("split") == "valid" and r.get("nll") is not None
    ]


def markdown(curves: dict[str, list[tuple[int, float]]], every: int) -> str:
    seen = sorted({t for curve in curves.values() for t, _ in curve})
    tokens = seen[every - 1 :: every]
    if seen and seen[-1] not in tokens:  # the newest validation is always a column
        tokens.append(seen[-1])
    head = " | ".join(f"{t / 1e6:.2f}M" for t in tokens)
    lines = [f"| window tokens | {head} |", "|---|" + "---|" * len(tokens)]
    for model, curve in curves.items():
        at = dict(curve)
        best = min(at.values(), default=None)
        cells = []
        for t in tokens:
            v = at.get(t)
            cell = "" if v is None else f"{v:.3f}"
            cells.append(f"**{cell}**" if v is not None and v == best else cell)
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def draw(curves: dict[str, list[tuple[int, float]]], path: Path) -> None:
    fig = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for model, curve in curves.items():
        if not curve:
            continue
        (line,) = ax.plot([t / 1e6 for t, _ in curve], [v for _, v in curve], label=model)
        if model in PAPER:
            ax.axhline(PAPER[model], color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(FixedLocator([0.3, 0.35, 0.4, 0.5, 0.6, 0.8, 1, 1.5, 2, 3, 4]))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter("{x:g}")
    ax.set_xlabel("window tokens seen (millions)")
    ax.set_ylabel("valid NLL, nats per token (log scale)")
    ax.set_title("JSB Chorales: validation curves (dotted: the paper's Table 2 value)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--png", type=Path)
    parser.add_argument("--every", type=int, default=4)
    args = parser.parse_args()
    if args.every < 1:
        parser.error("--every must be at least 1")
    curves = {m: valid_curve(args.runs / m) for m in args.models}
    if not any(curves.values()):
        parser.exit(2, f"Error: no validation in {args.runs}/<MODEL>/metrics.jsonl\n")
    draw(curves, args.png or args.runs / "curves.png")
    print(markdown(curves, args.every), end="")


if __name__ == "__main__":
    main()
