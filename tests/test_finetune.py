"""Fine-tuning on your own MIDI: `prepare --tokenizer-from MODEL` and `train --init MODEL`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from music_transformer.checkpoint import load_checkpoint
from music_transformer.training import read_metrics, train
from music_transformer.training.schedule import learning_rate
from tests.helpers import TINY_RUN, cli, cpu_train_options


@pytest.fixture(scope="module")
def base_run(tiny_run: Path) -> Path:
    """The model to fine-tune: the session's tiny model, trained briefly on the Bach chorales
    (read-only: fine-tuning writes its own run directory)."""
    return tiny_run


def test_prepare_with_a_models_tokenizer(base_run: Path, bach_midi_dir: Path, tmp_path) -> None:
    out = tmp_path / "mine"
    result = cli("prepare", bach_midi_dir, "--out", out, "--tokenizer-from", base_run, "-q")
    assert result.exit_code == 0, result.output
    ours = json.loads((out / "tokenizer.json").read_text())
    theirs = json.loads((base_run / "best" / "tokenizer.json").read_text())
    assert ours["preset"] == theirs["preset"] and ours["vocab"] == theirs["vocab"]


def test_init_starts_from_the_models_weights_and_architecture(
    base_run: Path, bach_data_dir: Path, tmp_path
) -> None:
    # A learning rate of ~0 leaves the weights where --init put them: the model's own.
    result = cli(
        "train", "--init", base_run, "--data", bach_data_dir, "--out", tmp_path / "ft",
        "--max-steps", "2", "--lr", "1e-12", "--warmup-steps", "0",
        "--seq-len", "16", "--batch-size", "2", "--device", "cpu", "--precision", "fp32", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    base, tuned = load_checkpoint(base_run), load_checkpoint(tmp_path / "ft" / "last")
    assert tuned.config == base.config  # (a --preset here is refused: test_option_rules.py)
    for (name, a), (_, b) in zip(base.model.state_dict().items(), tuned.model.state_dict().items()):
        # 2 AdamW steps move a weight by at most 2·lr = 2e-12 (Adam's step is ≤ lr per
        # element), below fp32's spacing at any weight here: 1e-6 is rounding to spare
        assert torch.allclose(a, b, atol=1e-6), name
    training = tuned.meta["training"]
    assert training["init_from"] == str(base_run) and training["preset"] is None


def test_fine_tuning_keeps_learning_from_where_the_model_was(
    base_run: Path, bach_data_dir: Path, tmp_path
) -> None:
    """Ten more steps from the model beat ten steps from scratch on the same data."""

    def valid_nll(run: Path) -> float:
        return json.loads((run / "best" / "config.json").read_text())["training"]["best_valid_nll"]

    common = dict(max_steps=10, seq_len=32, batch_size=4, lr=1e-3, warmup_steps=0, eval_every=10)
    tuned = train(cpu_train_options(bach_data_dir, tmp_path / "ft", init=str(base_run), **common))
    fresh = train(cpu_train_options(bach_data_dir, tmp_path / "new", **common))  # same arch
    assert valid_nll(tuned) < valid_nll(fresh)


def test_a_vocabulary_mismatch_is_one_line(base_run: Path, tmp_path) -> None:
    jsb = tmp_path / "jsb.json"
    steps = [[72, 67, 60, 48]] * 16
    jsb.write_text(json.dumps({"train": [steps] * 3, "valid": [steps], "test": [steps]}))
    data = tmp_path / "jsb"
    assert cli("prepare", jsb, "--out", data, "--tokenizer", "jsb", "-q").exit_code == 0
    result = cli("train", "--init", base_run, "--data", data, "--out", tmp_path / "r", "-q")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "--tokenizer-from" in lines[0] and "another tokenizer" in lines[0]
    both = cli("prepare", jsb, "--out", tmp_path / "x", "--tokenizer", "jsb",
                  "--tokenizer-from", base_run)  # fmt: skip
    assert both.exit_code == 2 and "contradicts" in both.output


def test_init_refuses_options_that_change_the_architecture(
    base_run: Path, bach_data_dir: Path, tmp_path
) -> None:
    options = cpu_train_options(
        bach_data_dir, tmp_path / "r", init=str(base_run), max_steps=1, model={"d_model": 32}
    )
    with pytest.raises(ValueError, match="d_model"):
        train(options)


def test_step_offset_continues_the_models_own_run(
    base_run: Path, bach_data_dir: Path, tmp_path
) -> None:
    """A warm start with --step-offset N from a run's step-N weights trains as that run resumed
    would — the same windows, dropout and rates — but for Adam's moments, which start afresh
    (so the rates warm up to the resumed run's again): its first step's loss is the resumed
    run's; its rates are the resumed run's times the warm-up ramp, then equal."""
    done = json.loads((base_run / "last" / "config.json").read_text())["training"]["step"]
    resumed = tmp_path / "resumed"
    shutil.copytree(base_run, resumed)
    common = {**TINY_RUN, "log_every": 1}
    train(cpu_train_options(bach_data_dir, resumed, **{**common, "max_steps": done + 6},
                            resume=True))  # fmt: skip
    warm = train(
        cpu_train_options(bach_data_dir, tmp_path / "warm", **{**common, "max_steps": 6},
                          init=str(base_run / "last"), step_offset=done)
    )  # fmt: skip
    theirs = [r for r in read_metrics(resumed) if r["split"] == "train" and r["step"] > done]
    ours = [r for r in read_metrics(warm) if r["split"] == "train"]
    assert [r["step"] for r in ours] == [r["step"] - done for r in theirs] == list(range(1, 7))
    warm_up = TINY_RUN["warmup_steps"]  # 5: rows 5 and 6 are past the ramp
    ramp = [min(1.0, r["step"] / warm_up) for r in ours]  # row k logs step k - 1's rate
    assert [r["lr"] for r in ours] == [r["lr"] * f for r, f in zip(theirs, ramp)]  # same floats
    assert ours[-1]["lr"] == theirs[-1]["lr"] and ours[0]["lr"] < theirs[0]["lr"]
    # step 1: the same weights (the same file), windows and dropout mask, before any update
    assert ours[0]["loss"] == theirs[0]["loss"]
    record = json.loads((warm / "last" / "config.json").read_text())["training"]
    assert record["step_offset"] == done  # the checkpoint says whose steps it continues
    # without the offset the warm start would sample other windows and climb a warm-up again
    assert learning_rate(0, TINY_RUN["lr"], TINY_RUN["warmup_steps"]) != ours[0]["lr"]
