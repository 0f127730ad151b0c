"""Training throughput and model FLOP utilization (MFU), run by hand:

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_train.py [--quick]

For the `small` and `paper` presets at L = 512 and 1024, fp32 and bf16 autocast, one full
training step (forward, backward, clipping, AdamW) on batch 2 of random tokens is timed; MFU is
model FLOPs per second over a matmul roofline measured in the same run (same threads, same
dtype). The reference is a straightforward public-port-style model of the same size:
nn.TransformerEncoderLayer blocks whose self-attention is replaced by explicit relative
attention (Q·Eᵀ, pad/reshape skew, mask, softmax, dropout, ·V), in fp32.

Model FLOPs per trained token (PaLM's convention, causality not discounted):
6·N (N = parameters except the embedding table) + 6·n_layers·L·D·k, with k = 3 for relative
attention (QKᵀ, Q·Eᵀ and AV, each 2·L·D per token forward) and 2 for absolute.
Results go to bench/results/train.md and train.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from music_transformer.nn import build_model
from music_transformer.nn.config import make_config
from music_transformer.runtime import cpu_has_amx

# 437: the output width the recorded results were measured with (a MIDI-Like performance
# vocabulary); the shipped `performance` tokenizer has 391 (MODEL_CARD.md).
VOCAB = 437
BATCH = 2
RESULTS = Path(__file__).parent / "results"


def matmul_roofline(dtype: torch.dtype, n: int = 2048, seconds: float = 2.0) -> float:
    """Best sustained FLOP/s of an n×n @ n×n matmul in `dtype` on this process's threads."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    for _ in range(3):
        a @ b
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t0))
    return best


def model_flops_per_token(model: nn.Module, n_layers: int, d_model: int, L: int, k: int) -> float:
    embed = sum(p.numel() for n, p in model.named_parameters() if "embed" in n)
    n = sum(p.numel() for p in model.parameters()) - embed
    return 6 * n + 6 * n_layers * L * d_model * k


class SkewedEncoderLayer(nn.TransformerEncoderLayer):
    """Public-port style: nn.TransformerEncoderLayer (post-LN, ReLU, dropout everywhere) whose
    self-attention block is explicit relative attention with the skewing trick."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, max_rel: int, dropout: float):
        super().__init__(d_model, n_heads, d_ff, dropout, batch_first=True)
        self.h, self.dh = n_heads, d_model // n_heads
        self.rel = nn.Parameter(torch.randn(max_rel, self.dh) * self.dh**-0.5)
        self.attn_drop = nn.Dropout(dropout)

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal=False):
        b, t, d = x.shape
        mha = self.self_attn
        qkv = F.linear(x, mha.in_proj_weight, mha.in_proj_bias)  # (B, T, 3D)
        q, k, v = qkv.view(b, t, 3, self.h, self.dh).permute(2, 0, 3, 1, 4)  # (B, H, T, Dh)
        e = self.rel[-t:] if t <= len(self.rel) else F.pad(self.rel, (0, 0, t - len(self.rel), 0))
        qe = q @ e.T  # (B, H, T, T): column j ↔ distance T-1-j
        qe = F.pad(qe, (1, 0))  # (B, H, T, T+1)
        srel = qe.reshape(b, self.h, t + 1, t)[:, :, 1:]  # (B, H, T, T) skewed
        logits = (q @ k.transpose(-1, -2) + srel) / math.sqrt(self.dh)  # (B, H, T, T)
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        logits = logits.masked_fill(causal, float("-inf"))
        probs = self.attn_drop(torch.softmax(logits, dim=-1))
        y = (probs @ v).transpose(1, 2).reshape(b, t, d)  # (B, T, D)
        return self.dropout1(mha.out_proj(y))


class ReferenceModel(nn.Module):
    def __init__(self, vocab: int, n_layers: int, d_model: int, n_heads: int, d_ff: int, r: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.layers = nn.ModuleList(
            SkewedEncoderLayer(d_model, n_heads, d_ff, r, 0.1) for _ in range(n_layers)
        )
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens):
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.head(x), None


def time_training_step(
    model: nn.Module, L: int, amp: torch.dtype | None, steps: int, fused: bool = False
) -> float:
    """Median seconds per training step (after one warm-up step). `fused`: the fused AdamW
    kernel our trainer uses (the reference keeps torch's default, as public ports do)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused)
    tokens = torch.randint(0, VOCAB, (BATCH, L + 1))
    model.train()
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
            logits, _ = model(tokens[:, :-1])  # (B, L, V)
        loss = F.cross_entropy(logits.float().reshape(-1, VOCAB), tokens[:, 1:].reshape(-1))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small preset, L=512 only")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    load_before = os.getloadavg()
    roof = {"fp32": matmul_roofline(torch.float32), "bf16": matmul_roofline(torch.bfloat16)}
    rows = []
    presets = ["small"] if args.quick else ["small", "paper"]
    lengths = [512] if args.quick else [512, 1024]
    for preset in presets:
        for L in lengths:
            for impl, precision in [("ours", "fp32"), ("ours", "bf16"), ("reference", "fp32")]:
                cfg = make_config("transformer", preset, VOCAB, max_rel_dist=max(L, 1024))
                if impl == "ours":
                    model = build_model(cfg)
                else:
                    model = ReferenceModel(
                        VOCAB, cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_ff, cfg.max_rel_dist
                    )
                amp = torch.bfloat16 if precision == "bf16" else None
                sec = time_training_step(model, L, amp, args.steps, fused=impl == "ours")
                flops = model_flops_per_token(model, cfg.n_layers, cfg.d_model, L, 3)
                tps = BATCH * L / sec
                row = dict(
                    preset=preset, L=L, impl=impl, precision=precision, batch=BATCH,
                    seconds_per_step=round(sec, 3), tokens_per_s=round(tps),
                    mfu=round(tps * flops / roof[precision], 3),
                )  # fmt: skip
                print(json.dumps(row), flush=True)
                rows.append(row)
                del model
    env = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "cpu_amx": cpu_has_amx(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "machine": platform.processor() or platform.machine(),
        "roofline_tflops": {k: round(v / 1e12, 3) for k, v in roof.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    name = "train_quick" if args.quick else "train"
    (RESULTS / f"{name}.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    (RESULTS / f"{name}.md").write_text(to_markdown(env, rows))
    print(to_markdown(env, rows))


def to_markdown(env: dict, rows: list[dict]) -> str:
    lines = [
        "# Training throughput (bench/bench_train.py)",
        "",
        "One training step (fwd + bwd + clip + AdamW), batch 2, random tokens, median of "
        "timed steps. MFU = model FLOPs/s ÷ matmul roofline of the same dtype measured in "
        "this run.",
        "",
        "```",
        json.dumps(env, indent=1),
        "```",
        "",
        "| preset | L | implementation | precision | s/step | tokens/s | MFU |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['preset']} | {r['L']} | {r['impl']} | {r['precision']} | "
            f"{r['seconds_per_step']} | {r['tokens_per_s']} | {r['mfu']:.0%} |"
        )
    by = {(r["preset"], r["L"], r["impl"], r["precision"]): r["tokens_per_s"] for r in rows}
    lines += [
        "",
        "| preset | L | bf16 / fp32 (ours) | ours best / reference |",
        "|---|---|---|---|",
    ]
    for p, L in sorted({(r["preset"], r["L"]) for r in rows}):
        fp, bf, ref = (
            by[(p, L, "ours", "fp32")],
            by[(p, L, "ours", "bf16")],
            by[(p, L, "reference", "fp32")],
        )
        lines.append(f"| {p} | {L} | {bf / fp:.2f}× | {max(bf, fp) / ref:.2f}× |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
