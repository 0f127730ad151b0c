"""Decoding speed: ms per token with the KV cache vs recomputing the whole prefix every step.

`small` preset (4 layers, d_model 256, 8 heads), B=1, untrained weights (speed does not depend
on them), contexts 256, 1024, 4096. Cached: prefill the context once, then each step feeds one
token and trims the cache to keep the context length constant (the sliding-window sampler).
Recompute: each step runs the full forward over the last `context` tokens, as public ports do.
Both are measured side by side in one process, fp32. Run by hand:

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_decode.py

Writes bench/results/decode.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from midi_data.files import atomic_write_text  # noqa: E402
from music_transformer.nn import build_model  # noqa: E402
from music_transformer.nn.config import make_config  # noqa: E402

VOCAB = 437


@torch.no_grad()
def cached_ms(model, context: int, steps: int) -> float:
    tokens = torch.randint(0, VOCAB, (1, context))
    logits, cache = model(tokens)
    token = logits[:, -1].argmax(-1, keepdim=True)
    for _ in range(3):  # warm-up: first in-place appends, allocator
        logits, cache = model(token, cache=cache.trim(context - 1))
    start = time.perf_counter()
    for _ in range(steps):
        logits, cache = model(token, cache=cache.trim(context - 1))
        token = logits[:, -1].argmax(-1, keepdim=True)
    return (time.perf_counter() - start) / steps * 1000


@torch.no_grad()
def recompute_ms(model, context: int, steps: int) -> float:
    tokens = torch.randint(0, VOCAB, (1, context))
    model(tokens)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        logits, _ = model(tokens)
        token = logits[:, -1].argmax(-1, keepdim=True)
        tokens = torch.cat([tokens[:, 1:], token], dim=1)
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contexts", default="256,1024,4096")
    parser.add_argument("--preset", default="small")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model(make_config("transformer", args.preset, VOCAB)).eval()
    load_before = os.getloadavg()
    rows = []
    for context in map(int, args.contexts.split(",")):
        cached = cached_ms(model, context, steps=100)
        recompute = recompute_ms(model, context, steps=max(3, 2048 // context))
        rows.append((context, cached, recompute))
        print(f"context {context}: cached {cached:.2f} ms, recompute {recompute:.1f} ms")
    lines = [
        f"# Decoding, `{args.preset}` preset, B=1, fp32: ms per token",
        "",
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}, "
        f"{torch.get_num_threads()} torch threads, load average before/after: "
        f"{load_before[0]:.2f} / {os.getloadavg()[0]:.2f} (2 cores shared with other engineers).",
        "",
        "| context | cached ms/token | recompute ms/token | speed-up |",
        "|---|---|---|---|",
    ]
    lines += [f"| {c} | {a:.2f} | {b:.1f} | {b / a:.0f}× |" for c, a, b in rows]
    atomic_write_text(ROOT / "bench" / "results" / "decode.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
