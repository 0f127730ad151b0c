"""Option values that used to give silent wrong results or tracebacks: huge budgets, tiny and
huge temperatures, `train --init` with a contradicting --arch/--preset, zero counts, the same
model twice in `compare`, `--window` with an LSTM. Each is one line and exit 2, or a valid
result — run as a user would, with the session's tiny model and real chorales."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pretty_midi
import pytest

from midi_data.render import SOUNDFONT_DIRS
from tests.helpers import cli, one_line_error


@pytest.fixture(scope="module")
def primer(bach_midi_dir: Path) -> Path:
    return sorted(bach_midi_dir.glob("*.mid"))[0]


def new_notes(path: Path) -> list[tuple[float, int]]:
    """(onset, pitch) of every note of a --continuation-only output."""
    pm = pretty_midi.PrettyMIDI(str(path))
    return sorted((round(n.start, 4), n.pitch) for i in pm.instruments for n in i.notes)


# --- item 6: token budgets ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "budget",
    [("--seconds", "1e9"), ("--tokens", "100000000000"), ("--seconds", "2", "--tokens", "1e11")],
    ids=["seconds", "tokens", "both"],
)
def test_a_budget_that_cannot_fit_is_one_line(tiny_run, primer, tmp_path, budget):
    budget = tuple(b if b != "1e11" else "100000000000" for b in budget)
    err = one_line_error(cli("continue", primer, "-o", tmp_path / "o.mid", "--model", tiny_run,
                             *budget, "-q"))  # fmt: skip
    assert "more than this machine's" in err and "GiB" in err
    assert not list(tmp_path.iterdir())


def test_the_buffer_is_sized_by_the_smaller_budget(tiny_run, primer, tmp_path):
    """`--seconds 1 --tokens 200000000`: about a second of music, so a few hundred tokens —
    not a 1.6 GB buffer for the tokens budget (measured: the peak memory of the process)."""
    out = tmp_path / "o.mid"
    script = (
        "import resource, sys; from cli.main import main\n"
        "try: main(sys.argv[1:])\n"
        "except SystemExit as e: code = e.code\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        "sys.exit(code)\n"
    )
    args = ["continue", str(primer), "-o", str(out), "--model", str(tiny_run), "--seconds", "1",
            "--tokens", "200000000", "-q", "--device", "cpu"]  # fmt: skip
    run = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    peak_kib = int(run.stdout.strip().splitlines()[-1])
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["continuation"]["stopped_by"] == "seconds"
    # 200e6 int64 tokens alone are 1.6 GB (1,562,500 KiB); the whole process stays far below
    assert peak_kib < 1_000_000, f"peak {peak_kib} KiB"  # ru_maxrss is in KiB on Linux


# --- item 11: temperatures beyond float32 ------------------------------------------------------


def _continue(tiny_run, primer, out, temperature) -> list[tuple[float, int]]:
    args = ("--seconds", "4", "--seed", "3", "--temperature", temperature, "--continuation-only")
    result = cli("continue", primer, "-o", out, "--model", tiny_run, *args, "-q")
    assert result.exit_code == 0, result.output
    return new_notes(out)


def test_tiny_temperatures_are_greedy(tiny_run, primer, tmp_path):
    greedy = _continue(tiny_run, primer, tmp_path / "t0.mid", "0")
    assert greedy, "the greedy continuation has notes"
    for t in ("1e-40", "1e-300"):
        assert _continue(tiny_run, primer, tmp_path / f"t{t}.mid", t) == greedy, t


def test_huge_temperatures_sample_uniformly_never_silence(tiny_run, primer, tmp_path):
    """At 1e39 or 1e300 every allowed token is equally likely: the same draws (same seed)
    at both, and notes — not 4 s of silence."""
    a = _continue(tiny_run, primer, tmp_path / "a.mid", "1e39")
    b = _continue(tiny_run, primer, tmp_path / "b.mid", "1e300")
    assert len(a) >= 4 and a == b


# --- item 12: train --init with a contradicting --arch / --preset ------------------------------


@pytest.mark.parametrize(
    "extra, word",
    [(("--arch", "lstm"), "--arch lstm contradicts"), (("--preset", "tiny"), "--preset tiny")],
)
def test_init_contradicted_by_arch_or_preset_is_refused(
    tiny_run, bach_data_dir, tmp_path, extra, word
):
    out = tmp_path / "run"
    err = one_line_error(cli("train", "--init", tiny_run, "--data", bach_data_dir, "--out", out,
                             "--max-steps", "1", "--device", "cpu", "-q", *extra))  # fmt: skip
    assert word in err and "leave" in err
    assert not out.exists()


def test_init_records_the_architecture_it_trains(tiny_run, bach_data_dir, tmp_path):
    """No --arch: the run trains the init model's architecture and options.json says so; the
    same --arch as the model's is accepted."""
    out = tmp_path / "run"
    result = cli("train", "--init", tiny_run, "--data", bach_data_dir, "--out", out,
                 "--arch", "transformer", "--max-steps", "1", "--seq-len", "32", "--batch-size",
                 "2", "--device", "cpu", "--precision", "fp32", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((out / "options.json").read_text())["arch"] == "transformer"


# --- item 13: one rule per option, where it is parsed ------------------------------------------


@pytest.mark.parametrize("option", ["--context", "--max-pieces", "--batch-size", "--window"])
def test_evaluate_zero_counts_are_refused(tiny_run, bach_data_dir, option):
    err = one_line_error(cli("evaluate", tiny_run, "--data", bach_data_dir, option, "0", "-q"))
    assert option in err and "x>=1" in err


def test_evaluate_library_refuses_zero_counts_too(tiny_run, bach_data_dir):
    from music_transformer.evaluation import evaluate
    from music_transformer.evaluation.split_nll import EvaluationError

    for field in ("context", "max_pieces", "batch_size"):
        with pytest.raises(EvaluationError, match=f"--{field.replace('_', '-')} must be"):
            evaluate(tiny_run, bach_data_dir, "valid", **{"context": None, field: 0})


def test_train_seq_len_one_is_refused(bach_data_dir, tmp_path):
    out = tmp_path / "run"
    quick = ("--max-steps", "1", "--preset", "tiny", "--device", "cpu", "-q")  # if not refused
    err = one_line_error(
        cli("train", "--data", bach_data_dir, "--out", out, "--seq-len", "1", *quick)
    )
    assert "--seq-len" in err and "x>=2" in err
    from music_transformer.training import TrainError, TrainOptions

    with pytest.raises(TrainError, match="seq_len must be ≥ 2"):
        TrainOptions(data_dir=str(bach_data_dir), out_dir=str(out), seq_len=1)


# --- item 14: compare the same model with itself -----------------------------------------------


def test_compare_refuses_the_same_model_twice(tiny_run, primer, tmp_path):
    copy = shutil.copytree(tiny_run / "best", tmp_path / "copy")
    for models in (
        f"{tiny_run},{tiny_run}",
        f"{tiny_run},{tiny_run / 'best'}",
        f"{tiny_run},{copy}",
    ):
        err = one_line_error(cli("compare", "--models", models, "--primers", primer,
                                 "--out", tmp_path / "cmp", "--audio", "none"))  # fmt: skip
        assert "are the same model" in err
    assert not (tmp_path / "cmp").exists()


# --- item 15: --window with an LSTM ------------------------------------------------------------


def test_window_with_an_lstm_is_refused(tiny_run, primer, tmp_path):
    from music_transformer.checkpoint import load_checkpoint, save_checkpoint
    from music_transformer.nn import build_model
    from music_transformer.nn.config import make_config

    tok = load_checkpoint(tiny_run).tokenizer
    config = make_config("lstm", "tiny", tok.vocab_size)
    lstm = save_checkpoint(tmp_path / "lstm", build_model(config), config, tok, {"seq_len": 32})
    for command in (
        ("continue", primer, "-o", tmp_path / "o.mid"),
        ("generate", "-o", tmp_path / "g"),
    ):
        err = one_line_error(cli(*command, "--model", lstm, "--window", "5", "--tokens", "4", "-q"))
        assert "--window 5" in err and "LSTM" in err and "leave --window out" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lstm"]


# --- messages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["nan,0,0", "inf,-inf,0", "nan,nan,nan"])
def test_prepare_split_with_nan_or_infinity_says_what_is_wrong(bach_midi_dir, tmp_path, split):
    err = one_line_error(cli("prepare", bach_midi_dir, "--out", tmp_path / "d", "--split", split))
    assert err.startswith("Error: --split") and "≥ 0 summing to 1" in err
    assert "convert" not in err


def test_a_soundfont_folder_is_searched_like_the_default_places(tmp_path):
    from midi_data.render import RenderError, find_soundfont

    default = next((Path(d) for d in SOUNDFONT_DIRS if list(Path(d).glob("*.sf2"))), None)
    if default is not None:  # the folder the help names is a fine --soundfont
        assert find_soundfont(default).parent == default
    empty = tmp_path / "sf"
    empty.mkdir()
    with pytest.raises(RenderError, match=f"soundfont folder {empty} holds no .sf2 file"):
        find_soundfont(empty)
    with pytest.raises(RenderError, match="does not exist"):
        find_soundfont(tmp_path / "missing.sf2")
