"""A tiny Transformer trained on the JSB Chorales grid: `evaluate` on the official valid split
and `continue` from a real Bach chorale MIDI, end to end through the CLI."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from midi_data.jsb import REST, midi_to_grid
from midi_data.shards import prepare
from music_transformer.checkpoint import read_meta, resolve_model_dir
from music_transformer.training import build_options, train
from tests.helpers import SHARED_DATA, cli, cpu_train_options, run_recipe, shared_path

JSB_JSON = SHARED_DATA / "jsb-chorales" / "Jsb16thSeparated.json"
L = 64  # training length of the tiny model: 16 sixteenth-note steps


@pytest.fixture(scope="module")
def jsb_data(tmp_path_factory) -> Path:
    shared_path("jsb-chorales", "Jsb16thSeparated.json")  # or skip
    out = tmp_path_factory.mktemp("jsb_model") / "data"
    prepare([str(JSB_JSON)], out, preset="jsb", workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def jsb_run(jsb_data: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("jsb_model") / "run"
    options = cpu_train_options(
        jsb_data, out, max_steps=40, seq_len=L, batch_size=8, lr=1e-2, warmup_steps=5,
        eval_every=40, eval_batches=4, save_every=40,
    )  # fmt: skip
    return train(options)


@pytest.fixture(scope="module")
def chorale(bach_midi_dir: Path) -> Path:
    """A music21 Bach chorale MIDI with exactly the four sung parts."""
    for path in sorted(bach_midi_dir.glob("*.mid")):
        names = [i.name for i in pretty_midi.PrettyMIDI(str(path)).instruments if i.notes]
        if names == ["Soprano", "Alto", "Tenor", "Bass"]:
            return path
    pytest.fail("no plain SATB chorale among the fixtures")


def test_evaluate_on_the_valid_split(jsb_run: Path, jsb_data: Path) -> None:
    args = ["evaluate", str(jsb_run), "--data", str(jsb_data), "--split", "valid",
            "--device", "cpu", "--batch-size", "16", "--json"]  # fmt: skip
    result = cli(*args)
    assert result.exit_code == 0, result.output
    d = json.loads(result.output)
    assert d["pieces"] == 76 and d["train_seq_len"] == L
    # every token after each piece's BOS is scored once: the split's tokens minus one per piece
    tokens = np.load(jsb_data / "valid.tokens.npy")
    assert d["tokens"] == len(tokens) - 76
    assert math.isfinite(d["nll"]) and d["nll"] < math.log(50)  # better than uniform


def _valid_nll(model: str, jsb_data: Path, pieces: int) -> float:
    args = ["evaluate", model, "--data", str(jsb_data), "--split", "valid", "--device", "cpu",
            "--max-pieces", str(pieces), "--json"]  # fmt: skip
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["nll"]


def test_bundled_jsb_relative_evaluates_by_name(jsb_run: Path, jsb_data: Path) -> None:
    shipped = _valid_nll("jsb-relative", jsb_data, 6)
    # far better than uniform over the 50 tokens and than the tiny model trained above
    assert shipped < 1.0 < math.log(50)
    assert shipped < _valid_nll(str(jsb_run), jsb_data, 6) - 0.3


@pytest.mark.parametrize("which", ["tiny", "jsb-relative"])
def test_continue_a_bach_chorale(which: str, request, chorale: Path, tmp_path: Path) -> None:
    out = tmp_path / "more.mid"
    # the bundled model needs no JSB data: only the tiny one trains on it (or skips)
    model = str(request.getfixturevalue("jsb_run")) if which == "tiny" else which
    args = ["continue", str(chorale), "-o", str(out), "--model", model, "--tokens", "96",
            "--seed", "3", "--device", "cpu", "--quiet", "--primer-seconds", "4"]  # fmt: skip
    result = cli(*args)
    assert result.exit_code == 0, result.output
    pm = pretty_midi.PrettyMIDI(str(out))
    assert [i.name for i in pm.instruments if i.notes][:1] == ["Soprano"]
    primer = midi_to_grid(chorale)[:32]  # (32, 4): 4 s at 120 BPM = 32 sixteenths
    # Each voice's track starts with that voice of the primer. (Read by track name, not by
    # re-encoding: re-encoding orders tracks by mean pitch, which the continuation can change.)
    tracks = {i.name: i for i in pm.instruments}
    sixteenth = pm.resolution / 4  # ticks
    for v, name in enumerate(["Soprano", "Alto", "Tenor", "Bass"]):
        line = np.full(32, REST)
        for n in tracks[name].notes:
            a, b = (round(pm.time_to_tick(t) / sixteenth) for t in (n.start, n.end))
            line[a : min(b, 32)] = n.pitch
        sounding = primer[:, v] != REST
        assert np.array_equal(line[sounding], primer[sounding, v]), name
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["primer"]["tokens"] == 128 and record["continuation"]["tokens"] <= 96


def test_continue_refuses_a_primer_that_is_not_four_voices(tmp_path: Path) -> None:
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    for beat in range(8):
        piano.notes += [
            pretty_midi.Note(80, p, beat * 0.5, beat * 0.5 + 0.5) for p in (48, 52, 55, 60, 64, 67)
        ]
    pm.instruments.append(piano)
    pm.write(str(tmp_path / "cluster.mid"))
    args = ["continue", str(tmp_path / "cluster.mid"), "-o", str(tmp_path / "o.mid"),
            "--model", "jsb-relative", "--device", "cpu", "--quiet"]  # fmt: skip
    result = cli(*args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "more than four notes sound at once" in lines[0]
    assert not (tmp_path / "o.mid").exists()


RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes" / "jsb"
RECIPES = sorted(RECIPES_DIR.glob("**/*.toml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_configs_build_their_models(recipe: Path) -> None:
    from midi_data.presets import make_tokenizer
    from music_transformer.training.model_choice import model_config

    options = build_options({"data_dir": "d", "out_dir": "o"}, recipe)
    init_dir = resolve_model_dir(options.init) if options.init else None  # extend-*.toml
    config = model_config(options, make_tokenizer("jsb"), init_dir=init_dir)  # as `train` does
    if init_dir is not None:  # it continues the run it was shipped from, on that run's recipe
        training = read_meta(init_dir)["training"]
        assert options.step_offset == training["step"]
        same = ("lr", "schedule", "warmup_steps", "batch_size", "seq_len", "augment", "seed",
                "eval_every", "early_stop")  # fmt: skip
        assert {k: getattr(options, k) for k in same} == {k: training["recipe"][k] for k in same}
    assert options.seq_len == 1024 and options.eval_every > 0  # paper length; select on valid
    if recipe.stem.startswith("relative"):  # the paper's relative Transformer on JSB
        assert (config.n_layers, config.d_model, config.d_ff, config.n_heads) == (5, 512, 512, 8)
        assert config.position == "relative" and config.max_rel_dist == 256
    elif recipe.stem.startswith("absolute"):  # the paper's baseline Transformer
        assert (config.n_layers, config.d_model, config.d_ff, config.n_heads) == (5, 256, 1024, 8)
        assert config.position == "absolute"
    table2_inputs = ("concat" in recipe.stem) or ("pitch" in recipe.stem)
    assert bool(config.arch == "transformer" and config.concat_positions) == table2_inputs
    # every Table 2 row is augmented alike; the first recipes (recipes/jsb/first/) were not
    assert options.augment == (recipe.parent.name != "first")


def test_voice_labels_and_concatenated_positions_train_evaluate_and_continue(
    jsb_data: Path, chorale: Path, tmp_path: Path
) -> None:
    """The paper's Table 2 inputs on the real grid: a tiny model with voice labels,
    concatenated position sinusoids and relative pitch and time trains (its config records
    the jsb frame and pitch tokens), scores the valid split, refuses a context that would
    shift the voices, and continues a chorale past its training length."""
    options = cpu_train_options(
        jsb_data, tmp_path / "run", max_steps=20, seq_len=L, batch_size=8, lr=1e-2,
        warmup_steps=5, eval_every=20, eval_batches=2, save_every=20,
        model={"voice_dims": 8, "concat_positions": 8, "rel_pitch_time": 16},
    )  # fmt: skip
    run = train(options)
    config = json.loads((run / "best" / "config.json").read_text())["model"]
    assert (config["frame"], config["voice_dims"], config["concat_positions"]) == (4, 8, 8)
    assert config["grain"] == 16  # the sampler cuts its context on beats, as training did
    assert (config["pitch_token0"], config["pitch_tokens"]) == (4, 46)
    assert math.isfinite(_valid_nll(str(run), jsb_data, 4))
    args = ["evaluate", str(run), "--data", str(jsb_data), "--split", "valid", "--device",
            "cpu", "--max-pieces", "2", "--context", "30"]  # fmt: skip
    result = cli(*args)
    assert result.exit_code == 2 and "multiple of its 4 tokens per step" in result.stderr
    out = tmp_path / "more.mid"
    result = cli(
        *["continue", str(chorale), "-o", str(out), "--model", str(run), "--seconds", "12",
               "--seed", "1", "-q"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert midi_to_grid(pretty_midi.PrettyMIDI(str(out))).shape[1] == 4


def test_precision_parity_recipe_runs_end_to_end(jsb_data: Path, tmp_path: Path) -> None:
    """recipes/precision/run.sh, cut to 4 steps and 2 pieces: an fp32 and a bf16 run of one
    seed train, each best is scored in both precisions, and results.md compares them. Same
    seed, same windows: after 2 steps both precisions are within 1% of each other."""
    run_recipe("precision/run.sh", DATA=str(jsb_data), RUNS=str(tmp_path / "runs"), SEEDS="1",
               TRAIN_ARGS="--max-steps 4 --eval-every 2 --save-every 2 --device cpu",
               EVAL_ARGS="--max-pieces 2 --device cpu")  # fmt: skip
    for p in ("fp32", "bf16"):
        run = tmp_path / "runs" / f"{p}-seed1"
        for e in ("fp32", "bf16"):
            result = json.loads((run / f"eval-valid-{e}.json").read_text())
            assert result["precision"] == e and math.isfinite(result["nll"])
    curves = {
        p: [json.loads(line) for line in (tmp_path / "runs" / f"{p}-seed1" / "metrics.jsonl")
            .read_text().splitlines()]
        for p in ("fp32", "bf16")
    }  # fmt: skip
    first = {p: next(r["nll"] for r in c if r.get("split") == "valid") for p, c in curves.items()}
    assert abs(first["bf16"] - first["fp32"]) / first["fp32"] < 0.01, first
    report = (tmp_path / "runs" / "results.md").read_text()
    assert "| fp32-seed1 |" in report and "| bf16-seed1 |" in report
    assert "| bf16 vs fp32, seed 1 |" in report


def test_table2_recipe_trains_resumes_and_tabulates(jsb_data: Path, tmp_path: Path) -> None:
    """recipes/jsb/run.sh for one row, cut to 2 steps on short windows: it trains, scores
    valid and test at both contexts and writes the table; `--resume` then continues the
    interrupted run from its last checkpoint instead of starting again."""
    runs = tmp_path / "runs"

    def recipe(*args: str, steps: int) -> None:
        train = f"--max-steps {steps} --seq-len 64 --batch-size 2 --device cpu -q"
        run_recipe("jsb/run.sh", *args, DATA=str(jsb_data), RUNS=str(runs), TRAIN_ARGS=train,
                   EVAL_ARGS="--max-pieces 1 --device cpu")  # fmt: skip

    recipe("absolute", steps=2)
    recipe("--resume", "absolute", steps=3)
    run = runs / "absolute"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    trained = [r["step"] for r in rows if r.get("split") == "train"]
    assert trained == sorted(set(trained)) and trained[-1] == 3, trained  # no step twice
    assert [r["step"] for r in rows if r.get("split") == "setup"] == [0, 2]  # resumed at 2
    for split in ("valid", "test"):
        for context in (1024, 4096):
            result = json.loads((run / f"eval-{split}-{context}.json").read_text())
            assert math.isfinite(result["nll"])
    assert "| absolute |" in (runs / "results.md").read_text()
    last_valid = [r for r in rows if r.get("split") == "valid"][-1]  # the curves, from the log
    curve = next(x for x in (runs / "curves.md").read_text().splitlines() if "| absolute |" in x)
    assert curve.split("|")[-2].strip(" *") == f"{last_valid['nll']:.3f}"  # newest column
    assert (runs / "curves.png").read_bytes()[:4] == b"\x89PNG"

    # a row still in training (no eval-*.json yet) shows its best validation so far
    shutil.copytree(run, runs / "in-training")
    for f in (runs / "in-training").glob("eval-*.json"):
        f.unlink()
    script = str(RECIPES_DIR / "table.py")
    table = subprocess.run([sys.executable, script, str(runs), "in-training"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    best = min((r for r in rows if r.get("split") == "valid"), key=lambda r: r["nll"])
    assert f"| {best['nll']:.4f} (so far) |" in table
    assert f"| {best['step']} (training, at 3) |" in table
