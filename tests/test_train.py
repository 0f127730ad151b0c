"""Training end to end on real Bach chorales with tiny models: the run directory, the three
architectures, options and config files, the schedule, precision choice, CLI errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from music_transformer.checkpoint import load_checkpoint, read_meta
from music_transformer.runtime import autocast_dtype
from music_transformer.training import TrainError, TrainOptions, read_metrics, train
from music_transformer.training.options import build_options, read_config_file
from music_transformer.training.schedule import learning_rate
from music_transformer.training.state import load_train_state
from tests.helpers import TINY_RUN, cli, cpu_train_options, tree_digest


def tiny(data_dir: Path, out_dir: Path, **overrides) -> TrainOptions:
    """The session's tiny run settings (TINY_RUN: seq_len 64, batch 4, validation and checkpoints
    every 10 steps, ...), but 30 steps and 4 validation batches; `overrides` win."""
    values = {**TINY_RUN, "max_steps": 30, "eval_batches": 4}
    return cpu_train_options(data_dir, out_dir, **{**values, **overrides})


def test_run_directory_layout_and_learning(tiny_run: Path) -> None:
    run = tiny_run  # the session's run (conftest.py): tiny(…, max_steps=40)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "train_state.pt"):
        assert (run / "last" / name).is_file(), name
    assert not (run / "best" / "train_state.pt").exists()
    steps = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert steps == ["step-000020", "step-000030", "step-000040"]  # keep_last = 3
    options = json.loads((run / "options.json").read_text())
    assert options["max_steps"] == 40 and options["preset"] == "tiny"
    assert {k: options[k] for k in TINY_RUN} == TINY_RUN  # what the numbers here assume

    rows = read_metrics(run)
    train_rows = [r for r in rows if r["split"] == "train"]
    valid_rows = [r for r in rows if r["split"] == "valid"]
    assert [r["step"] for r in train_rows] == list(range(5, 41, 5))
    assert [r["step"] for r in valid_rows] == [10, 20, 30, 40]
    assert all(r["tokens_per_s"] > 0 for r in train_rows)
    # Real learning on real chorales: well below the uniform guess, and better than at step 5.
    vocab = load_checkpoint(run).config.vocab_size
    assert train_rows[-1]["loss"] < train_rows[0]["loss"] - 0.5
    assert valid_rows[-1]["nll"] < math.log(vocab) - 1.0

    meta = read_meta(run / "best")
    best = min(valid_rows, key=lambda r: r["nll"])
    assert meta["training"]["step"] == best["step"]
    assert meta["training"]["best_valid_nll"] == pytest.approx(best["nll"])
    assert meta["training"]["seq_len"] == 64
    state = load_train_state(run / "last" / "train_state.pt")
    assert state["step"] == 40 and state["tokens_seen"] == 40 * 4 * 64


def test_load_checkpoint_resolves_best_and_scores_like_training(tiny_run: Path) -> None:
    loaded = load_checkpoint(tiny_run)
    assert loaded.directory == tiny_run / "best"
    assert not loaded.model.training
    tokens = torch.randint(0, loaded.config.vocab_size, (2, 16))
    logits, _ = loaded.model(tokens)
    assert logits.shape == (2, 16, loaded.config.vocab_size)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", ["lstm", "transformer-absolute"])
def test_other_architectures_train_and_load(arch: str, bach_data_dir: Path, tmp_path) -> None:
    run = train(tiny(bach_data_dir, tmp_path / arch, arch=arch, max_steps=12, eval_every=6))
    loaded = load_checkpoint(run)
    assert loaded.config.arch == ("lstm" if arch == "lstm" else "transformer")
    if arch == "transformer-absolute":
        assert loaded.config.position == "absolute"
    rows = [r for r in read_metrics(run) if r["split"] == "valid"]
    assert len(rows) == 2 and all(math.isfinite(r["nll"]) for r in rows)


def test_bf16_and_accumulation(bach_data_dir: Path, tmp_path) -> None:
    opts = tiny(bach_data_dir, tmp_path / "r", precision="bf16", accumulation=2, batch_size=2)
    run = train(opts.__class__(**{**opts.to_dict(), "max_steps": 6, "eval_every": 6}))
    meta = read_meta(run / "last")
    assert meta["training"]["precision"] == "bf16"
    assert meta["training"]["global_batch"] == 4
    assert read_metrics(run)[-1]["split"] == "valid"
    assert math.isfinite(read_metrics(run)[-1]["nll"])


def test_early_stopping_stops_and_saves(bach_data_dir: Path, tmp_path) -> None:
    # lr so small that no fp32 weight moves (an AdamW step is about lr, far below half an ulp
    # of any weight): every validation equals the first, so none improves; stop after 2 more.
    run = train(
        tiny(bach_data_dir, tmp_path / "r", lr=1e-30, warmup_steps=0, max_steps=100,
             eval_every=2, early_stop=2, schedule="constant")
    )  # fmt: skip
    state = load_train_state(run / "last" / "train_state.pt")
    assert state["step"] < 100
    assert state["evals_since_best"] == 2
    from cli.train import _summary  # the line `train` prints: where it stopped, and the best

    assert _summary(run).startswith(f"Trained to step {state['step']} in ")
    assert _summary(run).endswith(f"at step {state['best_step']}")
    assert state["best_step"] < state["step"]
    # resuming a run that stopped early changes nothing (recipes resume every run they list)
    before = (run / "last" / "model.safetensors").read_bytes()
    train(
        tiny(bach_data_dir, tmp_path / "r", lr=1e-9, warmup_steps=0, max_steps=100,
             eval_every=2, early_stop=2, schedule="constant", resume=True)
    )  # fmt: skip
    assert load_train_state(run / "last" / "train_state.pt")["step"] == state["step"]
    assert (run / "last" / "model.safetensors").read_bytes() == before


def test_schedules() -> None:
    peak, warm = 1e-3, 10  # the schedule is float64 arithmetic: pytest.approx's rel 1e-6
    ramp = [learning_rate(s, peak, warm) for s in range(warm)]
    assert ramp == sorted(ramp) and ramp[-1] == pytest.approx(peak)
    assert learning_rate(4 * warm - 1, peak, warm) == pytest.approx(peak / 2)  # 1/sqrt(4)
    cos = [learning_rate(s, peak, warm, "cosine", max_steps=110) for s in range(warm, 110)]
    assert cos == sorted(cos, reverse=True)
    assert cos[-1] == pytest.approx(peak * 0.1)
    assert learning_rate(500, peak, warm, "constant") == peak
    # a cool-down: the last 20 of 110 steps fall linearly from the schedule's rate to 1/20 of it
    cool = [learning_rate(s, peak, warm, max_steps=110, cooldown=20) for s in range(110)]
    plain = [learning_rate(s, peak, warm) for s in range(110)]
    assert cool[:91] == plain[:91] and cool[-1] == pytest.approx(plain[-1] / 20)
    assert [c / p for c, p in zip(cool[90:], plain[90:])] == pytest.approx(
        [(110 - s) / 20 for s in range(90, 110)]
    )
    # a warm start at offset 100 (--step-offset): the schedule's rates from step 100 on, after
    # a fresh warm-up; a cosine's horizon is the continued run's (100 + 110 steps)
    warm_start = [learning_rate(s, peak, warm, offset=100) for s in range(30)]
    assert warm_start[warm:] == [learning_rate(100 + s, peak, warm) for s in range(warm, 30)]
    assert warm_start[0] == pytest.approx(learning_rate(100, peak, warm) / warm)
    end = learning_rate(109, peak, warm, "cosine", max_steps=110, offset=100)
    assert end == learning_rate(209, peak, warm, "cosine", max_steps=210)  # step 210 of 210


def test_precision_without_a_model_shape() -> None:
    cpu = torch.device("cpu")
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    assert autocast_dtype("auto", cpu) is None  # nothing measured: exact


def test_config_files_json_and_toml(tmp_path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text("seq_len = 128\nlr = 2e-4\n[model]\nn_layers = 3\n")
    assert read_config_file(toml) == {"seq_len": 128, "lr": 2e-4, "model": {"n_layers": 3}}
    js = tmp_path / "run.json"
    js.write_text(json.dumps({"batch_size": 3}))
    opts = build_options({"batch_size": 5}, js, {"data_dir": "d", "out_dir": "o"})
    assert opts.batch_size == 5  # the command line wins over the file
    assert build_options({}, js, {"data_dir": "d"}).batch_size == 3
    bad = tmp_path / "bad.toml"
    bad.write_text("seq_len = 64\nlearning_rate = 1e-3\n")
    with pytest.raises(TrainError, match="'learning_rate'"):
        read_config_file(bad)


def test_cli_trains_and_resumes(bach_data_dir: Path, tmp_path) -> None:
    out = tmp_path / "run"
    common = ["--data", str(bach_data_dir), "--out", str(out), "--device", "cpu", "--quiet"]
    r = cli(*["train", *common, "--preset", "tiny", "--max-steps", "4",
                          "--seq-len", "32", "--batch-size", "2", "--eval-every", "4"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "step 4" in r.output
    # --resume keeps every option of the run (seq_len 32, tiny) and only raises max_steps.
    r = cli(*["train", "--out", str(out), "--resume", "--max-steps", "6", "--quiet"])
    assert r.exit_code == 0, r.output
    meta = read_meta(out / "last")
    assert meta["training"]["step"] == 6 and meta["training"]["seq_len"] == 32


def test_cli_errors_are_one_line_and_overwrite_nothing(
    tiny_run: Path, bach_data_dir: Path, tmp_path
) -> None:
    trained_run = tmp_path / "run"  # a copy: the session's run stays untouched even on failure
    shutil.copytree(tiny_run, trained_run)
    before = tree_digest(trained_run)
    cases = {
        "already holds a training run": ["--data", str(bach_data_dir), "--out", str(trained_run)],
        "nothing to resume": ["--data", str(bach_data_dir), "--out", str(tmp_path / "x"),
                              "--resume"],
        str(tmp_path / "nodata"): ["--data", str(tmp_path / "nodata"), "--out",
                                   str(tmp_path / "y")],
        "cannot write to run directory": ["--data", str(bach_data_dir), "--out",
                                          str(trained_run / "options.json" / "sub")],
    }  # fmt: skip
    for needle, args in cases.items():
        r = cli(*["train", *args, "--preset", "tiny", "--quiet"])
        assert r.exit_code == 2, (needle, r.output)
        assert len(r.output.strip().splitlines()) == 1, r.output
        assert r.output.startswith("Error: ") and needle in r.output, r.output
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"seq_len": 64, "warmup": 3}))
    r = cli(*["train", "--data", str(bach_data_dir), "--out", str(tmp_path / "z"),
                          "--config", str(bad)])  # fmt: skip
    assert r.exit_code == 2 and "'warmup'" in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "z" / "last").exists()
    assert tree_digest(trained_run) == before
