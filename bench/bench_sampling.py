"""Sampling rules, before and after, run by hand: stuck notes, notes left sounding, length
obtained vs asked, voice crossings (four-part grids) and the overlap of the continuations'
features with the real continuations.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_sampling.py --model bach-transformer \\
        --data data/bach [--primers 12] [--seconds 180] [--primer-seconds 12] [--seed 0]

Primers are the openings of the data's test-split pieces (their first `--primer-seconds` of
tokens, as the model's tokenizer has them), the real continuation what follows in the piece.
"before" samples as the first release did (no grammar, the model's EOS ends a row: settings
`grammar=False, allow_early_end=True`); "after" with this release's defaults. Same seeds.
Results go to bench/results/sampling-<model>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

import numpy as np

from midi_data import open_data
from midi_data.features import piece_features
from midi_data.notes import Notes, notes_from_pretty
from midi_data.presets import performance as perf
from music_transformer.comparison.metrics import paired_metrics
from music_transformer.comparison.primers import notes_after
from music_transformer.generation.loading import load_model, sample_batch
from music_transformer.generation.primers import crop_tokens
from music_transformer.generation.settings import SamplingSettings

RESULTS = Path(__file__).resolve().parent / "results"
CONDITIONS = {
    "before": dict(grammar=False, allow_early_end=True),  # the first release
    "after": {},  # this release's defaults
}


def left_sounding(tok, ids: list[int]) -> int:
    """Performance tokens: notes a NOTE_ON opened and no NOTE_OFF closed by the end."""
    if tok.preset != "performance":
        return 0  # score notes carry durations; grid notes end with their step
    open_: dict[int, deque] = {}
    for i in ids:
        k, a = int(tok.kind[i]), int(tok.arg[i])
        if k == perf.NOTE_ON:
            open_.setdefault(a, deque()).append(i)
        elif k == perf.NOTE_OFF and open_.get(a):
            open_[a].popleft()
    return sum(len(q) for q in open_.values())


def crossing_rate(tok, ids: list[int]) -> float | None:
    """Four-part grids: share of steps where a lower voice sounds above a higher one."""
    if tok.preset != "jsb":
        return None
    steps = tok.decode_grid(ids)
    crossed = [(lambda s: s != sorted(s, reverse=True))([v for v in st if v >= 0]) for st in steps]
    return float(np.mean(crossed)) if crossed else None


def row_measures(tok, primer: list[int], new: list[int], limit: float | None) -> dict:
    start = float(tok.seconds(primer))
    notes = notes_from_pretty(tok.decode(primer[1:] + new))
    mine = notes.take(np.nonzero(notes.start >= start - 1e-9)[0])
    lengths = mine.end - mine.start
    return {
        "notes": len(mine),
        "longest_note": float(lengths.max()) if len(mine) else 0.0,
        "over_limit": int((lengths > limit + 0.011).sum()) if limit else None,
        "left_sounding": left_sounding(tok, primer[1:] + new),
        "crossing_rate": crossing_rate(tok, new),
        "continuation": Notes(mine.start - start, mine.end - start, mine.pitch, mine.velocity),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True, help="prepared data with the model's tokenizer")
    ap.add_argument("--primers", type=int, default=12)
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--primer-seconds", type=float, default=12.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--condition",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE,...",
        help="extra settings to measure, e.g. 'guard:temperature=0,no_repeat_ngram=32'",
    )
    args = ap.parse_args()
    conditions = dict(CONDITIONS)
    for spec in args.condition:
        name, _, pairs = spec.partition(":")
        conditions[name] = {k: json.loads(v) for k, v in (p.split("=") for p in pairs.split(","))}

    loaded, data = load_model(args.model), open_data(args.data)
    tok = loaded.tokenizer
    if tok.vocab != data.tokenizer.vocab:
        raise SystemExit(f"{args.data} was not prepared with {args.model}'s tokenizer")
    primers, reals = [], []
    for piece in data.pieces("test"):
        ids = [int(i) for i in piece[1:-1]]  # without BOS and EOS
        head = crop_tokens(ids, tok.token_seconds, args.primer_seconds)
        if float(tok.seconds(ids)) < args.primer_seconds + 4 or not head:
            continue
        primers.append([tok.bos_id, *head])
        cut = float(tok.seconds(head))
        reals.append(notes_after(notes_from_pretty(tok.decode(ids)), cut, args.seconds))
        if len(primers) == args.primers:
            break
    limit = loaded.max_note_seconds
    report = {"model": args.model, "data": args.data, "primers": len(primers),
              "seconds": args.seconds, "primer_seconds": args.primer_seconds,
              "max_note_seconds": limit, "date": time.strftime("%Y-%m-%d %H:%M")}  # fmt: skip
    if tok.preset == "jsb":
        real_ids = [i for p in data.pieces("train") for i in p[1:-1].tolist()]
        report["real_crossing_rate"] = crossing_rate(tok, real_ids)
    real_features = [piece_features(r, args.seconds) if len(r) else None for r in reals]
    for name, change in conditions.items():
        settings = replace(SamplingSettings(seconds=args.seconds, seed=args.seed), **change)
        t0 = time.perf_counter()
        results = sample_batch(loaded, primers, settings)
        rows = [row_measures(tok, p, r.tokens, limit) for p, r in zip(primers, results)]
        generated = [
            piece_features(m.pop("continuation"), max(r.seconds, 1e-3)) if m["notes"] else None
            for m, r in zip(rows, results)
        ]
        for m, r in zip(rows, results):
            m.update(seconds=round(r.seconds, 2), stopped_by=r.stopped_by, tokens=len(r.tokens))
        ratios = [r.seconds / args.seconds for r in results]
        crossing = [m["crossing_rate"] for m in rows if m["crossing_rate"] is not None]
        report[name] = {
            "wall_seconds": round(time.perf_counter() - t0, 1),
            "notes_over_limit": sum(m["over_limit"] or 0 for m in rows),
            "rows_with_notes_over_limit": sum(bool(m["over_limit"]) for m in rows),
            "longest_note": max(m["longest_note"] for m in rows),
            "notes_left_sounding": sum(m["left_sounding"] for m in rows),
            "length_ratio_min": round(min(ratios), 3),
            "length_ratio_max": round(max(ratios), 3),
            "rows_within_10_percent": sum(0.9 - 1e-9 <= x <= 1.1 + 1e-9 for x in ratios),
            "crossing_rate": float(np.mean(crossing)) if crossing else None,
            "repetition": _mean_scalar(generated, "repetition"),
            "paired": paired_metrics(generated, real_features),
            "rows": rows,
        }
        print(name, {k: v for k, v in report[name].items() if k not in ("rows", "paired")})
    out = Path(args.out or RESULTS / f"sampling-{args.model}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(table(report) + "\n")
    print(table(report))


def _mean_scalar(features, name: str) -> float | None:
    values = [f.scalars[name] for f in features if f is not None and f.scalars[name] is not None]
    return float(np.mean(values)) if values else None


def table(r: dict) -> str:
    keys = ["notes_over_limit", "longest_note", "notes_left_sounding", "length_ratio_min",
            "length_ratio_max", "rows_within_10_percent", "crossing_rate",
            "repetition"]  # fmt: skip
    names = [n for n in r if isinstance(r[n], dict) and "paired" in r[n]]
    lines = [f"### {r['model']}: {r['primers']} primers × {r['seconds']:g} s "
             f"(limit {r['max_note_seconds']} s; {r['date']})", "",
             "| measure | " + " | ".join(names) + " |",
             "|---" * (len(names) + 1) + "|"]  # fmt: skip
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(_fmt(r[n][k]) for n in names) + " |")
    for k in r["before"]["paired"]["overlap"]:
        cells = " | ".join(_fmt(r[n]["paired"]["overlap"][k]) for n in names)
        lines.append(f"| overlap {k} | {cells} |")
    if "real_crossing_rate" in r:
        lines.append(f"| real data crossing rate | {_fmt(r['real_crossing_rate'])} | |")
    return "\n".join(lines)


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


if __name__ == "__main__":
    main()
