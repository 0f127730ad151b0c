"""`--precision auto` and decoding threads by measurement: what is measured, that it is
cached per machine and shape and read back, that a damaged cache is measured again, and that
a precision this machine cannot run is refused in one line (explicit) or avoided (auto)."""

from __future__ import annotations

import json

import pytest
import torch

from music_transformer import calibration as cal
from music_transformer.nn import make_config
from music_transformer.runtime import RuntimeChoiceError, calibration_file
from tests.helpers import cli

CPU = torch.device("cpu")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSIC_TRANSFORMER_CACHE", str(tmp_path))
    cal.forget()
    yield calibration_file()
    cal.forget()


def entries(path) -> dict:
    table = json.loads(path.read_text())
    assert list(table) == [cal.machine_key(CPU)]  # one machine: this one
    return table[cal.machine_key(CPU)]


def test_auto_measures_once_keeps_the_faster_and_reads_the_cache(cache) -> None:
    config = make_config("transformer", "tiny", 64)
    first = cal.choose_precision("auto", CPU, "train", config, batch=4, length=100)
    (shape, entry), = entries(cache).items()  # fmt: skip
    assert shape.startswith("train | transformer") and "L128 | B4" in shape  # rounded up
    assert entry["fp32_ms"] > 0
    if "bf16_error" in entry:
        assert entry["choice"] == "fp32"
    else:
        faster = entry["bf16_ms"] < cal.MARGIN * entry["fp32_ms"]
        assert entry["choice"] == ("bf16" if faster else "fp32")
    assert first.name == entry["choice"] and "measured on this machine" in first.reason

    # The next process reads the file instead of measuring: flip the recorded answer and
    # the flipped answer comes back.
    flipped = "fp32" if entry["choice"] == "bf16" else "bf16"
    table = json.loads(cache.read_text())
    table[cal.machine_key(CPU)][shape] = {**entry, "choice": flipped, "bf16_ms": 1.0}
    table[cal.machine_key(CPU)][shape].pop("bf16_error", None)
    cache.write_text(json.dumps(table))
    cal.forget()
    again = cal.choose_precision("auto", CPU, "train", config, batch=3, length=128)
    assert again.name == flipped
    # Another workload of the same shape is measured on its own.
    cal.choose_precision("auto", CPU, "eval", config, batch=4, length=128)
    assert len(entries(cache)) == 2


def test_a_damaged_cache_is_measured_again(cache) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text('{"half a file')
    config = make_config("lstm", "tiny", 64)
    choice = cal.choose_precision("auto", CPU, "eval", config, batch=2, length=64)
    assert choice.name in ("fp32", "bf16")
    assert len(entries(cache)) == 1  # valid JSON again


def test_decoding_threads_are_measured_on_the_cpu(cache) -> None:
    config = make_config("transformer", "tiny", 64)
    threads = cal.choose_decode_threads(CPU, config, batch=2, window=64)
    if torch.get_num_threads() == 1:  # e.g. OMP_NUM_THREADS=1: nothing to choose or measure
        assert threads == 1 and not cache.exists()
        return
    assert threads in (1, torch.get_num_threads())
    (entry,) = entries(cache).values()
    assert entry["threads"] == threads


@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_bf16_that_cannot_run_is_refused_in_one_line_and_auto_avoids_it(cache, arch) -> None:
    """oneDNN has no bf16 LSTM on CPUs without AVX512: where that is so, an explicit bf16 is
    one clear error and auto picks fp32; where it runs, both work."""
    config = make_config(arch, "tiny", 64)
    try:
        cal.choose_precision("bf16", CPU, "train", config)
        runs = True
    except RuntimeChoiceError as e:
        runs = False
        assert "use --precision fp32" in str(e) and "\n" not in str(e)
    auto = cal.choose_precision("auto", CPU, "train", config, batch=2, length=32)
    if not runs:
        assert auto.name == "fp32" and "does not run here" in auto.reason


def test_info_says_what_auto_picks_and_why(cache, tiny_run) -> None:
    result = cli(*["info", str(tiny_run)])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("  train ")]
    assert len(lines) == 1 and ("fp32" in lines[0] or "bf16" in lines[0])
    assert "auto:" in lines[0]


def test_train_with_bf16_that_cannot_run_is_one_line(cache, bach_data_dir, tmp_path) -> None:
    config = make_config("lstm", "tiny", 64)
    try:
        cal.choose_precision("bf16", CPU, "train", config)
        pytest.skip(
            "needs a CPU without oneDNN's bf16 LSTM kernel (one without AVX-512, or "
            "ONEDNN_MAX_CPU_ISA=AVX2): bf16 LSTMs run on this one"
        )
    except RuntimeChoiceError:
        pass
    out = tmp_path / "run"
    args = ["train", "--data", bach_data_dir, "--out", out, "--arch", "lstm", "--preset", "tiny",
            "--precision", "bf16", "--max-steps", "2", "--device", "cpu", "-q"]  # fmt: skip
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert "bf16 does not run" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (out / "last").exists()
