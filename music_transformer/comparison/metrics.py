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
from pathlib import Path
from typing import Any

import numpy as np

from midi_data.features import HISTOGRAM_BINS, NGRAM, SCALARS, SEGMENT, PieceFeatures

from ..checkpoint import LoadedModel

METHOD = (
    "Paired overlap: for each primer, overlapping area Σ min(p, q) of the normalized "
    "histograms of the model's continuation and the real continuation, averaged over primers "
    "(1 = identical). Scalars are per-piece means; repetition = share of 4-note skyline "
    "motifs (interval and rhythm) heard earlier; self-similarity = mean best cosine match "
    "of 2 s piano-roll segments with earlier ones. Set level: Yang & Lerch (2018) "
    "overlapping area of kernel density estimates of intra-set (real–real) and inter-set "
    "(model–real) distances. NLL in nats per token."
)
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


# Why a feature can be undefined on a piece (features.py): shown on the page for a missing value.
FEATURE_NEEDS = {
    "pitch_class": "needs notes",
    "interval": "needs 2 or more melody (skyline) notes",
    "ioi": "needs 2 or more distinct onsets",
    "velocity": "needs notes",
    "polyphony": "needs notes",
    "note_density": "needs notes",
    "pitch_range": "needs notes",
    "notes_per_second": "needs music",
    "mean_polyphony": "needs notes",
    "repetition": f"needs {NGRAM + 2} or more melody (skyline) notes",
    "self_similarity": f"needs {2 * SEGMENT:g} s or more of music ({SEGMENT:g} s segments are "
    "compared with earlier ones)",
}


def _defined(pieces: Sequence[PieceFeatures | None], name: str) -> int:
    return sum(p is not None and _vector(p, name) is not None for p in pieces)


def missing_reasons(
    entry: dict, generated: Sequence[PieceFeatures | None], real: Sequence[PieceFeatures | None]
) -> dict[str, str]:
    """Why each missing value of one model's metrics entry is missing.

    Args:
        entry: {"nll", "paired", "mean", "set"} as `run_comparison` writes them.
        generated, real: the pieces they were computed from, one per primer.

    Returns:
        {"nll" | "paired" | "paired.overlap.<f>" | "paired.abs_diff.<f>" | "mean.<f>" | "set"
        | "set.overlap.<f>": one-line reason} for every None among them.
    """
    out: dict[str, str] = {}
    nll = entry.get("nll")
    if nll is None:
        out["nll"] = "no --data given (a prepared data directory to score the model on)"
    elif nll.get("nll") is None:
        out["nll"] = nll.get("error", "not computed")
    reals = sum(r is not None for r in real)
    if entry["paired"]["primers"] == 0:
        out["paired"] = (
            "no primer has a real continuation (every file ends at its cut)"
            if reals == 0
            else "the model wrote no notes after the cut of any primer with a real continuation"
        )
    for part in ("overlap", "abs_diff"):
        for name, value in entry["paired"][part].items():
            if value is None and "paired" not in out:
                side = "real continuations" if _defined(real, name) == 0 else "continuations"
                out[f"paired.{part}.{name}"] = (
                    f"undefined on every pair's {side}: " + (FEATURE_NEEDS[name])
                )
    for name, value in entry["mean"].items():
        if value is None:
            out[f"mean.{name}"] = f"undefined on every continuation: {FEATURE_NEEDS[name]}"
    if entry["set"] is None:
        out["set"] = f"needs real continuations of {MIN_SET} or more primers (this report: {reals})"
    else:
        for name, value in entry["set"]["overlap"].items():
            if value is None:
                out[f"set.overlap.{name}"] = (
                    f"defined on fewer than {MIN_SET} real continuations"
                    if _defined(real, name) < MIN_SET
                    else "undefined on every continuation"
                ) + f": {FEATURE_NEEDS[name]}"
    return out


def real_missing(real: Sequence[PieceFeatures | None], means: dict[str, float | None]):
    """{"mean.<f>": reason} for the real continuations' undefined means."""
    if not any(r is not None for r in real):
        return {
            f"mean.{n}": "no primer has a real continuation" for n, v in means.items() if v is None
        }
    return {
        f"mean.{n}": f"undefined on every real continuation: {FEATURE_NEEDS[n]}"
        for n, v in means.items()
        if v is None
    }


def model_nll(loaded: LoadedModel, data: str | Path, split: str, device: str) -> dict[str, Any]:
    """The model's NLL on a prepared data directory's `split`, or {"error": why}."""
    from ..evaluation import evaluate

    try:
        r = evaluate(loaded.directory, data, split=split, device=device)
    except ValueError as e:  # no seq_len, empty split, vocabulary mismatch: say so per model
        return {"error": str(e).splitlines()[0]}
    return {"nll": r.nll, "perplexity": r.perplexity, "tokens": r.tokens, "split": split}


def report_metrics(
    nll: dict[str, dict[str, Any] | None],
    features: dict[str, list[PieceFeatures | None]],
    real_features: list[PieceFeatures | None],
) -> dict[str, Any]:
    """metrics.json: per model (label → `model_nll` result or None without --data; label →
    its continuations' features, one per primer) against the real continuations' features."""
    models: dict[str, Any] = {}
    for label in features:
        entry = {
            "nll": nll.get(label),
            "paired": paired_metrics(features[label], real_features),
            "mean": scalar_means(features[label]),
            "set": set_metrics(features[label], real_features),
        }
        # why each null above is null, for the reader of this file and of the page
        models[label] = {**entry, "missing": missing_reasons(entry, features[label], real_features)}
    real_means = scalar_means(real_features)
    return {
        "method": {
            "summary": METHOD,
            "histogram_distance": "overlapping area (paired, per primer); Yang & Lerch KDE "
            "overlapping area and KL(intra ‖ inter) in nats (set level, ≥ 3 primers)",
        },
        "histogram_features": list(HISTOGRAM_BINS),
        "scalar_features": list(SCALARS),
        "primers_with_real_continuation": sum(r is not None for r in real_features),
        "models": models,
        "real": {"mean": real_means, "missing": real_missing(real_features, real_means)},
    }
