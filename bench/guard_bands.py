"""Derive the sampler's guard bands from real music: a prepared `performance` data directory.

    python bench/guard_bands.py DATA_DIR [--split train] [--window 10] [--step 1]
        [--low 0.2] [--high 99.8] [--silence-high 99] [--out bench/results/guard-bands.json]

Every piece of the split is read as onsets with the guard's own reader
(`generation.guards`), cut into windows of `--window` seconds every `--step` seconds (the way
the sampler checks a row), and each statistic's percentiles are printed per source (the
manifest's sources, e.g. classical and pop) and pooled. The bands are the pooled `--low`th
percentile of the lower-bounded statistics and the `--high`th of the upper-bounded ones (the
silence: `--silence-high`th); the
script then reports how often real music would trip them: the share of its windows outside
(any band) and the guard's false alarms per minute of music, per source and split.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path

import numpy as np

from midi_data.dataset import TokenData
from music_transformer.generation.guards import (
    MIN_ONSETS,
    GuardBands,
    OnsetReader,
    window_stats,
)

LOWER = ("min_distinct", "min_density")  # bounded below; the rest above
STAT_OF = {
    "min_distinct": "distinct",
    "max_top2": "top2",
    "max_repeat": "repeat",
    "max_silence": "silence",
    "min_density": "density",
    "max_density": "density",
}


def windows(reader: OnsetReader, ids, window: float, step: float):
    """WindowStats of every window [t, t + window] of one piece, t = 0, step, 2·step, …"""
    tape = reader.read([int(i) for i in ids])
    t = 0.0
    while t + window <= tape.clock + 1e-9:
        yield window_stats(tape, t, t + window)
        t += step


def collect(data: Path, split: str, window: float, step: float) -> dict[str, list]:
    manifest = json.loads((data / "manifest.json").read_text())
    tokens = TokenData(data)
    reader = OnsetReader(tokens.tokenizer)
    source_of = {f["piece"]: f["source"] for f in manifest["files"] if f["split"] == split}
    out: dict[str, list] = defaultdict(list)
    for piece, ids in enumerate(tokens.pieces(split)):
        stats = list(windows(reader, ids, window, step))
        out[Path(source_of.get(piece, "?")).name].extend(stats)
    return out


def bands_from(stats: list, low: float, high: float, silence_high: float) -> GuardBands:
    values = {}
    for name, stat in STAT_OF.items():
        judged = stats
        if name in ("max_top2", "max_repeat"):  # judged only on windows of enough onsets
            judged = [s for s in stats if s.onsets >= MIN_ONSETS]
        x = np.array([getattr(s, stat) for s in judged], dtype=np.float64)
        q = low if name in LOWER else silence_high if name == "max_silence" else high
        values[name] = float(np.percentile(x, q))
    values["min_distinct"] = int(np.floor(values["min_distinct"]))
    return GuardBands(**{k: round(v, 2) for k, v in values.items()})


def trips(stats: list, bands: GuardBands, step: float) -> dict[str, float]:
    bad = sum(s.breach(bands) is not None for s in stats)
    minutes = len(stats) * step / 60
    return {"windows": len(stats), "outside": round(bad / max(len(stats), 1), 5),
            "per_minute": round(bad / max(minutes, 1e-9), 4)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path)
    p.add_argument("--split", default="train")
    p.add_argument("--check-split", default="valid")
    p.add_argument("--window", type=float, default=10.0)
    p.add_argument("--step", type=float, default=1.0)
    p.add_argument("--low", type=float, default=0.2)
    p.add_argument("--high", type=float, default=99.8)
    # real music has onset-free stretches of 7 s in 0.2% of its windows (fermatas, song ends);
    # the target is no silence over 3 s the primer lacks: the silence band is the 99th
    p.add_argument("--silence-high", type=float, default=99.0)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    by_source = collect(a.data, a.split, a.window, a.step)
    pooled = [s for v in by_source.values() for s in v]
    bands = bands_from(pooled, a.low, a.high, a.silence_high)
    report = {"data": str(a.data), "split": a.split, "window": a.window, "step": a.step,
              "percentiles": [a.low, a.high], "silence_percentile": a.silence_high,
              "bands": asdict(bands), "percentile_table": {},
              "trips": {}}  # fmt: skip
    for name, stats in [*by_source.items(), ("pooled", pooled)]:
        table = {}
        for stat in ("distinct", "top2", "repeat", "silence", "density"):
            x = np.array([getattr(s, stat) for s in stats])
            table[stat] = {q: round(float(np.percentile(x, q)), 3) for q in (0.2, 1, 50, 99, 99.8)}
        report["percentile_table"][name] = table
        report["trips"][f"{a.split}/{name}"] = trips(stats, bands, a.step)
    check = collect(a.data, a.check_split, a.window, a.step)
    for name, stats in check.items():
        report["trips"][f"{a.check_split}/{name}"] = trips(stats, bands, a.step)
    text = json.dumps(report, indent=1)
    print(text)
    if a.out:
        a.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
