"""Attention sinks: CPU cost per decoded token of sliding with sinks, per token vs per hop.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_sinks.py [--model piano-transformer]
        [--batch 4] [--tokens 2000] [--sinks 256] [--repeats 2]

Continues `batch` random primers of 400 tokens with the model's own weights for `tokens` new
tokens in a 1,024-token window (so most steps run with a full window), one decoding thread,
fp32, temperature 1, no guard, and times three variants in turn, `repeats` times each
(interleaved, the lowest CPU time kept): no sinks (the window trims, no copy), sinks sliding
every token (hop 1: a copy of the window per token, the first implementation) and sinks
sliding once per hop (`sampler.sink_hop`). The outputs of the first two are not compared: the
contexts differ by design. Writes bench/results/sinks.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from midi_data.files import atomic_write_text  # noqa: E402
from music_transformer.generation import sampler  # noqa: E402
from music_transformer.generation.loading import load_model  # noqa: E402
from music_transformer.generation.settings import SamplingSettings  # noqa: E402


def run(loaded, primers, settings, hop_one: bool) -> tuple[float, float, int]:
    """CPU seconds, wall seconds and new tokens of one batch."""
    original = sampler.sink_hop
    if hop_one:
        sampler.sink_hop = lambda window, sinks: 1
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        out = sampler.generate(loaded.model, primers, settings, threads=1)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        sampler.sink_hop = original
    return cpu, wall, sum(len(g.tokens) for g in out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="piano-transformer")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=2000)
    ap.add_argument("--sinks", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "bench/results/sinks.md"))
    args = ap.parse_args()
    torch.manual_seed(0)
    loaded = load_model(args.model, device="cpu")
    vocab = loaded.model.config.vocab_size
    primers = [torch.randint(4, vocab, (400,)).tolist() for _ in range(args.batch)]
    base = SamplingSettings(
        tokens=args.tokens, temperature=1.0, seed=1, window=1024, precision="fp32",
        grammar=False, guard=False,
    )  # fmt: skip
    variants = {
        "no sinks": (base, False),
        "sinks, slide every token (hop 1)": (replace(base, sink_tokens=args.sinks), True),
        f"sinks, slide every hop ({sampler.sink_hop(1024, args.sinks)})": (
            replace(base, sink_tokens=args.sinks), False,
        ),
    }  # fmt: skip
    best: dict[str, tuple[float, float, int]] = {}
    for _ in range(args.repeats):
        for name, (settings, hop_one) in variants.items():
            got = run(loaded, primers, settings, hop_one)
            if name not in best or got[0] < best[name][0]:
                best[name] = got
            print(name, f"{got[0]:.1f} s CPU, {got[1]:.1f} s wall, {got[2]} tokens", flush=True)
    plain = best["no sinks"][0] / best["no sinks"][2]
    from profile_train import cpu_flags  # the same CPU line as the other benchmarks

    lines = [
        "# Attention sinks: CPU cost per token",
        "",
        f"`python bench/bench_sinks.py --model {args.model} --batch {args.batch} --tokens "
        f"{args.tokens} --sinks {args.sinks} --repeats {args.repeats}`; {cpu_flags()}; "
        f"torch {torch.__version__}; one decoding thread, fp32, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; lowest of "
        f"{args.repeats} interleaved runs.",
        "",
        "| variant | CPU s | wall s | new tokens | CPU ms/token | × no sinks |",
        "|---|---|---|---|---|---|",
    ]
    for name, (cpu, wall, n) in best.items():
        per = cpu / n
        lines.append(
            f"| {name} | {cpu:.1f} | {wall:.1f} | {n} | {1000 * per:.2f} | {per / plain:.2f} |"
        )
    atomic_write_text(Path(args.out), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
