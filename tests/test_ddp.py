"""torchrun with 2 CPU processes (gloo) on the tiny preset against a 1-process run with the
same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from music_transformer.checkpoint import load_checkpoint, read_meta
from music_transformer.training import read_metrics

COMMON = ["--preset", "tiny", "--seq-len", "48", "--max-steps", "24", "--lr", "3e-3",
          "--warmup-steps", "4", "--eval-every", "12", "--save-every", "12", "--seed", "3",
          "--device", "cpu", "--precision", "fp32", "--quiet"]  # fmt: skip


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    # One thread per process: two ranks share this machine's two cores.
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@torch.no_grad()
def _valid_nll(run: Path, data_dir: Path, seq_len: int, batch_size: int, limit: int) -> float:
    """Validation NLL of the run's last checkpoint, recomputed in this one process."""
    from midi_data import eval_windows, open_data

    loaded = load_checkpoint(run / "last")
    data = open_data(data_dir)
    total, count = 0.0, 0
    for w in eval_windows(data.pieces("valid"), seq_len)[: limit * batch_size]:
        w = torch.as_tensor(w)[None]  # (1, n): one window at a time, no padding
        logits, _ = loaded.model(w[:, :-1])
        target = w[:, 1:].reshape(-1)
        nll = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), target, reduction="sum"
        )
        total, count = total + float(nll), count + target.numel()
    return total / count


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process(bach_data_dir: Path, tmp_path) -> None:
    data = ["--data", str(bach_data_dir)]
    ddp = _run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2", "-m", "cli", "train", *data, "--out", str(tmp_path / "ddp"),
                "--batch-size", "2", *COMMON])  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stdout.count("Trained to step 24") == 1  # rank 0 alone reports (and writes)
    single = _run([sys.executable, "-m", "cli", "train", *data, "--out", str(tmp_path / "one"),
                   "--batch-size", "4", *COMMON])  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]

    meta = read_meta(tmp_path / "ddp" / "last")["training"]
    assert meta["world_size"] == 2 and meta["global_batch"] == 4
    assert meta["tokens_seen"] == 24 * 4 * 48

    # Both ranks did their half of validation with the same weights: the logged (all-reduced)
    # NLL equals a single-process recomputation over all windows.
    logged = [r for r in read_metrics(tmp_path / "ddp") if r["split"] == "valid"][-1]["nll"]
    eval_batches = 50  # TrainOptions default
    recomputed = _valid_nll(tmp_path / "ddp", bach_data_dir, 48, 2, eval_batches)
    # The same fp32 arithmetic in other batch shapes (2 padded windows per rank vs 1): a token's
    # NLL carries twice its logits' rounding (tiny: 13 chained sums of ≤ 128 terms, |z| ≤ 8,
    # √n estimate 1.4e-4), and ~4,800 of them are averaged: rel 1e-4 of NLL ≈ 4 is 4e-4.
    assert logged == pytest.approx(recomputed, rel=1e-4)

    # Same global batch → the same loss curve within sampling noise (different windows).
    def curve(run: Path) -> list[float]:
        return [r["loss"] for r in read_metrics(run) if r["split"] == "train"]

    a, b = curve(tmp_path / "ddp"), curve(tmp_path / "one")
    assert len(a) == len(b) == 24 // 10 + 1  # log_every 10, plus the last step
    for x, y in zip(a, b):
        assert abs(x - y) < 0.25 * max(x, y), (a, b)
    va = [r["nll"] for r in read_metrics(tmp_path / "ddp") if r["split"] == "valid"]
    vb = [r["nll"] for r in read_metrics(tmp_path / "one") if r["split"] == "valid"]
    assert abs(va[-1] - vb[-1]) < 0.15, (va, vb)
