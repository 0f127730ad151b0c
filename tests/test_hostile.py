"""Hostile input: model directories that ask for too much or lie about their weights, MIDI
paths that are not regular files, two processes writing one output or one run, resumes from
elsewhere, absurd numbers. Each is one line on stderr and exit 2, never a traceback or a hang."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from midi_data.files import TargetExistsError, atomic_write_text
from music_transformer.training import TrainError, TrainOptions, read_metrics, train
from music_transformer.training.state import lock_run_dir
from tests.helpers import cli, cpu_train_options, one_line_error

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def model_copy(tiny_run: Path, tmp_path: Path) -> Path:
    out = tmp_path / "model"
    shutil.copytree(tiny_run / "best", out)
    return out


def edit_config(model: Path, **fields) -> None:
    meta = json.loads((model / "config.json").read_text())
    meta["model"].update(fields)
    (model / "config.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"d_model": 65536, "d_ff": 262144, "n_layers": 96}, ("GiB of weights", "available")),
        ({"n_heads": 0}, ("n_heads must be positive",)),
        ({"vocab_size": -5}, ("vocab_size must be positive",)),
        ({"d_model": 64.5}, ("d_model must be of type int",)),
        ({"n_layers": True}, ("n_layers must be of type int",)),
        ({"d_ff": 64}, ("does not match its config.json", "shape")),
        ({"n_layers": 1}, ("does not match its config.json", "unknown tensor")),
    ],
    ids=["huge", "no-heads", "negative-vocab", "float-width", "bool-layers", "shape", "layers"],
)
def test_a_model_that_asks_for_the_impossible_is_refused(model_copy, bach_midi_dir, fields, words):
    edit_config(model_copy, **fields)
    primer = sorted(bach_midi_dir.glob("*.mid"))[0]
    out = model_copy.parent / "out.mid"
    one_line_error(cli("continue", primer, "-o", out, "--model", model_copy, "--tokens", 4), *words)
    one_line_error(cli("info", model_copy), *words)
    assert not out.exists()


def test_truncated_weights_are_broken_for_info_and_refused_for_use(model_copy, bach_data_dir):
    weights = model_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    one_line_error(cli("info", model_copy), "truncated")
    one_line_error(cli("evaluate", model_copy, "--data", bach_data_dir, "-q"), "truncated")


def test_a_tokenizer_that_does_not_fit_the_model_is_refused(model_copy, bach_midi_dir):
    shutil.copy(REPO / "music_transformer" / "bundled" / "jsb-relative" / "tokenizer.json",
                model_copy / "tokenizer.json")  # fmt: skip
    primer = sorted(bach_midi_dir.glob("*.mid"))[0]
    out = model_copy.parent / "o.mid"
    result = cli("continue", primer, "-o", out, "--model", model_copy, "--tokens", 4)
    one_line_error(result, "tokenizer has 50 tokens")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs (POSIX)")
def test_only_regular_midi_files_of_a_sane_size_are_read(tiny_run, tmp_path, monkeypatch):
    fifo = tmp_path / "pipe.mid"
    os.mkfifo(fifo)
    big = tmp_path / "big.mid"
    big.write_bytes(b"MThd" + bytes(2 * 2**20))
    for path, words in [("/dev/zero", ("not a regular file",)), (fifo, ("not a regular file",)),
                        (tmp_path, ("directory",))]:  # fmt: skip
        result = cli("continue", path, "-o", tmp_path / "o.mid", "--model", tiny_run)
        one_line_error(result, *words)
    monkeypatch.setenv("MUSIC_TRANSFORMER_MAX_MIDI_MB", "1")
    one_line_error(cli("continue", big, "-o", tmp_path / "o.mid", "--model", tiny_run), "MiB")
    folder = tmp_path / "corpus"
    folder.mkdir()
    for p in (fifo, big):
        shutil.move(p, folder / p.name)
    prepared = cli("prepare", folder, "--out", tmp_path / "data", "-q")  # returns: no hang
    # no usable piece: one line naming why, and no data directory written
    one_line_error(prepared, "big.mid", "MiB", "was not written")
    assert not (tmp_path / "data").exists()


def test_an_exclusive_write_leaves_the_winner_alone(tmp_path) -> None:
    target = tmp_path / "out.json"
    target.write_text("winner")
    with pytest.raises(TargetExistsError, match="another process"):
        atomic_write_text(target, "loser", exclusive=True)
    assert target.read_text() == "winner"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temp file left


def test_two_processes_continuing_into_one_output(tiny_run, bach_midi_dir, tmp_path) -> None:
    primer = sorted(bach_midi_dir.glob("*.mid"))[0]
    out = tmp_path / "same.mid"
    cmd = [sys.executable, "-m", "cli", "continue", str(primer), "-o", str(out), "--model",
           str(tiny_run), "--tokens", "300", "-q"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([*cmd, "--seed", str(s)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for s in (1, 2)]  # fmt: skip
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes == [0, 2], results  # one wins; the other finds the output there, early or late
    loser = next(r for r in results if r[0] == 2)
    assert len(loser[2].strip().splitlines()) == 1 and str(out) in loser[2]
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["continuation"]["tokens"] > 0  # the winner's files are whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.json", "same.mid"]


def test_a_second_trainer_on_one_run_directory_stops(bach_data_dir, tmp_path) -> None:
    run = tmp_path / "run"
    held = lock_run_dir(run)  # another process is training into it
    try:
        result = cli("train", "--data", bach_data_dir, "--out", run, "--preset", "tiny",
                        "--max-steps", "2", "-q")  # fmt: skip
        one_line_error(result, "in use by another training process")
        assert not (run / "metrics.jsonl").exists()
    finally:
        held.close()


def test_resume_from_another_working_directory(bach_data_dir, tmp_path, monkeypatch) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copytree(bach_data_dir, tmp_path / "a" / "data1")
    monkeypatch.chdir(tmp_path / "a")
    train(cpu_train_options("data1", "run", max_steps=4, seq_len=32, batch_size=2,
                            eval_every=2, save_every=2))  # fmt: skip
    monkeypatch.chdir(tmp_path / "b")
    result = cli("train", "--out", tmp_path / "a" / "run", "--resume", "--max-steps", "6", "-q")
    assert result.exit_code == 0, result.output
    assert read_metrics(tmp_path / "a" / "run")[-1]["step"] == 6
    moved = tmp_path / "b" / "moved"
    shutil.move(tmp_path / "a" / "data1", moved)  # the data moved: --data says where
    result = cli("train", "--out", tmp_path / "a" / "run", "--resume", "--max-steps", "8",
                    "--data", moved, "-q")  # fmt: skip
    assert result.exit_code == 0, result.output


def test_absurd_numbers_are_one_line(tiny_run, bach_midi_dir, bach_data_dir, tmp_path) -> None:
    primer = sorted(bach_midi_dir.glob("*.mid"))[0]
    big = "99999999999999999999"
    one_line_error(cli("continue", primer, "-o", tmp_path / "o.mid", "--model", tiny_run,
                          "--seed", big), "seed")  # fmt: skip
    one_line_error(cli("train", "--data", bach_data_dir, "--out", tmp_path / "r",
                          "--seed", big), "seed")  # fmt: skip
    a_dir = tmp_path / "taken.mid"
    a_dir.mkdir()
    result = cli("continue", primer, "-o", a_dir, "--model", tiny_run, "--force")
    one_line_error(result, str(a_dir))
    assert ".tmp" not in result.output  # the user's path, not a temporary file's


def test_warm_up_fits_short_runs() -> None:
    assert TrainOptions(data_dir="d", out_dir="o", max_steps=200).warmup == 20
    assert TrainOptions(data_dir="d", out_dir="o", max_steps=20000).warmup == 500
    assert TrainOptions(data_dir="d", out_dir="o", max_steps=200, warmup_steps=50).warmup == 50


PRIMER = REPO / "music_transformer" / "bundled" / "primers" / "bwv145-a.mid"
# every command that runs a model, with the rest of a valid command line
DEVICE_COMMANDS = {
    "continue": ["continue", PRIMER, "-o", "{tmp}/out.mid"],
    "generate": ["generate", "--out", "{tmp}/gen", "--num-samples", "1"],
    "compare": ["compare", "--models", "bach-transformer,bach-lstm", "--primers", PRIMER,
                "--out", "{tmp}/cmp", "--audio", "none"],
    "train": ["train", "--data", "{tmp}", "--out", "{tmp}/run"],
    "evaluate": ["evaluate", "bach-transformer", "--data", "{tmp}"],
}  # fmt: skip


def unavailable_devices() -> list[str]:
    """Device names torch parses but this machine cannot run a model on ('meta' never can)."""
    from music_transformer.runtime import RuntimeChoiceError, pick_device

    names = []
    for name in ("meta", "mps", "xpu", "hpu", "cuda", "cuda:1", "cuda:99"):
        try:
            pick_device(name)
        except RuntimeChoiceError:
            names.append(name)
    return names


@pytest.mark.parametrize("command", list(DEVICE_COMMANDS))
def test_a_device_that_cannot_run_the_model_is_one_line_for_every_command(command, tmp_path):
    """One --device option with one check for every command: a name torch knows but this
    machine cannot run on (or no device at all) is one line and exit 2 before any work, the
    same line for every command; nothing is written."""
    args = [str(a).format(tmp=tmp_path) for a in DEVICE_COMMANDS[command]]
    before = sorted(tmp_path.iterdir())
    for name in [*unavailable_devices(), "bogus", "cuda:x"]:
        result = cli(*args, "--device", name)
        one_line_error(result, "--device", repr(name))
        assert sorted(tmp_path.iterdir()) == before, name
    assert "meta" in unavailable_devices()


def test_the_library_refuses_the_same_devices() -> None:
    from music_transformer.runtime import RuntimeChoiceError, check_device, pick_device

    assert pick_device("cpu").type == "cpu" and check_device("cpu") == "cpu"
    for name in [*unavailable_devices(), "bogus"]:
        with pytest.raises(RuntimeChoiceError, match=repr(name)):
            pick_device(name)
        with pytest.raises(TrainError, match="option device"):
            TrainOptions(data_dir=".", out_dir="x", device=name).validate()
