"""Resuming is exact, and a SIGKILL at any moment leaves loadable checkpoints."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from music_transformer.checkpoint import load_checkpoint
from music_transformer.training import TrainOptions, read_metrics, train
from music_transformer.training.state import load_train_state
from tests.helpers import cpu_train_options


def tiny(data_dir: Path, out_dir: Path, **overrides) -> TrainOptions:
    values = dict(
        dropout=0.1,  # so the dropout generator has to be resumed too
        seq_len=48,
        batch_size=3,
        lr=2e-3,
        warmup_steps=3,
        eval_every=3,
        eval_batches=2,
        save_every=3,
        log_every=1,
        seed=7,
    )
    return cpu_train_options(data_dir, out_dir, **{**values, **overrides})


def test_resume_equals_one_go_bit_for_bit(bach_data_dir: Path, tmp_path) -> None:
    one = train(tiny(bach_data_dir, tmp_path / "one", max_steps=10))
    two = tmp_path / "two"
    train(tiny(bach_data_dir, two, max_steps=6))
    train(tiny(bach_data_dir, two, max_steps=10, resume=True))

    a = load_file(one / "last" / "model.safetensors")
    b = load_file(two / "last" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name  # atol 0
    sa = load_train_state(one / "last" / "train_state.pt")["optimizer"]["state"]
    sb = load_train_state(two / "last" / "train_state.pt")["optimizer"]["state"]
    for k in sa:
        assert torch.equal(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"])
    # metrics.jsonl reads as if the run had never stopped (timings aside), except that each
    # start says which precision it chose and why
    assert _no_timing(read_metrics(one)) == _no_timing(read_metrics(two))
    starts = [r["step"] for r in read_metrics(two) if r["split"] == "setup"]
    assert starts == [0, 6] and [r["step"] for r in read_metrics(one) if "why" in r] == [0]


def _no_timing(rows: list[dict]) -> list[dict]:
    return [
        {k: v for k, v in r.items() if k != "tokens_per_s"} for r in rows if r["split"] != "setup"
    ]


def test_resume_before_the_first_checkpoint_starts_over(bach_data_dir: Path, tmp_path) -> None:
    """A run killed before it saved anything holds options.json and metrics.jsonl but no
    checkpoint: --resume starts it over, and ends where one run in one go ends."""
    one = train(tiny(bach_data_dir, tmp_path / "one", max_steps=4))
    two = tmp_path / "two"
    train(tiny(bach_data_dir, two, max_steps=2))
    for name in ("last", "best", "checkpoints"):  # as a kill -9 before step save_every leaves it
        shutil.rmtree(two / name)
    train(tiny(bach_data_dir, two, max_steps=4, resume=True))
    a = load_file(one / "last" / "model.safetensors")
    b = load_file(two / "last" / "model.safetensors")
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert _no_timing(read_metrics(one)) == _no_timing(read_metrics(two))
    assert [r["step"] for r in read_metrics(two) if r["split"] == "setup"] == [0]


@pytest.mark.slow
def test_sigterm_saves_the_steps_since_the_last_checkpoint(bach_data_dir: Path, tmp_path) -> None:
    run = tmp_path / "run"
    args, env = _cli_train(bach_data_dir, run, save_every=1000, eval_every=1000)
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE)
    try:
        end = time.monotonic() + 60
        while _logged_steps(run) == 0 and time.monotonic() < end:  # one log line: step 10
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert err.decode().strip().splitlines()[-1] == "Interrupted."  # no traceback
    saved = _assert_loadable(run)  # saved although no checkpoint was due before step 1,000
    assert saved >= _logged_steps(run) >= 10
    proc = subprocess.run([*args, "--resume", "--max-steps", str(saved + 2)], env=env)
    assert proc.returncode == 0 and _assert_loadable(run) == saved + 2


def _cli_train(data: Path, run: Path, save_every: int, eval_every: int) -> tuple[list, dict]:
    """`music-transformer train` of the tiny model for (nearly) ever, as a subprocess would
    run it, and its environment: one passive OpenMP thread."""
    args = [sys.executable, "-m", "cli", "train", "--data", str(data), "--out", str(run),
            "--preset", "tiny", "--seq-len", "32", "--batch-size", "2",
            "--save-every", str(save_every), "--eval-every", str(eval_every),
            "--max-steps", "100000", "--quiet", "--device", "cpu",
            "--precision", "fp32"]  # fmt: skip
    return args, {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}


def _logged_steps(run: Path) -> int:
    if not (run / "metrics.jsonl").is_file():
        return 0
    return max((r["step"] for r in read_metrics(run) if r["split"] == "train"), default=0)


def test_resume_refuses_another_vocabulary(
    bach_data_dir: Path, bach_midi_dir: Path, tmp_path
) -> None:
    from midi_data import prepare

    run = train(tiny(bach_data_dir, tmp_path / "run", max_steps=3))
    other = tmp_path / "score-data"  # the same chorales under the other tokenizer preset
    prepare([str(bach_midi_dir)], other, preset="score", workers=1, split="0.7,0.3,0",
            progress=False)  # fmt: skip
    before = {p.name: p.read_bytes() for p in (run / "last").iterdir()}
    with pytest.raises(ValueError, match="different vocabulary"):
        train(tiny(other, run, max_steps=6, resume=True))
    assert {p.name: p.read_bytes() for p in (run / "last").iterdir()} == before


def _wait_for(path: Path, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            pytest.fail(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def _assert_loadable(run: Path) -> int:
    """Every checkpoint in the run loads; returns the step of last/."""
    for d in [run / "last", *sorted((run / "checkpoints").glob("step-*"))]:
        load_checkpoint(d)
        load_train_state(d / "train_state.pt")
    if (run / "best").exists():
        load_checkpoint(run / "best")
    return int(load_train_state(run / "last" / "train_state.pt")["step"])


@pytest.mark.slow
def test_sigkill_never_leaves_a_broken_checkpoint(bach_data_dir: Path, tmp_path) -> None:
    run = tmp_path / "run"
    args, env = _cli_train(bach_data_dir, run, save_every=1, eval_every=2)
    rng = random.Random(0)
    steps = []
    for attempt in range(3):
        cmd = args + (["--resume"] if attempt else [])
        proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE)
        try:
            _wait_for(run / "checkpoints" / f"step-{(steps[-1] if steps else 0) + 3:06d}", 60)
            time.sleep(rng.uniform(0.0, 0.3))  # land somewhere inside a write
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
        steps.append(_assert_loadable(run))
    assert steps == sorted(steps) and steps[-1] > steps[0]


def test_a_crash_while_pruning_leaves_only_whole_checkpoints(tmp_path, monkeypatch) -> None:
    """Pruning deletes a step folder file by file: a kill in the middle must not leave a
    `step-N` that looks like a checkpoint and is not one."""
    from music_transformer.training import state

    run = tmp_path / "run"
    for step in (1, 2, 3):
        folder = run / "checkpoints" / state.step_dir_name(step)
        folder.mkdir(parents=True)
        for name in ("config.json", "model.safetensors", "tokenizer.json", "train_state.pt"):
            (folder / name).write_text(name)

    def killed_halfway(path, ignore_errors=False):
        next(Path(path).iterdir()).unlink()  # one file gone ...
        raise KeyboardInterrupt  # ... then the process dies

    monkeypatch.setattr(state.shutil, "rmtree", killed_halfway)
    with pytest.raises(KeyboardInterrupt):
        state.prune_step_dirs(run, keep=1)
    monkeypatch.undo()
    for folder in (run / "checkpoints").glob("step-*"):
        assert len(list(folder.iterdir())) == 4, folder  # every visible checkpoint is whole
    state.recover_run_dir(run)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000002", "step-000003"]
