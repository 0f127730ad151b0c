"""Failures outside the user's options, each one line that names what is wrong: a broken
config.json, a full disk during `prepare` and `train`, a pipe closed by its reader, a `train`
that fails before it writes anything — and `train --help` shows examples like every command."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys

import pytest

from tests.helpers import cli, one_line_error

EXE = [sys.executable, "-m", "cli"]


# --- item 7: config.json of the wrong shape ----------------------------------------------------

BAD_CONFIGS = {
    "array": ("[1, 2, 3]", "expected a JSON object, got an array"),
    "null": ("null", "expected a JSON object, got null"),
    "empty": ("{}", "'model' must be a JSON object, got nothing"),
    "model string": ('{"model": "x"}', "'model' must be a JSON object, got a string"),
    "training list": (None, "'training' must be a JSON object, got an array"),
    "not utf-8": (b"\xff\xfe{", "it is not UTF-8 text"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_a_broken_config_json_names_the_file(case, tiny_run, bach_midi_dir, tmp_path):
    model = shutil.copytree(tiny_run / "best", tmp_path / "model")
    text, expected = BAD_CONFIGS[case]
    config = model / "config.json"
    if text is None:
        config.write_text(json.dumps({**json.loads(config.read_text()), "training": []}))
    elif isinstance(text, bytes):
        config.write_bytes(text)
    else:
        config.write_text(text)
    primer = sorted(bach_midi_dir.glob("*.mid"))[0]
    for args in (("info", model), ("continue", primer, "-o", tmp_path / "o.mid", "--model", model)):
        err = one_line_error(cli(*args, "--tokens", "4") if args[0] == "continue" else cli(*args))
        assert str(config) in err and expected in err, err
    assert not (tmp_path / "o.mid").exists()


# --- item 10: a pipe closed by its reader -------------------------------------------------------


def test_output_into_a_closed_pipe_is_a_quiet_exit():
    """`music-transformer info MODEL | head -1`: head exits after one line; the rest of the
    output meets a closed pipe, which ends the command without a word."""
    reader = subprocess.Popen(["head", "-1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    writer = subprocess.run(
        [*EXE, "info", "jsb-relative"], stdout=reader.stdin, stderr=subprocess.PIPE, text=True
    )
    reader.stdin.close()
    first = reader.stdout.read().decode()
    reader.wait()
    assert first.startswith("model:")
    assert writer.stderr == "" and writer.returncode in (0, 1), writer.stderr


def test_every_command_into_a_closed_pipe_is_quiet(tmp_path):
    """A pipe already closed before the first line (`cmd | true`): help and models too."""
    for args in (["models"], ["info", "bach-lstm"], ["--help"], ["train", "--help"]):
        read, write = os.pipe()
        os.close(read)
        run = subprocess.run([*EXE, *args], stdout=write, stderr=subprocess.PIPE, text=True)
        os.close(write)
        assert "Broken pipe" not in run.stderr and "Traceback" not in run.stderr, (args, run)


# --- full disks (an RLIMIT_FSIZE makes writes past a size fail, as a full disk does) ---------


def _full_disk(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_prepare_on_a_full_disk_says_so(bach_midi_dir, tmp_path):
    run = subprocess.run(
        [*EXE, "prepare", str(bach_midi_dir), "--out", str(tmp_path / "d"), "-q", "-j", "1"],
        preexec_fn=_full_disk(4096), capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr
    assert f"cannot write data directory {tmp_path / 'd'}" in run.stderr
    assert "disk" in run.stderr or "File too large" in run.stderr
    assert list(tmp_path.iterdir()) == []  # no half-written folder, no temporary one


def test_train_on_a_full_disk_is_one_line_and_leaves_no_temporary_folder(bach_data_dir, tmp_path):
    """Item 9: safetensors' own error on a full disk was a traceback, with an empty
    .tmp-best-* folder left behind."""
    out = tmp_path / "run"
    args = ["train", "--data", str(bach_data_dir), "--out", str(out), "--preset", "tiny",
            "--max-steps", "2", "--seq-len", "16", "--batch-size", "2", "--eval-every", "1",
            "--save-every", "1", "--device", "cpu", "--precision", "fp32", "-q"]  # fmt: skip
    run = subprocess.run(
        [*EXE, *args], preexec_fn=_full_disk(60_000), capture_output=True, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("Error: cannot save checkpoint") and run.stderr.count("\n") == 1
    assert not [p.name for p in out.iterdir() if p.name.startswith(".tmp-")]


def test_a_train_that_fails_before_writing_leaves_no_folder(tmp_path, bach_data_dir):
    """A run refused after its folder was made (and locked) does not leave the folder with
    only `.lock` in it."""
    out = tmp_path / "run"
    err = one_line_error(cli("train", "--data", bach_data_dir, "--out", out, "--init",
                             "jsb-relative", "--device", "cpu", "-q"))  # fmt: skip
    assert "another tokenizer" in err  # found after the run folder was made and locked
    assert not out.exists()


def test_train_help_has_examples():
    result = cli("train", "--help")
    assert result.exit_code == 0
    examples = result.output.split("Examples:")[1].split("Options:")[0]
    assert examples.count("music-transformer train") >= 3 and "--init" in examples
