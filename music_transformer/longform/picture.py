"""The judge's picture over time: each statistic a line across the minutes after the primer,
one line per file, the real corpus's band shaded, segments outside the band marked.

matplotlib's object API (no pyplot state), written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from midi_data.files import atomic_write

from .judge import Bands, Judged
from .stats import STATS, UNITS

BAND_COLOR = "#9ecae1"
OUT_COLOR = "#d62728"
MAX_LEGEND = 12  # more files than this: no legend (the table names them)


def draw_judged(
    judged: Sequence[Judged], bands: Bands, path: str | Path, labels: Sequence[str] | None = None
) -> Path:
    """Write a PNG of six panels (one per statistic) for `judged` against `bands`.

    Args:
        judged: files judged against `bands`; x is minutes after each file's primer (segment
            middles).
        labels: a legend label per file (default: the file names).
    """
    fig = Figure(figsize=(12, 9), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(3, 2, sharex=True).ravel()
    labels = list(labels) if labels is not None else [Path(j.path).name for j in judged]
    # at least three minutes shown: how far a short continuation got is part of the picture
    longest = max([len(j.values) * j.segment / 60 for j in judged] + [3.0])
    for k, (ax, stat) in enumerate(zip(axes, STATS)):
        ax.axhspan(bands.lo[k], bands.hi[k], color=BAND_COLOR, alpha=0.5, linewidth=0)
        for j, label in zip(judged, labels):
            x = (np.arange(len(j.values)) + 0.5) * j.segment / 60  # (K,) minutes
            y = j.values[:, k]
            ax.plot(x, y, marker="o", markersize=3, linewidth=1.2, label=label)
            bad = j.outside[:, k]
            ax.plot(x[bad], y[bad], "x", color=OUT_COLOR, markersize=8, mew=2)
        ax.set_title(f"{stat.replace('_', ' ')} ({UNITS[stat]})", fontsize=10)
        ax.set_xlim(0, longest)
        ax.tick_params(labelsize=8)
    for ax in axes[-2:]:
        ax.set_xlabel("minutes after the primer")
    band = f"{bands.name}: real band (shaded), {bands.segments} segments; × outside"
    fig.suptitle(band, fontsize=11)
    if 0 < len(judged) <= MAX_LEGEND:
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside lower center", ncols=min(4, len(names)),
                   fontsize=8, frameon=False)  # fmt: skip
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    return Path(path)
