"""Objective metrics: how close are generated continuations to the real ones?

Two views, both computed from `midi_data.features.piece_features`:

Paired (works from one primer on): for every primer, the model's continuation against the
real continuation of the same primer (the primer file's music after the cut).
    * histogram features: OVERLAPPING AREA Σ_b min(p_b, q_b) of the two normalized
      histograms, in [0, 1], 1 = identical distributions; averaged over primers.
    * scalar features: absolute difference |model − real|, averaged over primers.

Set level (Yang & Lerch 2018; needs ≥ 3 primers with a real continuation): per feature,
Euclidean distances between pieces give an intra-set distribution (real vs real) and an
inter-set distribution (model vs real). Both are smoothed with a Gaussian kernel density
estimate (Silverman bandwidth) and compared by their OVERLAPPING AREA (1 = the model's pieces
are as close to the real ones as real pieces are to each other) and by KL(intra ‖ inter) in
nats (0 = same). numpy only: the KDE is a few lines and scipy would be a large dependency.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np

from midi_data.features import HISTOGRAM_BINS, SCALARS, PieceFeatures

MIN_SET = 3  # pieces per set for the set-level comparison
GRID = 512  # points of the KDE grid


def histogram_overlap(p: np.ndarray, q: np.ndarray) -> float | None:
    """Overlapping area of two histograms (normalized here); None if either is empty."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    if p.sum() <= 0 or q.sum() <= 0:
        return None
    return float(np.minimum(p / p.sum(), q / q.sum()).sum())


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(kept)) if kept else None


def paired_metrics(
    generated: Sequence[PieceFeatures | None], real: Sequence[PieceFeatures | None]
) -> dict[str, dict[str, float | None]]:
    """Mean overlap (histograms) and mean |difference| (scalars) over primers where both
    pieces exist. `generated[i]` and `real[i]` belong to the same primer."""
    pairs = [(g, r) for g, r in zip(generated, real) if g is not None and r is not None]
    overlap = {
        name: _mean([histogram_overlap(g.histograms[name], r.histograms[name]) for g, r in pairs])
        for name in HISTOGRAM_BINS
    }
    abs_diff = {}
    for name in SCALARS:
        diffs = [
            abs(g.scalars[name] - r.scalars[name])
            for g, r in pairs
            if g.scalars[name] is not None and r.scalars[name] is not None
        ]
        abs_diff[name] = _mean(diffs)
    return {"overlap": overlap, "abs_diff": abs_diff, "primers": len(pairs)}


def scalar_means(pieces: Sequence[PieceFeatures | None]) -> dict[str, float | None]:
    """Mean of every scalar feature over the pieces that define it."""
    kept = [p for p in pieces if p is not None]
    return {name: _mean([p.scalars[name] for p in kept]) for name in SCALARS}


def _vector(piece: PieceFeatures, name: str) -> np.ndarray | None:
    if name in HISTOGRAM_BINS:
        h = piece.histograms[name]
        return h if h.sum() > 0 else None
    value = piece.scalars[name]
    return None if value is None else np.array([value])


def kde(samples: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Gaussian kernel density of 1-D `samples` on `grid` (Silverman's rule; a floor keeps
    a set of identical distances from collapsing to a spike). Returns (len(grid),)."""
    samples = np.asarray(samples, float)
    spread = samples.std(ddof=1) if len(samples) > 1 else 0.0
    scale = max(spread, 1e-3 * max(abs(samples).max(), 1e-6), 1e-9)
    bandwidth = 1.06 * scale * len(samples) ** (-1 / 5)
    z = (grid[:, None] - samples[None, :]) / bandwidth  # (G, N)
    return np.exp(-0.5 * z**2).sum(axis=1) / (len(samples) * bandwidth * math.sqrt(2 * math.pi))


def overlap_and_kl(intra: np.ndarray, inter: np.ndarray) -> tuple[float, float]:
    """Overlapping area and KL(intra ‖ inter) of the two distance distributions' KDEs."""
    both = np.concatenate([intra, inter])
    pad = (both.max() - both.min()) * 0.5 + 1e-6
    grid = np.linspace(max(both.min() - pad, 0.0) if both.min() >= 0 else both.min() - pad,
                       both.max() + pad, GRID)  # fmt: skip
    step = grid[1] - grid[0]
    f, g = kde(intra, grid), kde(inter, grid)
    f, g = f / (f.sum() * step), g / (g.sum() * step)  # renormalize on the truncated grid
    oa = float(np.minimum(f, g).sum() * step)
    eps = 1e-12
    kl = float((f * np.log((f + eps) / (g + eps))).sum() * step)
    return min(oa, 1.0), max(kl, 0.0)


def set_metrics(
    generated: Sequence[PieceFeatures | None], real: Sequence[PieceFeatures | None]
) -> dict[str, dict[str, float | None]] | None:
    """Yang & Lerch set-level overlap and KL per feature; None with fewer than MIN_SET real
    pieces. A feature undefined on too many pieces gets None."""
    out: dict[str, dict[str, float | None]] = {"overlap": {}, "kl": {}}
    if sum(r is not None for r in real) < MIN_SET:
        return None
    for name in [*HISTOGRAM_BINS, *SCALARS]:
        gen = [v for p in generated if p is not None and (v := _vector(p, name)) is not None]
        ref = [v for p in real if p is not None and (v := _vector(p, name)) is not None]
        if len(ref) < MIN_SET or len(gen) < 1:
            out["overlap"][name] = out["kl"][name] = None
            continue
        intra = np.array([np.linalg.norm(a - b) for a, b in itertools.combinations(ref, 2)])
        inter = np.array([np.linalg.norm(a - b) for a in gen for b in ref])
        out["overlap"][name], out["kl"][name] = overlap_and_kl(intra, inter)
    return out
