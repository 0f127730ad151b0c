"""What the sampler's guards (and min-p, the entropy floor) change over a minute or more.

    python bench/bench_guards.py --out bench/results/guards.json [--seconds 60]
        [--variants plain,guard,min-p,entropy] [--model piano-transformer] PRIMER.mid ...

Continues every primer (12 s cuts) once per variant with the same seeds, in one batch, and
cuts each continuation into 30-s segments. Per segment it counts what the issue's piano rolls
showed: two pitches carrying over 40% of the onsets, a silence (nothing sounding) over 3 s,
pitch 8-grams mostly heard before in the segment (over half), density over 20 onsets per
second; plus the backtracks, the tokens decoded (kept + thrown away by backtracks) and the
wall and CPU time of each variant. The statistics are the guard's own
(`generation.guards.window_stats`): a quick look, not the long-form judge.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from music_transformer.generation.guards import (
    GuardBands,
    GuardSettings,
    OnsetReader,
    window_stats,
)
from music_transformer.generation.loading import load_model, sample_batch
from music_transformer.generation.primers import read_primer
from music_transformer.generation.settings import SamplingSettings

SEGMENT = 30.0
VARIANTS = {  # every variant but those with a guard has it off, whatever the model's card says
    "plain": {},
    "guard": {"guard": GuardSettings()},
    "min-p": {"min_p": 0.05},
    "entropy": {"entropy_floor": 1.0},
    "sinks": {"sink_tokens": 16},
    "guard+min-p": {"guard": GuardSettings(), "min_p": 0.05},
    # 30-s windows, bands from bench/results/guard-bands-30s.json (the same percentiles)
    "guard-30s": {
        "guard": GuardSettings(
            window=30.0,
            rewind=6.0,
            bands=GuardBands(
                min_distinct=13,
                max_top2=0.53,
                max_repeat=0.56,
                max_silence=2.59,
                min_density=1.77,
                max_density=24.14,
            ),
        )
    },
}


def segments(reader: OnsetReader, tokens: list[int]) -> list[dict]:
    tape = reader.read(tokens)
    out, t = [], 0.0
    while t + SEGMENT <= tape.clock + 1e-9:
        s = window_stats(tape, t, t + SEGMENT)
        out.append({"top2": round(s.top2, 3), "silence": round(s.silence, 2),
                    "repeat": round(s.repeat, 3), "density": round(s.density, 2),
                    "distinct": s.distinct})  # fmt: skip
        t += SEGMENT
    return out


def summary(segs: list[dict]) -> dict:
    return {
        "segments": len(segs),
        "two_pitch_over_40pct": sum(s["top2"] > 0.4 for s in segs),
        "silence_over_3s": sum(s["silence"] > 3.0 for s in segs),
        "repeats_over_half": sum(s["repeat"] > 0.5 for s in segs),
        "density_over_20": sum(s["density"] > 20 for s in segs),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("primers", nargs="+", type=Path)
    p.add_argument("--model", default="piano-transformer")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--variants", default="plain,guard")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    loaded = load_model(a.model, "cpu")
    reader = OnsetReader(loaded.tokenizer)
    rows = [read_primer(loaded.tokenizer, f, 12.0, file_time=True) for f in a.primers]
    base = SamplingSettings(seconds=a.seconds, seed=a.seed, precision="fp32", guard=False)
    report = {"model": a.model, "seconds": a.seconds, "seed": a.seed, "primers":
              [str(f) for f in a.primers], "variants": {}}  # fmt: skip
    for name in a.variants.split(","):
        start, cpu = time.perf_counter(), time.process_time()
        got = sample_batch(loaded, [r.ids for r in rows], replace(base, **VARIANTS[name]))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        segs = [segments(reader, g.tokens) for g in got]
        backs = [len((g.guard or {}).get("backtracks", [])) for g in got]
        report["variants"][name] = {
            "wall_seconds": round(wall, 1),
            "cpu_seconds": round(cpu, 1),  # of this process: less sensitive to a busy machine
            "decoded_tokens": sum(len(g.tokens) for g in got)
            + sum(
                b["from_token"] - b["to_token"]
                for g in got
                for b in (g.guard or {}).get("backtracks", [])
            ),
            "tokens": [len(g.tokens) for g in got],
            "backtracks": backs,
            "reasons": [b["reason"] for g in got for b in (g.guard or {}).get("backtracks", [])],
            **summary([s for row in segs for s in row]),
            "segments_by_primer": segs,
        }
        brief = {k: v for k, v in report["variants"][name].items() if k != "segments_by_primer"}
        print(name, json.dumps(brief), flush=True)
        a.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
