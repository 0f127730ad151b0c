"""Where one training step's CPU time goes, by kind of work, run by hand:

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/profile_train.py [--bf16] [--compile]

For the `small` and `paper` presets at L = 512 and 1024 (batch 2 of random tokens, the
trainer's step: forward, loss, backward, clipping, fused AdamW) torch.profiler records two
steps after a warm-up one; each aten op's self CPU time is put in one bucket (matmul, SDPA
forward, softmax, copies/casts/fills, elementwise, dropout, LayerNorm, optimizer, other).
Everything but "matmul" and "SDPA forward" (which does its own matmuls) is the work outside
the matmuls that issue 20 asks to cut. `--compile` also times the same step under
torch.compile (inductor), alternating with eager, to see whether fusion pays on this CPU.
Results go to bench/results/profile-train.md and .json (or --name NAME), with the CPU's flags.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from music_transformer.nn import build_model
from music_transformer.nn.config import make_config

VOCAB = 437
BATCH = 2
RESULTS = Path(__file__).parent / "results"
BUCKETS = {  # aten op name (without "aten::") → bucket
    "matmul": ("mm", "addmm", "bmm", "baddbmm", "addbmm"),
    "SDPA forward": ("_scaled_dot_product_flash_attention_for_cpu",),
    "softmax": ("_softmax", "_softmax_backward_data", "_log_softmax",
                "_log_softmax_backward_data"),
    "copies, casts, fills": ("copy_", "cat", "fill_", "zero_", "clone", "contiguous",
                             "_to_copy", "empty_strided", "index", "index_select",
                             "embedding_dense_backward", "constant_pad_nd"),
    "elementwise": ("add", "add_", "mul", "mul_", "div", "div_", "sub", "masked_fill",
                    "masked_fill_", "where", "threshold_backward", "clamp_min", "relu",
                    "gelu", "gelu_backward", "sum", "neg", "sin", "cos", "exp"),
    "dropout": ("bernoulli_", "native_dropout", "native_dropout_backward"),
    "LayerNorm": ("native_layer_norm", "native_layer_norm_backward"),
    "optimizer, clipping": ("_fused_adamw_", "_foreach_norm", "_foreach_mul_",
                            "linalg_vector_norm", "stack", "clamp"),
}  # fmt: skip
BUCKET_OF = {op: bucket for bucket, ops in BUCKETS.items() for op in ops}


def cpu_flags() -> str:
    """The flags that decide matmul speed here (avx2, avx512*, amx*), from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    line = next((x for x in text.splitlines() if x.startswith("flags")), "")
    wanted = [f for f in line.split() if f.startswith(("avx2", "avx512", "amx", "fma"))]
    name = next((x.split(":", 1)[1].strip() for x in text.splitlines() if "model name" in x), "")
    return f"{name}: {' '.join(sorted(set(wanted)))}"


def run_env() -> dict:
    """What a speed figure needs beside it: CPU flags, torch, threads, wait policy, load."""
    return {
        "cpu": cpu_flags(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def make_step(model, L: int, amp: torch.dtype | None):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    tokens = torch.randint(0, VOCAB, (BATCH, L + 1))

    def step(forward=model) -> None:
        with torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
            logits, _ = forward(tokens[:, :-1])  # (B, L, V)
        loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def profile_step(step, steps: int = 2) -> tuple[float, dict[str, float], list[tuple]]:
    """Seconds per step, self CPU seconds per bucket per step, and the top ops."""
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        wall = (time.perf_counter() - t0) / steps
    buckets: dict[str, float] = defaultdict(float)
    ops = []
    for e in prof.key_averages():
        if not e.key.startswith("aten::"):
            continue
        name = e.key.removeprefix("aten::")
        seconds = e.self_cpu_time_total / 1e6 / steps
        buckets[BUCKET_OF.get(name, "other")] += seconds
        ops.append((name, round(seconds, 4), e.count // steps))
    ops.sort(key=lambda x: -x[1])
    return wall, dict(buckets), ops[:12]


def compile_ratio(model, L: int, amp: torch.dtype | None, rounds: int = 3) -> dict:
    step = make_step(model, L, amp)
    compiled = torch.compile(model)
    t0 = time.perf_counter()
    step(compiled)
    first = time.perf_counter() - t0
    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(rounds):
        for name, forward in (("eager", model), ("compiled", compiled)):
            t0 = time.perf_counter()
            step(forward)
            times[name].append(time.perf_counter() - t0)
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return {"compile_s": round(first, 1), **{f"{k}_s": round(v, 3) for k, v in med.items()},
            "eager_over_compiled": round(med["eager"] / med["compiled"], 3)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bf16", action="store_true", help="profile under bf16 autocast too")
    ap.add_argument("--compile", action="store_true", help="time torch.compile vs eager too")
    ap.add_argument("--quick", action="store_true", help="small preset, L=512 only")
    ap.add_argument("--name", default="profile-train", help="results file name [profile-train]")
    args = ap.parse_args()
    torch.manual_seed(0)
    precisions = [None, torch.bfloat16] if args.bf16 else [None]
    rows = []
    for preset in ["small"] if args.quick else ["small", "paper"]:
        for L in [512] if args.quick else [512, 1024]:
            for amp in precisions:
                cfg = make_config("transformer", preset, VOCAB, max_rel_dist=max(L, 1024))
                model = build_model(cfg).train()
                wall, buckets, ops = profile_step(make_step(model, L, amp))
                total = sum(buckets.values())
                row = {
                    "preset": preset, "L": L, "precision": "bf16" if amp else "fp32",
                    "seconds_per_step": round(wall, 3), "tokens_per_s": round(BATCH * L / wall),
                    "share": {k: round(v / total, 3) for k, v in sorted(buckets.items())},
                    "top_ops": ops,
                }  # fmt: skip
                if args.compile:
                    row["compile"] = compile_ratio(model, L, amp)
                print(json.dumps({k: v for k, v in row.items() if k != "top_ops"}), flush=True)
                rows.append(row)
    env = run_env()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps({"env": env, "rows": rows}, indent=1))
    (RESULTS / f"{args.name}.md").write_text(to_markdown(env, rows))
    print(to_markdown(env, rows))


def to_markdown(env: dict, rows: list[dict]) -> str:
    names = [*BUCKETS, "other"]
    lines = [
        "# Where a training step's CPU time goes (bench/profile_train.py)",
        "",
        "Self CPU time of aten ops over two profiled steps (batch 2, random tokens), share per "
        "bucket. `matmul` and `SDPA forward` are the matmul work; the rest is what fusion could "
        "cut.",
        "",
        "```",
        json.dumps(env, indent=1),
        "```",
        "",
        "| preset | L | precision | s/step | tokens/s | " + " | ".join(names) + " |",
        "|---|---|---|---|---|" + "---|" * len(names),
    ]
    for r in rows:
        shares = " | ".join(f"{r['share'].get(n, 0):.0%}" for n in names)
        lines.append(
            f"| {r['preset']} | {r['L']} | {r['precision']} | {r['seconds_per_step']} | "
            f"{r['tokens_per_s']} | {shares} |"
        )
    compiled = [r for r in rows if "compile" in r]
    if compiled:
        lines += ["", "| preset | L | precision | compile s | eager s/step | compiled s/step "
                  "| eager / compiled |", "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in compiled:
            c = r["compile"]
            lines.append(
                f"| {r['preset']} | {r['L']} | {r['precision']} | {c['compile_s']} | "
                f"{c['eager_s']} | {c['compiled_s']} | {c['eager_over_compiled']} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
