"""Generation speed of the KV-cached sampler (issue 5 benchmark). Run by hand, not in CI.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_generate.py            # full
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_generate.py --quick    # ~1 min

Measures, on the `small` preset with random weights (speed does not depend on the weights):
1. tokens/s at batch 1 and 16 for 1,024 and 16,384 new tokens (summed over the batch);
2. ms per token against the position in a long generation (flat once the window slides);
3. ms per token of a decoder that recomputes the whole prefix each step (public ports).
Writes bench/results/generate.md and generate.json, with the OMP setting and machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from music_transformer.calibration import choose_decode_threads, choose_precision
from music_transformer.generation.reference import generate_without_cache
from music_transformer.generation.sampler import generate
from music_transformer.generation.settings import SamplingSettings
from music_transformer.nn import build_model
from music_transformer.nn.config import make_config

# 437: the output width the recorded results were measured with (a MIDI-Like performance
# vocabulary); the shipped `performance` tokenizer has 391 (MODEL_CARD.md).
VOCAB = 437
WINDOW = 1024  # the small preset's relative span and a typical training length
RESULTS = Path(__file__).resolve().parent / "results"


def timed_generate(
    model, batch: int, new: int, precision: str, primer_len: int = 64, threads: int | None = None
):
    """Run one generation (decoding steps on `threads` intra-op threads, default: as
    calibration measured); return (seconds, per-step timestamps)."""
    primers = [
        [1] + [(7 * i + j) % (VOCAB - 3) + 3 for j in range(primer_len - 1)] for i in range(batch)
    ]
    stamps: list[float] = []
    t0 = time.perf_counter()
    settings = SamplingSettings(tokens=new, seed=0, window=WINDOW, precision=precision)
    out = generate(
        model,
        primers,
        settings,
        progress=lambda n, s: stamps.append(time.perf_counter()),
        threads=threads,
    )
    elapsed = time.perf_counter() - t0
    assert all(len(r.tokens) == new for r in out)
    return elapsed, [s - t0 for s in stamps]


def median_ms(stamps: list[float], a: int, b: int) -> float:
    """Median ms of the steps a..b-1, counted from 1 (step s took stamps[s-1] - stamps[s-2];
    step 1 includes the prefill and is never counted). The median shrugs off the stalls that
    other processes cause on this shared machine."""
    steps = [stamps[s - 1] - stamps[s - 2] for s in range(max(a, 2), b)]
    return 1000 * statistics.median(steps)


def ms_per_token_by_position(stamps: list[float], buckets: list[tuple[int, int]]):
    """Mean and median ms per step over each [a, b) range of steps."""
    rows = []
    for a, b in buckets:
        if b <= len(stamps) and a >= 1:
            mean = 1000 * (stamps[b - 1] - stamps[a - 1]) / (b - a)
            rows.append({"from": a, "to": b, "ms": mean, "median_ms": median_ms(stamps, a, b)})
    return rows


def recompute_ms(model, context: int, steps: int) -> float:
    """Median ms per token when every step re-runs the model over the `context`-token prefix."""
    primer = [(5 * j) % (VOCAB - 3) + 3 for j in range(context)]
    one = SamplingSettings(tokens=1, temperature=0.0, window=context, precision="fp32")
    generate_without_cache(model, primer, one)  # warm-up
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        generate_without_cache(model, primer, one)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def cached_ms(model, context: int, steps: int, precision: str) -> float:
    """Median ms per token of the cached sampler, batch 1, `context` tokens already cached."""
    primer = [(5 * j) % (VOCAB - 3) + 3 for j in range(context)]
    stamps: list[float] = []
    settings = SamplingSettings(
        tokens=steps + 1, seed=0, window=max(context + steps + 1, 2), precision=precision
    )
    generate(model, [primer], settings, progress=lambda n, s: stamps.append(time.perf_counter()))
    return median_ms(stamps, 2, len(stamps) + 1)  # excludes the prefill (step 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (1,024 and 4,096)")
    parser.add_argument("--precision", default="fp32,bf16", help="comma list: fp32,bf16")
    parser.add_argument("--batches", default="1,16")
    parser.add_argument("--out", default=str(RESULTS / "generate"), help="path stem")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = build_model(make_config("transformer", "small", VOCAB)).eval()
    precisions = args.precision.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    lengths = [1024, 4096] if args.quick else [1024, 16384]
    env = {
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "load_before": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "preset": "small",
        "parameters": sum(p.numel() for p in model.parameters()),
        "window": WINDOW,
        "decode_threads": choose_decode_threads(torch.device("cpu"), model.config, 1, WINDOW),
    }
    print(env, flush=True)
    generate(model, [[1, 2, 3]], SamplingSettings(tokens=32, seed=0))  # warm-up

    # Every batch size and length at the precision "auto" picks for it; the other precision
    # at the shortest length only (for the comparison, without doubling the long runs).
    runs = []
    cpu = torch.device("cpu")
    for batch in batches:
        auto = choose_precision("auto", cpu, "decode", model.config, batch=batch, length=WINDOW)
        auto = auto.name
        default_threads = choose_decode_threads(cpu, model.config, batch, WINDOW)
        for precision in precisions:
            for new in lengths if precision == auto else lengths[:1]:
                runs.append((precision, batch, new, precision == auto, default_threads))
        # the same at the shortest length with decoding steps on every thread (the old way)
        runs.append((auto, batch, lengths[0], True, torch.get_num_threads()))
    throughput, positions = [], {}
    for precision, batch, new, is_auto, threads in runs:
        # the sampler would ask calibration for its decoding threads: here the bench decides
        elapsed, stamps = timed_generate(model, batch, new, precision, threads=threads)
        row = {
            "precision": precision,
            "auto": is_auto,
            "decode_threads": threads,
            "batch": batch,
            "new_tokens": new,
            "seconds": round(elapsed, 2),
            "tokens_per_s": round(batch * new / elapsed, 1),
            "median_step_ms": round(median_ms(stamps, 2, len(stamps) + 1), 2),
        }
        row["tokens_per_s_at_median_step"] = round(1000 * batch / row["median_step_ms"], 1)
        throughput.append(row)
        print(row, flush=True)
        if new == max(lengths) and threads == default_threads:
            buckets = sorted(
                {(1, 256), (768, 1024), (1024, 1280), (4096 - 256, 4096), (new - 256, new)}
            )
            positions[f"{precision} B={batch}"] = ms_per_token_by_position(stamps, buckets)
            print(positions[f"{precision} B={batch}"], flush=True)

    contexts = [256, 512, 1024] if args.quick else [256, 512, 1024, 2048]
    versus = []
    for context in contexts:
        steps = 9 if context >= 1024 else 17
        rec = recompute_ms(model, context, steps)
        cac = cached_ms(model, context, 64, "fp32")
        versus.append(
            {
                "context": context,
                "recompute_ms": round(rec, 2),
                "cached_ms": round(cac, 2),
                "speedup": round(rec / cac, 1),
            }
        )
        print(versus[-1], flush=True)

    env["load_after"] = os.getloadavg()
    result = {
        "env": env,
        "throughput": throughput,
        "by_position": positions,
        "vs_recompute": versus,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(render(result))
    print(f"wrote {out.with_suffix('.md')}")


def render(r: dict) -> str:
    env = r["env"]
    lines = [
        "# Generation speed (bench/bench_generate.py)",
        "",
        f"{env['date']}, torch {env['torch']}, {env['threads']} threads, "
        f"OMP_WAIT_POLICY={env['OMP_WAIT_POLICY']}, load average before "
        f"{env['load_before'][0]:.2f} / after {env['load_after'][0]:.2f} (1 min; 2 cores shared "
        f"with other work). Model: `{env['preset']}` preset, {env['parameters']:,} parameters, "
        f"random weights, window {env['window']} tokens, temperature 1. Decoding steps run on "
        f"{env['decode_threads']} intra-op thread(s) (the prefill on all); rows marked * "
        f"decode on all {env['threads']} for comparison.",
        "",
        "## Tokens per second (summed over the batch)",
        "",
        "| precision | batch | new tokens | seconds | tokens/s | median ms/step "
        "| tokens/s at the median step |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in r["throughput"]:
        lines.append(
            f"| {t['precision']}{' (auto)' if t['auto'] else ''}"
            f"{' *' if t['decode_threads'] != env['decode_threads'] else ''} | {t['batch']} "
            f"| {t['new_tokens']:,} | {t['seconds']} "
            f"| {t['tokens_per_s']:,.0f} | {t['median_step_ms']} "
            f"| {t['tokens_per_s_at_median_step']:,.0f} |"
        )
    lines += [
        "",
        "## ms per step against the position in the generation: mean (median)",
        "",
    ]
    lines += [
        "| run | "
        + " | ".join(f"steps {b['from']}–{b['to']}" for b in next(iter(r["by_position"].values())))
        + " |"
    ]
    lines += ["|---" * (1 + len(next(iter(r["by_position"].values())))) + "|"]
    for name, rows in r["by_position"].items():
        cells = [f"{b['ms']:.2f} ({b['median_ms']:.2f})" for b in rows]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Cached sampler against recomputing the prefix every step (batch 1, fp32, medians)",
        "",
        "| context | recompute ms/token | cached ms/token | speed-up |",
        "|---|---|---|---|",
    ]
    for v in r["vs_recompute"]:
        lines.append(
            f"| {v['context']:,} | {v['recompute_ms']} | {v['cached_ms']} | {v['speedup']}× |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
