"""Training speed of this checkout against an older commit, side by side, run by hand:

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_train_ab.py --against REF [--quick]

REF (a commit, tag or branch; e.g. the landed version before a speed change) is exported
with `git archive` to a temporary directory. For each shape (presets small and paper, L 512
and 1024, batch 2, precision fp32 and — with --bf16 — bf16 autocast) the two versions run
ALTERNATELY, each in its own fresh process (`--child`) with the same timing harness
(`bench_train.time_training_step`: forward, loss, backward, clipping, fused AdamW) and only
the package imported from a different tree, and with the process set-up that version's
trainer does (allocator thresholds where it has them). The ratio of medians over the rounds
(new / ref tokens/s) is reported with MFU against the matmul peak measured in the same run.
Results: bench/results/train-ab.md and .json (or --name NAME), with the CPU's flags.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


def child(preset: str, L: int, precision: str, steps: int) -> None:
    """Time one shape with whatever `music_transformer` is on sys.path; print one JSON line."""
    try:  # the set-up this version's trainer does before training
        from music_transformer.allocator import keep_freed_memory

        keep_freed_memory()
    except ImportError:
        pass
    from bench_train import VOCAB, model_flops_per_token, time_training_step

    from music_transformer.nn import build_model
    from music_transformer.nn.config import make_config

    torch.manual_seed(0)
    cfg = make_config("transformer", preset, VOCAB, max_rel_dist=max(L, 1024))
    model = build_model(cfg)
    amp = torch.bfloat16 if precision == "bf16" else None
    sec = time_training_step(model, L, amp, steps, fused=True)
    flops = model_flops_per_token(model, cfg.n_layers, cfg.d_model, L, 3)
    print(json.dumps({"seconds": sec, "flops_per_token": flops}))


def run_child(tree: Path, shape: tuple[str, int, str], steps: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(HERE / "bench_train_ab.py"), "--child", *map(str, shape),
           "--steps", str(steps)]  # fmt: skip
    out = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def export(ref: str, into: Path) -> str:
    """`git archive` REF into `into`; return its full commit id."""
    sha = subprocess.run(["git", "rev-parse", ref], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()  # fmt: skip
    archive = subprocess.run(["git", "archive", sha], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return sha


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--against", help="commit, tag or branch to compare with")
    ap.add_argument("--rounds", type=int, default=3, help="alternations per shape")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per process")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast shapes too")
    ap.add_argument("--quick", action="store_true", help="small preset, L=512 only")
    ap.add_argument(
        "--shape",
        action="append",
        metavar="PRESET:L",
        help="only these shapes (repeatable), e.g. --shape paper:512",
    )
    ap.add_argument("--name", default="train-ab", help="results file name [train-ab]")
    ap.add_argument("--child", nargs=3, metavar=("PRESET", "L", "P"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        preset, L, precision = args.child
        return child(preset, int(L), precision, args.steps)
    if not args.against:
        ap.error("--against REF is required")
    from bench_train import matmul_roofline
    from profile_train import run_env

    # the peak of each precision timed (bf16 matmul is emulated, and slow, on AVX2-only CPUs)
    roof = {"fp32": matmul_roofline(torch.float32)}
    if args.bf16:
        roof["bf16"] = matmul_roofline(torch.bfloat16)
    shapes = [
        (preset, L, precision)
        for preset in (["small"] if args.quick else ["small", "paper"])
        for L in ([512] if args.quick else [512, 1024])
        for precision in (["fp32", "bf16"] if args.bf16 else ["fp32"])
        if not args.shape or f"{preset}:{L}" in args.shape
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="mt-ref-") as tmp:
        sha = export(args.against, Path(tmp))
        for shape in shapes:
            times: dict[str, list[float]] = {"ref": [], "new": []}
            flops = 0.0
            for _ in range(args.rounds):
                for name, tree in (("ref", Path(tmp)), ("new", ROOT)):
                    result = run_child(tree, shape, args.steps)
                    times[name].append(result["seconds"])
                    flops = result["flops_per_token"]
            med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
            tps = {k: 2 * shape[1] / v for k, v in med.items()}
            row = {
                "preset": shape[0], "L": shape[1], "precision": shape[2],
                "ref_tokens_per_s": round(tps["ref"]), "new_tokens_per_s": round(tps["new"]),
                "new_over_ref": round(tps["new"] / tps["ref"], 3),
                "new_mfu": round(tps["new"] * flops / roof[shape[2]], 3),
                "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
            }  # fmt: skip
            print(json.dumps(row), flush=True)
            rows.append(row)
    env = {
        **run_env(),
        "ref": f"{args.against} ({sha[:10]})",
        "roofline_tflops": {k: round(v / 1e12, 3) for k, v in roof.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"env": env, "rows": rows}, indent=1))
    lines = [
        "# This checkout against an older commit (bench/bench_train_ab.py)",
        "",
        "One training step, batch 2, random tokens; each version in its own process, "
        "alternating; median over the rounds.",
        "",
        "```",
        json.dumps(env, indent=1),
        "```",
        "",
        "| preset | L | precision | ref tokens/s | new tokens/s | new / ref | new MFU |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['L']} | {r['precision']} | {r['ref_tokens_per_s']} | "
            f"{r['new_tokens_per_s']} | {r['new_over_ref']:.2f}× | {r['new_mfu']:.0%} |"
        )
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
