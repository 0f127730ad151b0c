"""`compare` without FluidSynth (one line, exit 2, as continue and generate; `--audio none`
makes MIDI and piano rolls only), seeding, where primers are cut, why a metric is missing,
and option errors, with small untrained checkpoints (fast; the trained-model run and the
browser test are in test_compare.py)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pretty_midi
import pytest
import torch

from midi_data import make_tokenizer
from music_transformer.checkpoint import bundled_models, save_checkpoint
from music_transformer.comparison.primers import MIN_PRIMER_SECONDS, primer_cut
from music_transformer.nn import build_model
from music_transformer.nn.config import make_config
from tests.helpers import cli, retimed_chorale


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
    return cli(*args)


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
    # the message continue --audio and generate --audio give, plus the way out; nothing written
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("Error: FluidSynth is not installed") and "\n" not in err, err
    assert "'fluidsynth'" in err and "timgm6mb-soundfont" in err and "--audio none" in err
    assert not out.exists()
    result = run(models, primers, out, "--seed", 1, "--audio", "none")
    assert result.exit_code == 0, result.output
    assert "no audio" not in result.stderr  # asked for: nothing to warn about
    assert not [f for f in out.rglob("*") if f.suffix in (".wav", ".mp3", ".ogg", ".flac")]
    key = json.loads((out / "key.json").read_text())
    for sid in key["samples"]:
        assert next(out.glob(f"*/{sid}.png")).stat().st_size > 0
    page = (out / "index.html").read_text()
    assert "<audio" not in page and "No audio: --audio none" in page
    assert len(re.findall(r'class="pair"', page)) == len(key["pairs"]) == 2
    report = json.loads((out / "report.json").read_text())
    assert report["audio"]["available"] is False and report["audio"]["format"] is None


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


@pytest.mark.parametrize(
    "piece, requested, seconds, cut",
    [
        (12.0, 10.0, 15.0, MIN_PRIMER_SECONDS),  # the bundled primers: 8 s follow, no more
        (12.0, 10.0, 6.0, 6.0),  # 6 s follow, as many as generated
        (30.0, 10.0, 15.0, 10.0),  # long enough: the cut asked for
        (12.0, 10.0, None, 10.0),  # a token budget: no length to match
        (12.0, 3.0, 15.0, 3.0),  # never later than asked
        (3.0, 10.0, 15.0, 10.0),  # too short for anything to follow a cut
    ],
)
def test_primer_cut_rule(piece, requested, seconds, cut) -> None:
    assert primer_cut(piece, requested, seconds) == pytest.approx(cut)


def test_short_primers_are_cut_earlier(models, tmp_path: Path) -> None:
    """The bundled 12-s primers with 6 s asked for: cut at 6 s (not 10) so that 6 s of the real
    piece follow, as long as each model's continuation; the page says so per primer. An
    explicit --primer-seconds is kept, and the page says how little real music follows."""
    bundled = next(iter(bundled_models().values())).parent / "primers"
    folder = tmp_path / "chorales"  # the three Bach primers (12 s each)
    folder.mkdir()
    for primer in sorted(bundled.glob("bwv*.mid")):
        (folder / primer.name).write_bytes(primer.read_bytes())
    out = tmp_path / "report"
    args = ["compare", "--models", ",".join(map(str, models)), "--primers", folder, "--out", out,
            "--seconds", 6, "--seed", 3, "--audio", "none", "--quiet"]  # fmt: skip
    result = cli(*args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    page = (out / "index.html").read_text()
    assert len(report["primers"]) == 3
    for entry in report["primers"]:
        assert entry["piece_seconds"] == pytest.approx(12.0, abs=0.05), entry
        assert entry["cut"] == pytest.approx(6.0) and entry["requested_cut"] == 10.0
        assert entry["real_seconds"] == pytest.approx(6.0, abs=0.05)
        assert "Primer cut at 6.0 s (not 10 s) so that 6.0 s of the real piece follow" in page
        real = pretty_midi.PrettyMIDI(str(out / entry["folder"] / "real.mid"))
        onsets = [n.start for i in real.instruments for n in i.notes]
        assert max(onsets) > 6.0 + 4.0  # the real continuation reaches far past the old 2 s
    assert "primer cut at 6.0 s" in result.stderr.lower()
    key = json.loads((out / "key.json").read_text())
    assert all(s["seconds"] >= 6.0 - 0.05 for s in key["samples"].values())

    kept = tmp_path / "kept"
    result = cli(*[str(a) for a in args[:6]] + [str(kept), "--seconds", "6",
                                "--primer-seconds", "10", "--audio", "none", "-q"])  # fmt: skip
    assert result.exit_code == 0, result.output
    entry = json.loads((kept / "report.json").read_text())["primers"][0]
    assert entry["cut"] == 10.0 and entry["real_seconds"] == pytest.approx(2.0, abs=0.05)
    assert "only 2.0 s of the real piece follow" in (kept / "index.html").read_text()


def test_missing_metrics_say_why(models, primers, tmp_path: Path) -> None:
    """Two primers, 2 s each, no --data: no NLL, no set level (needs 3 primers), no
    self-similarity (needs 4 s). metrics.json records why; the page shows it under the table."""
    out = tmp_path / "report"
    assert run(models, primers, out, "--seed", 1, "--audio", "none").exit_code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for m in metrics["models"].values():
        assert m["nll"] is None and "no --data given" in m["missing"]["nll"]
        assert m["set"] is None and "3 or more primers (this report: 2)" in m["missing"]["set"]
        assert m["mean"]["self_similarity"] is None
        assert "4 s or more" in m["missing"]["mean.self_similarity"]
    assert "4 s or more" in metrics["real"]["missing"]["mean.self_similarity"]
    page = (out / "index.html").read_text()
    metrics_html = page[page.index('id="metrics"') :]
    assert "n/a<sup>1</sup>" in metrics_html and "—" not in metrics_html
    reasons = re.findall(r'<ol class="why"[^>]*>(.*?)</ol>', metrics_html)
    assert any("no --data given" in r for r in reasons)
    assert any("3 or more primers" in r for r in reasons)
    assert any("4 s or more of music" in r for r in reasons)


def test_a_beat_time_model_plays_on_the_primer_files_clock(bach_midi_dir, tmp_path) -> None:
    """jsb tokens count beats at 120 BPM; at 80 BPM the sample must still be cut where the real
    continuation starts and last the seconds asked, on the file's clock (it ran 1.5× fast)."""
    folder = tmp_path / "primers"
    folder.mkdir()
    retimed_chorale(bach_midi_dir, folder / "slow.mid", {0: 750000})  # 80 BPM
    tok = make_tokenizer("jsb")
    torch.manual_seed(0)
    config = make_config("transformer", "tiny", tok.vocab_size)
    model = build_model(config)
    other = save_checkpoint(tmp_path / "tiny-jsb", model, config, tok, {"seq_len": 64})
    out = tmp_path / "report"
    args = ["compare", "--models", f"jsb-relative,{other}", "--primers", folder, "--out", out,
            "--primer-seconds", 6, "--seconds", 8, "--audio", "none", "--seed", 1,
            "-q"]  # fmt: skip
    result = cli(*args)
    assert result.exit_code == 0, result.output
    key = json.loads((out / "key.json").read_text())
    (sid,) = [k for k, v in key["samples"].items() if v["model"] == "jsb-relative"]
    sample = out / "p01-slow" / f"{sid}.mid"
    notes = [n for i in pretty_midi.PrettyMIDI(str(sample)).instruments for n in i.notes]
    step = 60 / 80 / 4  # a 16th at 80 BPM
    real = pretty_midi.PrettyMIDI(str(out / "p01-slow" / "real.mid"))
    onsets = {(n.pitch, round(n.start / step)) for i in real.instruments for n in i.notes}
    heard = [n for n in notes if n.start < 6 - 1e-6]
    assert len(heard) >= 8  # the primer's notes sit where the piece has them (at 120 BPM:
    assert all((n.pitch, round(n.start / step)) in onsets for n in heard)  # 2/3 of the times)
    new = [n for n in notes if n.start >= 6 - 1e-6]
    assert 0.9 * 8 - step <= max(n.end for n in new) - 6 <= 1.1 * 8 + step
