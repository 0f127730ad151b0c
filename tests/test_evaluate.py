"""`evaluate`: NLL overall and by position bucket, past the training length."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from midi_data import eval_windows
from music_transformer.evaluation import evaluate, position_buckets
from music_transformer.training import read_metrics
from tests.helpers import TINY_RUN, cli
from tests.tolerances import rounding_bound

L = TINY_RUN["seq_len"]  # training length of `tiny_run`, the session's tiny model (64)


def test_buckets_and_windows() -> None:
    assert [(b.start, b.end) for b in position_buckets(100, 400)] == [
        (0, 100), (100, 200), (200, 400)
    ]  # fmt: skip
    assert [(b.start, b.end) for b in position_buckets(100, 150)] == [(0, 100), (100, 150)]
    assert position_buckets(100, 800)[-1].end == 800
    piece = torch.arange(10)
    windows = eval_windows([piece, torch.arange(1)], context=4)
    # every token after the first is predicted exactly once: 9 targets in windows of ≤ 5
    assert [w.tolist() for w in windows] == [[0, 1, 2, 3, 4], [4, 5, 6, 7, 8], [8, 9]]


def test_evaluate_reports_consistent_buckets(tiny_run: Path, bach_data_dir: Path) -> None:
    result = evaluate(tiny_run, bach_data_dir, split="valid", device="cpu")
    assert result.train_seq_len == L and result.context == 4 * L
    assert [(b.start, b.end) for b in result.buckets] == [(0, L), (L, 2 * L), (2 * L, 4 * L)]
    assert sum(b.tokens for b in result.buckets) == result.tokens > 0
    weighted = sum(b.nll * b.tokens for b in result.buckets) / result.tokens
    # the NLLs are summed in float64 (evaluation/nll.py): n ≈ 3,000 terms, ≤ n·2^-53 ≈ 3e-13
    assert result.nll == pytest.approx(weighted, rel=1e-12)
    assert result.buckets[0].tokens >= result.buckets[1].tokens  # short pieces stop early
    assert result.perplexity == pytest.approx(math.exp(result.nll))  # float64 exp: rel 1e-6
    # The model learned something: within training length it beats the uniform guess.
    vocab = json.loads((tiny_run / "best" / "config.json").read_text())["model"]["vocab_size"]
    assert result.buckets[0].nll < math.log(vocab) - 0.5
    # BOS is never a target and each piece ends in one EOS: the event tally leaves those out.
    assert result.event_tokens == result.tokens - result.pieces
    eos_share = (result.nll * result.tokens - result.nll_events * result.event_tokens) / (
        result.tokens - result.event_tokens
    )  # mean NLL of the EOS targets alone: a real, finite loss
    assert 0 < eos_share < 50


def test_evaluate_at_training_length_matches_validation(
    tiny_run: Path, bach_data_dir: Path
) -> None:
    # Same model, same split, windows of the training length: close to the trainer's
    # validation NLL (its windows are cut differently, so not equal).
    result = evaluate(tiny_run, bach_data_dir, split="valid", context=L, device="cpu")
    assert len(result.buckets) == 1
    valid = [r["nll"] for r in read_metrics(tiny_run) if r["split"] == "valid"][-1]
    assert result.nll == pytest.approx(valid, abs=0.3)  # other contexts, not rounding


# A token's NLL (logsumexp − logit) carries twice its logits' rounding: `tiny` chains 13 sums
# (6 per layer, + the output projection) of ≤ 128 terms (d_ff) at |z| ≤ 8. A bucket's mean
# averages ~800 such errors of random sign, so the random-sign estimate bounds it amply.
BUCKET_NLL_ABS = 2 * rounding_bound(128, 8, sums=13, worst=False)  # 2.8e-4 nats


def test_window_changes_only_positions_past_it(tiny_run: Path, bach_data_dir: Path) -> None:
    # Sliding-window attention (window = L) scores the first L positions as full attention
    # does, up to the rounding of another kernel shape, and differs past them (the model
    # there sees only its last L tokens). In fp32: what is compared is the arithmetic, and
    # "auto" may pick bf16 for one of the two shapes on a CPU where bf16 is faster.
    kw = dict(split="valid", device="cpu", max_pieces=4, precision="fp32")
    full = evaluate(tiny_run, bach_data_dir, **kw)
    slid = evaluate(tiny_run, bach_data_dir, window=L, **kw)
    assert slid.window == L and full.window is None
    assert slid.buckets[0].nll == pytest.approx(full.buckets[0].nll, abs=BUCKET_NLL_ABS)
    assert slid.buckets[0].tokens == full.buckets[0].tokens
    assert slid.buckets[2].tokens > 0
    assert abs(slid.buckets[2].nll - full.buckets[2].nll) > BUCKET_NLL_ABS  # beyond rounding


def test_cli_table_and_json(tiny_run: Path, bach_data_dir: Path) -> None:
    args = ["evaluate", str(tiny_run), "--data", str(bach_data_dir), "--split", "valid",
            "--device", "cpu", "--max-pieces", "3"]  # fmt: skip
    table = cli(*args)
    assert table.exit_code == 0, table.output
    assert "nats/token" in table.output and f"{L}–{2 * L}" in table.output
    out = cli(*[*args, "--json"])
    assert out.exit_code == 0, out.output
    d = json.loads(out.output)
    assert d["pieces"] == 3 and len(d["buckets"]) == 3
    assert d["perplexity"] == pytest.approx(math.exp(d["nll"]))  # float64 exp: rel 1e-6


def test_cli_errors(tiny_run: Path, bach_data_dir: Path, tmp_path) -> None:
    for args, needle in [
        ([str(tmp_path / "none"), "--data", str(bach_data_dir)], "neither a bundled model"),
        ([str(tiny_run), "--data", str(tmp_path)], str(tmp_path)),
    ]:
        r = cli(*["evaluate", *args])
        assert r.exit_code == 2, r.output
        assert r.output.startswith("Error: ") and needle in r.output
        assert len(r.output.strip().splitlines()) == 1
