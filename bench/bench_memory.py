"""Longest sequence the `paper` preset can train on (one forward+backward, B=1) in 16 GiB.

Each length runs in its own subprocess under an address-space limit of 16 GiB (RLIMIT_AS —
stricter than resident memory, so a pass is conservative); the peak RSS is reported too. Modes:
plain (automatic query chunking only), and + activation checkpointing of every block; both fp32
and under bf16 autocast. Run by hand:

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_memory.py [--lengths 2048,4096,8192]

Writes bench/results/memory.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

LIMIT = 16 << 30
RESULTS = Path(__file__).resolve().parent / "results"
# 437: the output width the recorded results were measured with (a MIDI-Like performance
# vocabulary); the shipped `performance` tokenizer has 391 (MODEL_CARD.md).
VOCAB = 437


def worker(t: int, checkpointing: bool, bf16: bool) -> dict:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))
    import torch

    from music_transformer.nn import build_model
    from music_transformer.nn.config import make_config

    config = make_config("transformer", "paper", VOCAB, grad_checkpoint=checkpointing)
    model = build_model(config).train()
    tokens = torch.randint(0, VOCAB, (1, t + 1))
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits, _ = model(tokens[:, :-1])
    loss = torch.nn.functional.cross_entropy(logits.float().view(-1, VOCAB), tokens[0, 1:])
    loss.backward()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB → GiB
    return {"T": t, "checkpointing": checkpointing, "bf16": bf16, "seconds": seconds,
            "peak_rss_gib": peak, "ok": True}  # fmt: skip


def run_case(t: int, checkpointing: bool, bf16: bool) -> dict:
    cmd = [sys.executable, __file__, "--worker", str(t), str(int(checkpointing)), str(int(bf16))]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        reason = (out.stderr.strip().splitlines() or ["killed"])[-1][:120]
        return {"T": t, "checkpointing": checkpointing, "bf16": bf16, "ok": False, "error": reason}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", nargs=3, type=int)
    parser.add_argument("--lengths", default="2048,4096,8192")
    parser.add_argument("--modes", default="ckpt-bf16,plain-bf16,ckpt-fp32")
    parser.add_argument("--cases", help="T:mode,... instead of lengths × modes")
    args = parser.parse_args()
    if args.worker:
        t, ckpt, bf16 = args.worker
        print(json.dumps(worker(t, bool(ckpt), bool(bf16))))
        return
    load_before = os.getloadavg()
    if args.cases:
        cases = [(int(c.split(":")[0]), c.split(":")[1]) for c in args.cases.split(",")]
    else:
        cases = [(t, m) for m in args.modes.split(",") for t in map(int, args.lengths.split(","))]
    rows, failed = [], set()
    for t, mode in cases:
        if mode in failed:
            continue  # a shorter length already did not fit
        row = run_case(t, mode.startswith("ckpt"), mode.endswith("bf16"))
        print(row, flush=True)
        rows.append(row)
        if not row["ok"]:
            failed.add(mode)
    write_report(rows, load_before, os.getloadavg())


def write_report(rows, load_before, load_after) -> None:
    lines = [
        "# Longest trainable sequence, `paper` preset (6 layers, d_model 512, 8 heads, R=2048)",
        "",
        "One forward+backward at B=1 under a 16 GiB address-space limit (RLIMIT_AS).",
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, 2 torch threads, "
        f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} "
        "(2 cores shared with other engineers).",
        "Attention always uses automatic query chunking (recomputed in backward).",
        "",
        "| T | activation checkpointing | bf16 autocast | fits | seconds | peak RSS GiB |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ok = "yes" if r["ok"] else f"no ({r.get('error', '')})"
        secs = f"{r['seconds']:.1f}" if r["ok"] else ""
        peak = f"{r['peak_rss_gib']:.2f}" if r["ok"] else ""
        lines.append(f"| {r['T']} | {r['checkpointing']} | {r['bf16']} | {ok} | {secs} | {peak} |")
    sys.path.insert(0, str(RESULTS.parents[1]))
    from midi_data.files import atomic_write_text

    atomic_write_text(RESULTS / "memory.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
