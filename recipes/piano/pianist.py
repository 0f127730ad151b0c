"""Does a model continue a pianist's primer like a pianist? The model card's figures.

    python recipes/piano/pianist.py --models piano-transformer,bach-transformer \
        --data /work/runs/data/piano --out pianist.json [--nll]

Primers are cut from the pieces of the data's test split (recipes/piano/primers.py: each
piece's opening and a cut from its middle, 12 s each, followed by ≥ 60 s of real music).
Every model continues every primer for --seconds (primer i: seed + i, the same for every
model); each continuation is measured against the piece's real continuation with
`music_transformer.comparison.pianist` (targets in its docstring). The JSON holds the settings,
the primers, and per model the per-primer records and the aggregate; stdout gets a markdown
table: one row per model, then the real continuation measured against itself (the ceiling:
a piece that modulates fails its own pitch-class target).

--nll adds each model's test NLL with 4L tokens of context and a sliding attention window of
L (its training length): the 2L–4L bucket should be within 5% of the 0–L bucket.

Exit status: 0 done, 2 a model or the data cannot be used (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from primers import PrimerCut, cut_piece, split_pieces, write_primer

from midi_data.files import atomic_write_json
from midi_data.notes import notes_from_pretty
from music_transformer.checkpoint import LoadedModel, package_version
from music_transformer.comparison.pianist import (
    TARGET_METRIC,
    TARGETS,
    PianistRecord,
    aggregate,
    pianist_record,
)
from music_transformer.comparison.primers import notes_after
from music_transformer.generation.loading import load_model, model_settings, sample_batch
from music_transformer.generation.primers import read_primer
from music_transformer.generation.settings import SamplingSettings

MAX_NLL_GROWTH = 1.05  # target: NLL of positions 2L–4L ≤ 1.05 × that of 0–L
MIN_PRIMERS = 20  # the model card's figures need at least this many
REAL_ROW = "real (vs itself)"  # the table's reference row
# The table's columns: per target, the median of its measure and (the share meeting it).
COLUMNS = {
    "dynamics_std": ("velocity std ratio (≥ 0.6)", 2),
    "dynamics_mean": ("velocity mean diff (±15)", 1),
    "density": ("density ratio (0.7–1.3)", 2),
    "ioi": ("IOI overlap (≥ 0.6)", 2),
    "pitch_class": ("min pitch-class r (≥ 0.7)", 2),
    "long_note": ("longest note − piece's, s (≤ 2)", 1),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", required=True, help="comma-separated bundled names or dirs")
    p.add_argument("--data", required=True, help="prepared data dir (its manifest's split)")
    p.add_argument("--split", default="test", help="valid to choose settings, test to report")
    p.add_argument("--pieces", help="source folder of the manifest's paths (default: its own)")
    p.add_argument("--primer-seconds", type=float, default=12.0)
    p.add_argument("--seconds", type=float, default=60.0, help="continuation length")
    p.add_argument(
        "--temperature", type=float, default=None, help="default: each model's card's (else 1.0)"
    )
    p.add_argument(
        "--no-primer-note-limit", action="store_true",
        help="bound notes by the model's limit only, not also by twice the primer's longest",
    )  # fmt: skip
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument(
        "--guard", choices=("off", "on"), default=None,
        help="the sampler's guard (generation.guards) off or on [default: the model card's]",
    )  # fmt: skip
    p.add_argument(
        "--sink-tokens", type=int, default=None,
        help="attention sinks for the models whose context slides (relative Transformers); "
        "the LSTM and absolute-position models keep none [default: each model's card's]",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-primers", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--nll", action="store_true", help="also the test NLL by position")
    p.add_argument("--out", required=True, help="JSON file to write")
    return p.parse_args(argv)


def pad_to(ids: list[int], token_seconds: np.ndarray, seconds: float) -> list[int]:
    """`ids` followed by the fewest time-shift tokens that bring its span to `seconds`:
    a primer ending in a rest must still end at the cut, where the real music resumes."""
    shifts = sorted((float(s), i) for i, s in enumerate(token_seconds) if s > 0)
    remaining = seconds - float(np.sum(token_seconds[ids]))
    out = list(ids)
    while shifts and remaining >= shifts[0][0] - 1e-9:
        step, token = max((s, i) for s, i in shifts if s <= remaining + 1e-9)
        out.append(token)
        remaining -= step
    return out


def continuations(
    loaded: LoadedModel,
    paths: list[Path],
    cuts: list[PrimerCut],
    settings: SamplingSettings,
    batch_size: int,
) -> tuple[list[PianistRecord], list[dict[str, Any]]]:
    """Continue every primer file (`paths[i]` written from `cuts[i]`).

    Returns:
        per primer its PianistRecord, and its generation facts (seed, tokens, stop reason).
    """
    tok = loaded.tokenizer
    rows = []
    for path, cut in zip(paths, cuts):
        ids = read_primer(tok, path).ids
        rows.append(pad_to(ids, tok.token_seconds, cut.cut - cut.start))
    records, facts = [], []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        t0 = time.time()
        done = sample_batch(loaded, batch, replace(settings, seed=settings.seed + start))
        print(
            f"  primers {start + 1}–{start + len(batch)}: {time.time() - t0:.0f} s", file=sys.stderr
        )
        for i, (row, result) in enumerate(zip(batch, done)):
            cut = cuts[start + i]
            # Decoded with the primer before it, the continuation inherits the primer's last
            # velocity (alone it would get the default); then keep what starts after the cut.
            full = notes_from_pretty(tok.decode(row[1:] + result.tokens))
            generated = notes_after(full, tok.seconds(row[1:]), settings.seconds)
            records.append(
                pianist_record(cut.primer, generated, cut.real, cut.piece_notes, settings.seconds)
            )
            facts.append(
                {
                    "primer": start + i,
                    "seed": settings.seed + start + i,
                    "tokens": len(result.tokens),
                    "generated_seconds": round(result.seconds, 3),
                    "stopped_by": result.stopped_by,
                }
            )
    return records, facts


def position_nll(loaded: LoadedModel, data: str, device: str) -> dict[str, Any]:
    """Test NLL with context 4L and attention window L, by position bucket."""
    from music_transformer.evaluation import evaluate

    L = loaded.training_seq_len
    if not L:
        return {"error": f"{loaded.directory} records no training seq_len"}
    try:
        r = evaluate(loaded.directory, data, "test", context=4 * L, window=L, device=device)
    except ValueError as e:  # vocabulary mismatch, empty split: say so for this model
        return {"error": str(e).splitlines()[0]}
    by_start = {b.start: b.nll for b in r.buckets}
    early, late = by_start.get(0), by_start.get(2 * L)
    ratio = late / early if early and late is not None else None
    return {
        "train_seq_len": L,
        "context": 4 * L,
        "window": L,
        "nll": r.nll,
        "tokens": r.tokens,
        "nll_0_L": early,
        "nll_2L_4L": late,
        "ratio": ratio,
        "passed": None if ratio is None else ratio <= MAX_NLL_GROWTH,
        "buckets": r.to_dict()["buckets"],
    }


def _cell(median: float | None, share: float | None, digits: int) -> str:
    m = "—" if median is None else f"{median:.{digits}f}"
    return m if share is None else f"{m} ({share:.0%})"


def _share(share: float | None) -> str:
    return "—" if share is None else f"{share:.0%}"


def table(rows: dict[str, dict[str, Any]], nll: dict[str, dict[str, Any]]) -> str:
    """Markdown: per row the median of each target's measure and (the share meeting it)."""
    heads = [head for head, _ in COLUMNS.values()] + ["all targets"]
    if nll:
        heads += ["test NLL", "NLL 2L–4L / 0–L (≤ 1.05)"]
    lines = ["| model | primers | " + " | ".join(heads) + " |", "|---" * (len(heads) + 2) + "|"]
    for label, agg in rows.items():
        cells = [
            _cell(agg["median"][TARGET_METRIC[t]], agg["pass_share"][t], digits)
            for t, (_, digits) in COLUMNS.items()
        ]
        cells.append(_share(agg["all_pass_share"]))
        if nll:
            n = nll.get(label, {})
            cells += [
                "—" if n.get("nll") is None else f"{n['nll']:.3f}",
                "—" if n.get("ratio") is None else f"{n['ratio']:.3f}",
            ]
        lines.append(f"| {label} | {agg['primers']} | " + " | ".join(cells) + " |")
    lines.append("\nCells: median over primers (share of primers meeting the target).")
    return "\n".join(lines)


def load_all(names: list[str], device: str) -> dict[str, LoadedModel]:
    """Every model, loaded before any work. Raises ValueError naming the first that fails."""
    loaded = {}
    for name in names:
        try:
            loaded[name] = load_model(name, device)
        except (ValueError, OSError) as e:  # CheckpointError is a ValueError
            line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(line if name in line else f"model {name}: {line}") from None
    return loaded


def primer_list(cuts: list[PrimerCut]) -> list[dict[str, Any]]:
    """The primers as the JSON lists them: piece, window in the piece (s), note counts."""
    return [
        {"piece": str(c.piece), "name": c.name, "start": c.start, "cut": c.cut,
         "primer_notes": len(c.primer), "real_notes": len(c.real)}
        for c in cuts
    ]  # fmt: skip


def run_models(
    models: dict[str, LoadedModel],
    cuts: list[PrimerCut],
    settings: SamplingSettings,
    batch_size: int,
) -> dict[str, Any]:
    """Per model: its directory, the aggregate and the per-primer records (JSON-ready)."""
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="pianist-") as tmp:
        paths = [write_primer(c, Path(tmp) / f"p{i:03d}.mid") for i, c in enumerate(cuts)]
        for name, loaded in models.items():
            print(f"{name}: continuing {len(cuts)} primers", file=sys.stderr)
            records, facts = continuations(loaded, paths, cuts, settings, batch_size)
            results[name] = {
                "directory": str(loaded.directory),
                "sampling": model_settings(loaded, settings).record(),  # what this model ran
                "aggregate": aggregate(records),
                "records": [{**f, **r.to_dict()} for f, r in zip(facts, records)],
            }
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    guard = {} if args.guard is None else {"guard": args.guard == "on"}
    try:
        settings = SamplingSettings(
            seconds=args.seconds,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            primer_note_limit=not args.no_primer_note_limit,
            sink_tokens=args.sink_tokens,
            **guard,
        )
        if not names:
            raise ValueError("--models names no model")
        models = load_all(names, args.device)
        pieces = split_pieces(args.data, args.pieces, args.split)
    except ValueError as e:  # SamplingError, CheckpointError, a bad data folder
        print(f"pianist: {e}", file=sys.stderr)
        return 2
    cuts = [c for rel, p in pieces for c in cut_piece(rel, p, args.primer_seconds, args.seconds)]
    if len(cuts) < MIN_PRIMERS:
        print(f"pianist: warning: only {len(cuts)} primers can be cut", file=sys.stderr)
    cuts = cuts[: args.max_primers] if args.max_primers else cuts
    print(f"{len(cuts)} primers from {len(pieces)} {args.split} pieces", file=sys.stderr)
    results = run_models(models, cuts, settings, args.batch_size)
    nll = {}
    if args.nll:
        for name, loaded in models.items():
            print(f"{name}: test NLL by position", file=sys.stderr)
            nll[name] = results[name]["nll"] = position_nll(loaded, args.data, args.device)
    real = [pianist_record(c.primer, c.real, c.real, c.piece_notes, args.seconds) for c in cuts]
    summary = {name: res["aggregate"] for name, res in results.items()}
    summary[REAL_ROW] = aggregate(real)
    report = {
        "version": package_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": {**vars(args), "sampling": settings.record()},
        "targets": {**TARGETS, "nll": f"NLL 2L–4L ≤ {MAX_NLL_GROWTH:g} × NLL 0–L"},
        "primers": primer_list(cuts),
        "models": results,
        "real": {"records": [r.to_dict() for r in real], "aggregate": summary[REAL_ROW]},
    }
    atomic_write_json(args.out, report)
    print(table(summary, nll))
    return 0


if __name__ == "__main__":
    sys.exit(main())
