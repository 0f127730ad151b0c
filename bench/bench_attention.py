"""Relative attention layer, forward+backward: skewed vs naive gather (time and peak memory).

H=8, Dh=64, B=1, per-head table with R=T rows. Each case runs in its own subprocess so that
peak RSS (ru_maxrss) measures that case alone; the number reported is the peak minus the RSS
right before the timed work (inputs included in the baseline). Run by hand:

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_attention.py [--naive-max 1024]

Writes bench/results/attention.md.
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

H, DH = 8, 64
RESULTS = Path(__file__).resolve().parent / "results"


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(impl: str, t: int, dtype: str, reps: int) -> dict:
    import torch

    from music_transformer.nn import attention
    from music_transformer.nn.attention import (
        chunked_relative_attention,
        naive_relative_attention,
        relative_attention,
    )
    from music_transformer.nn.attention_kernels import auto_chunk

    dt = getattr(torch, dtype)
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, H, t, DH, generator=g).to(dt).requires_grad_() for _ in range(3))
    e = torch.randn(H, t, DH, generator=g).to(dt).requires_grad_()
    fns = {
        "naive": lambda: naive_relative_attention(q, k, v, e),
        "skewed": lambda: relative_attention(q, k, v, e),
        "skewed-chunked": lambda: chunked_relative_attention(q, k, v, e, auto_chunk(1, H, t)),
        "chunked-kept": lambda: chunked_relative_attention(q, k, v, e, auto_chunk(1, H, t)),
    }
    # skewed-chunked recomputes every chunk in backward; chunked-kept keeps each chunk's
    # activations instead (what the model does while a layer's logits fit KEEP_LOGITS_BYTES)
    attention.KEEP_LOGITS_BYTES = 1 << 40 if impl == "chunked-kept" else 0
    base = _rss_mib()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fns[impl]().float().square().sum().backward()
        times.append(time.perf_counter() - start)
        for x in (q, k, v, e):
            x.grad = None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB → MiB
    best = sorted(times)[len(times) // 2] if len(times) > 2 else min(times)
    return {"impl": impl, "T": t, "dtype": dtype, "seconds": best, "peak_extra_mib": peak - base}


def run_case(impl: str, t: int, dtype: str, reps: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, str(t), dtype, str(reps)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        reason = (out.stderr.strip().splitlines() or ["killed"])[-1]
        return {"impl": impl, "T": t, "dtype": dtype, "error": reason}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", nargs=4)
    parser.add_argument("--lengths", default="512,1024,2048,4096")
    parser.add_argument(
        "--naive-max", default="float32=1024,bfloat16=2048", help="longest T for the gather"
    )
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--name", default="attention", help="results file name [attention]")
    args = parser.parse_args()
    if args.worker:
        impl, t, dtype, reps = args.worker
        print(json.dumps(worker(impl, int(t), dtype, int(reps))))
        return
    load_before = os.getloadavg()
    rows = []
    for dtype in args.dtypes.split(","):
        for t in map(int, args.lengths.split(",")):
            reps = 3 if t <= 2048 else 1
            naive_max = dict(x.split("=") for x in args.naive_max.split(","))
            impls = ["skewed", "skewed-chunked", "chunked-kept"]
            impls += ["naive"] if t <= int(naive_max.get(dtype, 0)) else []
            for impl in impls:
                row = run_case(impl, t, dtype, reps)
                print(row, flush=True)
                rows.append(row)
    write_report(rows, load_before, os.getloadavg(), args.naive_max, args.name)


def write_report(rows, load_before, load_after, naive_max, name: str) -> None:
    from profile_train import cpu_flags

    by = {(r["impl"], r["T"], r["dtype"]): r for r in rows}
    lines = [
        "# Relative attention, forward+backward (H=8, Dh=64, B=1, per-head table R=T)",
        "",
        f"CPU: {cpu_flags()}. OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '(unset)')}, "
        f"load average before/after: {load_before[0]:.2f} / "
        f"{load_after[0]:.2f} (2 cores shared with other engineers).",
        "Memory: peak RSS of the case's own process minus its RSS before the timed work.",
        f"The naive gather was run up to T = {naive_max} only: in fp32 at T=2048 its (H, T, T, Dh)",
        "table is 8.6 GB before its gradient, more than the shared machine can spare.",
        "`skewed-chunked` recomputes every chunk in backward, `chunked-kept` keeps each chunk's",
        "activations; the model chunks when T exceeds `auto_chunk` (fp32 logits of one chunk",
        "≤ 16 MiB), i.e. here from T=1024 on, and keeps while a layer's fp32 logits fit",
        "`attention.KEEP_LOGITS_BYTES` (512 MiB: here up to T=4096), else recomputes.",
        "",
        "| dtype | T | impl | seconds | peak extra MiB | naive/impl memory | naive/impl time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['dtype']} | {r['T']} | {r['impl']} | failed: {r['error']} | | | |")
            continue
        naive = by.get(("naive", r["T"], r["dtype"]))
        mem_ratio = time_ratio = ""
        if naive and "error" not in naive and r["impl"] != "naive":
            mem_ratio = f"{naive['peak_extra_mib'] / max(r['peak_extra_mib'], 1):.1f}×"
            time_ratio = f"{naive['seconds'] / r['seconds']:.1f}×"
        lines.append(
            f"| {r['dtype']} | {r['T']} | {r['impl']} | {r['seconds']:.3f} | "
            f"{r['peak_extra_mib']:.0f} | {mem_ratio} | {time_ratio} |"
        )
    RESULTS.mkdir(exist_ok=True)
    sys.path.insert(0, str(RESULTS.parents[1]))
    from midi_data.files import atomic_write_text

    atomic_write_text(RESULTS / f"{name}.md", "\n".join(lines) + "\n")
    atomic_write_text(RESULTS / f"{name}.json", json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
