"""`compare` without FluidSynth (MIDI and piano rolls still made, a clear message), seeding,
and option errors, with small untrained checkpoints (fast; the trained-model run and the
browser test are in test_compare.py)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from cli.main import main
from midi_data import make_tokenizer
from music_transformer.checkpoint import save_checkpoint
from music_transformer.nn import build_model
from music_transformer.nn.config import make_config


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> list[Path]:
    tok = make_tokenizer("performance")
    root = tmp_path_factory.mktemp("untrained")
    dirs = []
    for arch in ("transformer", "lstm"):
        torch.manual_seed(0)
        config = make_config(arch, "tiny", tok.vocab_size)
        dirs.append(save_checkpoint(root / arch, build_model(config), config, tok, {"seq_len": 64}))
    return dirs


@pytest.fixture(scope="module")
def primers(bach_midi_dir: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("primers")
    for path in sorted(bach_midi_dir.glob("*.mid"))[:2]:
        shutil.copyfile(path, folder / path.name)
    return folder


def run(models: list[Path], primers: Path, out: Path, *extra: object):
    args = ["compare", "--models", ",".join(map(str, models)), "--primers", primers,
            "--out", out, "--seconds", 2, "--primer-seconds", 4, "--quiet", *extra]  # fmt: skip
    return CliRunner().invoke(main, [str(a) for a in args])


def samples_by_model(out: Path) -> dict[tuple[str, str], bytes]:
    key = json.loads((out / "key.json").read_text())
    return {
        (s["model"], Path(s["primer"]).name): next(out.glob(f"*/{sid}.mid")).read_bytes()
        for sid, s in key["samples"].items()
    }


def test_without_fluidsynth(models, primers, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    out = tmp_path / "report"
    result = run(models, primers, out, "--seed", 1)
    assert result.exit_code == 0, result.output
    assert "no audio" in result.stderr and "'fluidsynth'" in result.stderr
    assert "timgm6mb-soundfont" in result.stderr
    assert not list(out.rglob("*.wav"))
    key = json.loads((out / "key.json").read_text())
    for sid in key["samples"]:
        assert next(out.glob(f"*/{sid}.png")).stat().st_size > 0
    page = (out / "index.html").read_text()
    assert "<audio" not in page and "No audio" in page and "fluidsynth" in page
    assert len(re.findall(r'class="pair"', page)) == len(key["pairs"]) == 2
    report = json.loads((out / "report.json").read_text())
    assert report["audio"]["available"] is False


def test_same_seed_same_music(models, primers, tmp_path: Path) -> None:
    first, again, other = (tmp_path / n for n in ("a", "b", "c"))
    for out, seed in ((first, 5), (again, 5), (other, 6)):
        assert (
            run(models, primers, out, "--seed", seed, "--soundfont", "/dev/null/none").exit_code
            == 2
        )
        result = run(models, primers, out, "--seed", seed)
        assert result.exit_code == 0, result.output
    a, b, c = samples_by_model(first), samples_by_model(again), samples_by_model(other)
    assert a == b  # reproducible; sample file names are random but the music is not
    assert a != c
    # the A/B order is seeded too
    keys = [json.loads((p / "key.json").read_text())["pairs"] for p in (first, again)]
    assert [(v["A"], v["B"]) for v in keys[0].values()] == [
        (v["A"], v["B"]) for v in keys[1].values()
    ]


def test_force_replaces_only_our_files(models, primers, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert run(models, primers, out, "--seed", 1).exit_code == 0
    (out / "notes.txt").write_text("mine")
    old = set(out.glob("*/*.mid"))
    result = run(models, primers, out, "--seed", 2, "--force")
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_text() == "mine"
    assert not old & set(out.glob("*/s-*.mid"))  # the old samples are gone
