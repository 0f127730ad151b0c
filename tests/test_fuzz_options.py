"""Fuzzing option values (the other half of the fuzz suite; test_fuzz.py mutates MIDI files):
random numbers, NaN, infinities, huge and tiny values, odd text and odd paths, drawn with a fixed
seed for `continue`, `generate`, `prepare` and `evaluate` with the session's tiny model and
real chorales. The rule for every case: one line and exit 2, or a valid result — never a
traceback, never silence presented as music, never an input file changed."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
from pathlib import Path

import pretty_midi
import pytest
from click.testing import CliRunner

from cli.main import main
from tests.test_fuzz import time_limit

SECONDS_PER_CASE = 60  # a hang, not a slow case on a loaded machine
NUMBERS = [
    "0", "-1", "1", "2", "7", "3.5", "-0.0", "0.001", "1e-320", "1e-40", "1e39", "1e308",
    "1e400", "nan", "-nan", "inf", "-inf", "9223372036854775808", "99999999999999999999",
    "0x10", "", " ", "1,2", "½", "٣", "1_0", "+5", "abc",
]  # fmt: skip
# Relative to the case's own working folder (the tests run as root on some machines: no
# absolute path a write could reach, except /proc, where nothing can be created).
PATHS = [
    "", " ", ".", "..", "/proc/x.mid", "a/../b.mid", "x" * 300 + ".mid", "über café.mid",
    "-", "~/x.mid", "dir/", "primer.mid", "sub/./o.MID", "o.json", "manifest.json",
]  # fmt: skip
TEXT = ["", " ", "nan", "bogus", "TRAIN", "valid,test", "ü"]

NUMERIC = {
    "continue": ["--seconds", "--tokens", "--temperature", "--top-k", "--top-p", "--seed",
                 "--window", "--primer-seconds", "--max-note-seconds", "--no-repeat-ngram",
                 "--num-samples", "--batch-size", "--time-limit"],
    "generate": ["--seconds", "--tokens", "--temperature", "--top-k", "--top-p", "--seed",
                 "--num-samples", "--batch-size", "--max-note-seconds", "--window"],
    "prepare": ["--workers"],
    "evaluate": ["--context", "--window", "--batch-size", "--max-pieces"],
}  # fmt: skip
PATHLIKE = {
    "continue": ["-o", "PRIMER"],
    "generate": ["-o", "--primers"],
    "prepare": ["--out", "SOURCE", "--tokenizer-from"],
    "evaluate": ["--data", "MODEL"],
}
TEXTLIKE = {"prepare": ["--split"], "evaluate": ["--split", "--precision"], "continue": [],
            "generate": ["--precision"]}  # fmt: skip
CASES_PER_COMMAND = {"continue": 28, "generate": 12, "prepare": 14, "evaluate": 14}


def draw(command: str, rng: random.Random) -> list[tuple[str, str]]:
    """One or two (option, value) pairs for `command`."""
    pairs = []
    for _ in range(rng.choice([1, 1, 2])):
        kind = rng.choice(["number"] * 3 + ["path", "text"])
        if kind == "path" or (kind == "text" and not TEXTLIKE[command]):
            pairs.append((rng.choice(PATHLIKE[command]), rng.choice(PATHS)))
        elif kind == "text":
            option = rng.choice(TEXTLIKE[command])
            value = rng.choice(TEXT)
            if option == "--split":  # three numbers (or not) drawn from NUMBERS
                value = ",".join(rng.choice(NUMBERS) for _ in range(rng.choice([2, 3, 3, 4])))
            pairs.append((option, value))
        else:
            pairs.append((rng.choice(NUMERIC[command]), rng.choice(NUMBERS)))
    return pairs


def _cases() -> list[pytest.param]:
    rng = random.Random(int(os.environ.get("FUZZ_SEED", "34")))  # other seeds: explore
    cases = []
    for command, n in CASES_PER_COMMAND.items():
        for i in range(n):
            pairs = draw(command, rng)
            label = " ".join(f"{o}={v[:12]!r}" for o, v in pairs)
            cases.append(pytest.param(command, pairs, id=f"{command}-{i:02d} {label}"))
    return cases


def tree_hash(*roots: Path) -> str:
    """One digest over every file under `roots` (names and bytes)."""
    h = hashlib.sha256()
    for root in roots:
        for p in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if p.is_file():
                h.update(str(p).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def inputs(bach_midi_dir: Path, tiny_run: Path, bach_data_dir: Path, tmp_path_factory):
    """The inputs every case may read: a primer, a folder of three chorales, the model and
    a data directory — copies, so that a case that changed one cannot hide."""
    root = tmp_path_factory.mktemp("fuzz-inputs")
    chorales = root / "chorales"
    chorales.mkdir()
    for p in sorted(bach_midi_dir.glob("*.mid"))[:3]:
        shutil.copy(p, chorales / p.name)
    return {
        "primer": chorales / sorted(p.name for p in chorales.iterdir())[0],
        "chorales": chorales,
        "model": shutil.copytree(tiny_run / "best", root / "model"),
        "data": shutil.copytree(bach_data_dir, root / "data"),
    }


def base_args(command: str, inputs: dict[str, Path]) -> dict[str, str]:
    """The options of a command that works, by option name (positional ones in capitals)."""
    model = str(inputs["model"])
    common = {"--model": model, "--seed": "1", "--device": "cpu", "-q": ""}
    if command == "continue":
        return {"PRIMER": str(inputs["primer"]), "-o": "out.mid", "--seconds": "1.5",
                "--continuation-only": "", **common}  # fmt: skip
    if command == "generate":
        return {"-o": "gen", "--num-samples": "2", "--seconds": "1.5", **common}
    if command == "prepare":
        return {"SOURCE": str(inputs["chorales"]), "--out": "data", "-j": "1", "-q": ""}
    return {"MODEL": model, "--data": str(inputs["data"]), "--split": "valid", "--max-pieces": "1",
            "--context": "64", "--device": "cpu", "--json": "", "-q": ""}  # fmt: skip


def command_line(command: str, args: dict[str, str]) -> list[str]:
    line = [command]
    line += [v for k, v in args.items() if k.isupper()]
    for k, v in args.items():
        if not k.isupper():
            line += [k] if v == "" and k in ("-q", "--json", "--continuation-only") else [k, v]
    return line


def check_music(midi: Path, sidecar: Path) -> None:
    """A written piece is a MIDI file others read, and a continuation of a second or more is
    never silent."""
    record = json.loads(sidecar.read_text())
    new = record["continuation"]
    pm = pretty_midi.PrettyMIDI(str(midi))
    notes = [n for i in pm.instruments for n in i.notes]
    if new["seconds"] >= 1.0:
        assert notes, f"{midi.name}: {new['seconds']} s of continuation and not one note"


def check_valid(command: str, result, cwd: Path, args: dict[str, str]) -> None:
    if command == "continue":
        out = cwd / args["-o"]
        outs = [out] if args.get("--num-samples", "1") in ("1", "+1") else None
        outs = outs or sorted(out.parent.glob(f"{out.stem}-*{out.suffix}"))
        assert outs, result.output
        for midi in outs:
            check_music(midi, midi.with_suffix(".json"))
    elif command == "generate":
        manifest = json.loads((cwd / args["-o"] / "manifest.json").read_text())
        assert manifest["outputs"]
        for entry in manifest["outputs"]:
            check_music(cwd / args["-o"] / entry["file"], cwd / args["-o"] / entry["sidecar"])
    elif command == "prepare":
        from midi_data import open_data

        assert open_data(cwd / args["--out"]).num_pieces("train") >= 1
    else:
        nll = json.loads(result.stdout)["nll"]
        assert math.isfinite(nll) and nll > 0, nll


@pytest.mark.parametrize("command, pairs", _cases())
def test_option_values(command, pairs, inputs, tmp_path, monkeypatch) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    shutil.copy(inputs["primer"], cwd / "primer.mid")  # an odd path may name it
    monkeypatch.chdir(cwd)
    before = tree_hash(*inputs.values(), cwd / "primer.mid")
    args = base_args(command, inputs)
    args.update(pairs)
    with time_limit(SECONDS_PER_CASE):
        result = CliRunner().invoke(main, command_line(command, args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        check_valid(command, result, cwd, args)
    else:
        assert result.exit_code == 2, result.output
        errors = result.stderr.strip().splitlines()
        assert len(errors) == 1 and errors[0].startswith("Error: "), result.stderr
    assert tree_hash(*inputs.values(), cwd / "primer.mid") == before, "an input changed"
    assert not [p for p in cwd.rglob(".*") if p.name.endswith(".tmp")], "temporary file left"
