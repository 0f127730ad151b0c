"""`music-transformer continue` and `generate` end to end, with a tiny Transformer trained on
real Bach chorales inside the test session, on real primers (Bach, MAESTRO, odd files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pretty_midi
import pytest

from music_transformer.checkpoint import bundled_models, load_checkpoint, save_checkpoint
from music_transformer.generation.loading import DEFAULT_MODEL
from music_transformer.nn import build_model
from music_transformer.nn.config import make_config
from tests.helpers import SHARED_DATA, cli, one_line_error, piano_files


@pytest.fixture(scope="module")
def primer_file(bach_midi_dir: Path) -> Path:
    return sorted(bach_midi_dir.glob("*.mid"))[0]


@pytest.fixture(scope="module")
def untrained_dirs(tiny_run: Path, tmp_path_factory) -> dict[str, Path]:
    """Untrained LSTM and absolute-position checkpoints sharing the run's tokenizer."""
    tok = load_checkpoint(tiny_run).tokenizer
    root = tmp_path_factory.mktemp("untrained")
    dirs = {}
    for arch in ("lstm", "transformer-absolute"):
        config = make_config(arch, "tiny", tok.vocab_size)
        dirs[arch] = save_checkpoint(root / arch, build_model(config), config, tok, {"seq_len": 32})
    return dirs


def run_continue(primer: object, out: object, model: object, *options: object):
    """`music-transformer continue PRIMER -o OUT --model MODEL OPTIONS...`"""
    return cli("continue", primer, "-o", out, "--model", model, *options)


def notes(path: Path) -> list[pretty_midi.Note]:
    pm = pretty_midi.PrettyMIDI(str(path))
    return sorted((n for i in pm.instruments for n in i.notes), key=lambda n: (n.start, n.pitch))


# --- continue ---------------------------------------------------------------------------------


def check_continuation(out: Path, primer_notes: list[pretty_midi.Note], primer_seconds: float):
    """The output holds every primer note (within 20 ms) and new notes after the primer."""
    got = notes(out)
    for n in primer_notes:
        assert any(m.pitch == n.pitch and abs(m.start - n.start) <= 0.02 for m in got), (
            f"primer note {n} missing"
        )
    new = [m for m in got if m.start >= primer_seconds - 0.02]
    assert len(new) >= 3, f"only {len(new)} new notes"


def test_continue_a_bach_chorale(tiny_run: Path, primer_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mid"
    result = run_continue(primer_file, out, tiny_run, "--seconds", "6", "--seed", "1", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # --quiet: no progress bar
    tok = load_checkpoint(tiny_run).tokenizer
    primer_pm = tok.decode(tok.encode(primer_file))
    primer_notes = [n for i in primer_pm.instruments for n in i.notes]
    side = json.loads(out.with_suffix(".json").read_text())
    check_continuation(out, primer_notes, side["primer"]["seconds"])
    assert side["sampling"]["seed"] == 1 and side["model"]["directory"].startswith(str(tiny_run))
    assert side["continuation"]["seconds"] >= 6.0 or side["continuation"]["stopped_by"] != "seconds"
    assert side["primer"]["tokens"] == len(tok.encode(primer_file))
    assert f"wrote {out}" in result.stdout


@pytest.mark.parametrize("primer", piano_files(limit=1)[-2:], ids=lambda p: p.name)
def test_continue_real_piano(primer: Path, tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "piano.mid"
    result = run_continue(primer, out, tiny_run, "--primer-seconds", "5", "--tokens", "400",
                          "--seed", "0", "--top-k", "40", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["primer"]["seconds"] <= 5.0 + 1e-6
    assert side["continuation"]["tokens"] <= 400
    original = [n for n in notes(primer) if n.start < 5.0 - 0.02]
    check_continuation(out, original, side["primer"]["seconds"])


def test_num_samples_seeds_and_continuation_only(tiny_run, primer_file, tmp_path) -> None:
    out = tmp_path / "take.mid"
    result = run_continue(primer_file, out, tiny_run, "--tokens", "120", "--num-samples", "3",
                          "--batch-size", "2", "--seed", "5", "--continuation-only",
                          "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    files = [tmp_path / f"take-{i}.mid" for i in (1, 2, 3)]
    sides = [json.loads(f.with_suffix(".json").read_text()) for f in files]
    assert [s["sampling"]["seed"] for s in sides] == [5, 6, 7]
    assert len({f.read_bytes() for f in files}) == 3
    assert not out.exists()
    assert all(not s["primer"]["included"] for s in sides)
    # Continuation only: the piece starts with the new music, not with the primer.
    primer_notes = notes(primer_file)
    first = notes(files[0])
    assert first and first[0].start < 1.5
    assert len(first) != len(primer_notes) or any(
        a.pitch != b.pitch for a, b in zip(first, primer_notes)
    )
    # Sample 2 (seed 6) again alone, with its recorded seed: the same tokens.
    again = tmp_path / "again.mid"
    result = run_continue(primer_file, again, tiny_run, "--tokens", "120", "--seed", "6",
                          "--continuation-only", "--precision", "fp32", "-q")  # fmt: skip
    assert result.exit_code == 0
    if sides[1]["sampling"]["precision_used"] == "fp32":  # bf16 rounding could differ by batch
        assert again.read_bytes() == files[1].read_bytes()


def test_same_seed_same_music_and_no_overwrite_without_force(tiny_run, primer_file, tmp_path):
    out = tmp_path / "o.mid"
    args = [
        "continue",
        primer_file,
        "-o",
        out,
        "--model",
        tiny_run,
        "--tokens",
        "80",
        "--seed",
        "3",
        "--precision",
        "fp32",
        "-q",
    ]
    assert cli(*args).exit_code == 0
    first = out.read_bytes()
    refused = cli(*args)
    one_line_error(refused, "exists", "--force")
    assert out.read_bytes() == first
    assert cli(*args, "--force").exit_code == 0
    assert out.read_bytes() == first  # same seed, same settings: the same piece


@pytest.mark.parametrize("arch", ["lstm", "transformer-absolute"])
def test_other_architectures_continue_past_their_window(
    arch, untrained_dirs, primer_file, tmp_path
) -> None:
    out = tmp_path / f"{arch}.mid"
    window = ["--window", "24"] if arch != "lstm" else []  # an LSTM has no window to set
    result = run_continue(primer_file, out, untrained_dirs[arch], "--tokens", "100", *window,
                          "--seed", "0", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["continuation"]["tokens"] >= 1
    assert side["model"]["arch"] == ("lstm" if arch == "lstm" else "transformer")
    pretty_midi.PrettyMIDI(str(out))


def test_progress_bar_unless_quiet(tiny_run, primer_file, tmp_path) -> None:
    result = cli(
        "continue", primer_file, "-o", tmp_path / "p.mid", "--model", tiny_run, "--seconds", "2"
    )
    assert result.exit_code == 0, result.output
    assert "s of music" in result.stderr


def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.mid"
    path.write_text("these are not MIDI bytes\n")
    return path


def empty_midi(tmp_path: Path) -> Path:
    pm = pretty_midi.PrettyMIDI()
    pm.instruments.append(pretty_midi.Instrument(0))
    path = tmp_path / "silent.mid"
    pm.write(str(path))
    return path


def weightless_model(tiny_run: Path, tmp_path: Path) -> Path:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    shutil.copy(load_checkpoint(tiny_run).directory / "config.json", broken / "config.json")
    return broken


BAD_CONTINUE = {
    "missing primer": (lambda t, r, p: ["nowhere.mid"], ["nowhere.mid", "does not exist"]),
    "text primer": (lambda t, r, p: [text_file(t)], ["notes.mid", "MIDI"]),
    "no notes": (lambda t, r, p: [empty_midi(t)], ["silent.mid", "no notes"]),
    "no weights": (
        lambda t, r, p: [p, "--model", weightless_model(r, t)],
        ["broken-model", "model.safetensors"],
    ),
    "no such model": (lambda t, r, p: [p, "--model", t / "nothing"], ["nothing"]),
    "top-p > 1": (lambda t, r, p: [p, "--top-p", "1.5"], ["top_p"]),
    "top-p text": (lambda t, r, p: [p, "--top-p", "lots"], ["--top-p"]),
    "temperature < 0": (lambda t, r, p: [p, "--temperature", "-1"], ["temperature"]),
    "tokens 0": (lambda t, r, p: [p, "--tokens", "0"], ["tokens"]),
    "top-k 0": (lambda t, r, p: [p, "--top-k", "0"], ["top_k"]),
    "seconds < 0": (lambda t, r, p: [p, "--seconds", "-2"], ["seconds"]),
    "num-samples 0": (lambda t, r, p: [p, "--num-samples", "0"], ["num_samples"]),
    "primer-seconds 0": (lambda t, r, p: [p, "--primer-seconds", "0"], ["primer_seconds"]),
    "device": (lambda t, r, p: [p, "--device", "tpu"], ["device"]),
}


@pytest.mark.parametrize("case", list(BAD_CONTINUE))
def test_continue_bad_input_is_one_line_and_writes_nothing(case, tiny_run, primer_file, tmp_path):
    make_args, words = BAD_CONTINUE[case]
    args = make_args(tmp_path, tiny_run, primer_file)
    if "--model" not in args:
        args += ["--model", tiny_run]
    out = tmp_path / "out" / "x.mid"
    result = cli("continue", *args, "-o", out, "-q")
    one_line_error(result, *words)
    assert not (tmp_path / "out").exists()


def test_missing_default_model_says_how_to_get_one(primer_file, tmp_path, monkeypatch) -> None:
    # As in a checkout without bundled weights: point the bundled folder at an empty one.
    monkeypatch.setattr("music_transformer.checkpoint.BUNDLED_DIR", tmp_path / "no-bundled")
    assert DEFAULT_MODEL not in bundled_models()
    result = cli("continue", primer_file, "-o", tmp_path / "x.mid", "-q")
    one_line_error(result, DEFAULT_MODEL, "train", "--model")
    assert not (tmp_path / "x.mid").exists()


# --- generate ---------------------------------------------------------------------------------


def test_generate_unconditionally_in_batches(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "samples"
    result = cli("generate", "--out", out, "--num-samples", "3",
                 "--batch-size", "2", "--model", tiny_run, "--tokens", "60",
                 "--seed", "0", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert [e["file"] for e in manifest["outputs"]] == [f"sample-{i}.mid" for i in (1, 2, 3)]
    assert [e["seed"] for e in manifest["outputs"]] == [0, 1, 2]
    assert manifest["skipped"] == []
    for entry in manifest["outputs"]:
        pretty_midi.PrettyMIDI(str(out / entry["file"]))
        side = json.loads((out / entry["sidecar"]).read_text())
        assert side["primer"] is None and side["continuation"]["tokens"] == entry["tokens"] <= 60


def test_generate_skips_bad_primers_and_goes_on(tiny_run, bach_midi_dir, tmp_path) -> None:
    primers = tmp_path / "primers"
    (primers / "nested").mkdir(parents=True)
    good = sorted(bach_midi_dir.glob("*.mid"))[:2]
    shutil.copy(good[0], primers / good[0].name)
    shutil.copy(good[1], primers / "nested" / good[1].name)
    text_file(primers)
    empty_midi(primers)
    extra = []
    odd = SHARED_DATA / "odd-midi"
    if odd.is_dir():  # files that break naive readers: each is read or skipped with a reason
        extra = ["--primers", odd]
    out = tmp_path / "takes"
    result = cli("generate", "--out", out, "--primers", primers, *extra,
                 "--num-samples", "2", "--model", tiny_run, "--tokens", "40",
                 "--primer-seconds", "4", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    skipped = {Path(s["path"]).name: s["reason"] for s in manifest["skipped"]}
    assert "notes.mid" in skipped and "silent.mid" in skipped
    assert all(name in reason for name, reason in skipped.items())
    used = {Path(e["primer"]).name for e in manifest["outputs"]}
    assert {good[0].name, good[1].name} <= used
    assert not used & set(skipped)
    for entry in manifest["outputs"]:
        assert (out / entry["file"]).is_file() and (out / entry["sidecar"]).is_file()
    assert len(manifest["outputs"]) == 2 * len(used)
    if odd.is_dir():
        assert "muspy_zero-ticks-per-beat.mid" in skipped
        assert "测试文件.midi" in used  # a valid file with a non-ASCII name
    assert result.stderr.count("skipped") == len(skipped)


def test_generate_with_only_bad_primers_writes_nothing(tiny_run, tmp_path) -> None:
    out = tmp_path / "none"
    result = cli("generate", "--out", out, "--model", tiny_run, text_file(tmp_path), "-q")
    one_line_error(result, "none of the 1 primers", "notes.mid")
    assert not out.exists()


def test_generate_refuses_missing_primer_and_existing_manifest(tiny_run, tmp_path) -> None:
    out = tmp_path / "g"
    result = cli("generate", "--out", out, "--model", tiny_run, "--primers", tmp_path / "nope")
    one_line_error(result, "nope", "does not exist")
    assert not out.exists()
    args = ["generate", "--out", out, "--model", tiny_run, "--tokens", "10", "-q"]
    assert cli(*args).exit_code == 0
    before = (out / "manifest.json").read_bytes()
    one_line_error(cli(*args), "manifest.json", "--force")
    assert (out / "manifest.json").read_bytes() == before
    assert cli(*args, "--force").exit_code == 0


@pytest.mark.parametrize(
    "option",
    [
        ["--top-p", "2"],
        ["--temperature", "-0.1"],
        ["--tokens", "-5"],
        ["--num-samples", "0"],
        ["--batch-size", "0"],
        ["--precision", "fp16"],
        ["--window", "1"],
    ],
    ids=lambda o: " ".join(o),
)
def test_generate_bad_options_write_nothing(option, tiny_run, tmp_path) -> None:
    out = tmp_path / "bad"
    result = cli("generate", "--out", out, "--model", tiny_run, *option, "-q")
    one_line_error(result, option[0].lstrip("-").split("-")[0])
    assert not out.exists()


@pytest.mark.skipif(shutil.which("fluidsynth") is None, reason="FluidSynth is not installed")
def test_continue_wav_renders_audio_of_the_output(tiny_run, primer_file, tmp_path) -> None:
    out = tmp_path / "take.mid"
    result = cli("continue", primer_file, "-o", out, "--model", tiny_run, "--tokens", "40",
                 "--primer-seconds", "3", "--seed", "2", "--quiet", "--wav")  # fmt: skip
    assert result.exit_code == 0, result.output
    wav = out.with_suffix(".wav")
    data = wav.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    seconds = (len(data) - 44) / (44100 * 2 * 2)  # 16-bit stereo at 44.1 kHz
    assert seconds >= pretty_midi.PrettyMIDI(str(out)).get_end_time()  # plus release tail


def test_continue_wav_without_fluidsynth_is_one_line_and_writes_nothing(
    tiny_run, primer_file, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no fluidsynth on this PATH
    out = tmp_path / "take.mid"
    result = cli("continue", primer_file, "-o", out, "--model", tiny_run, "--tokens", "8",
                 "--quiet", "--wav")  # fmt: skip
    assert result.exit_code == 2
    assert "fluidsynth" in result.stderr.lower() and len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_default_bundled_model_continues_a_bundled_primer(tmp_path) -> None:
    """What README's demo does: the bundled model and primer, no --model."""
    if DEFAULT_MODEL not in bundled_models():
        pytest.skip("no bundled model in this checkout")
    primer = sorted((bundled_models()[DEFAULT_MODEL].parent / "primers").glob("*.mid"))[0]
    out = tmp_path / "demo.mid"
    result = cli("continue", primer, "-o", out, "--seconds", "4", "--seed", "1", "-q")
    assert result.exit_code == 0, result.output
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["model"]["name"] == DEFAULT_MODEL and side["continuation"]["tokens"] > 0
    check_continuation(out, notes(primer), side["primer"]["seconds"])


def test_temperature_defaults_to_the_models_card(tiny_run, primer_file, tmp_path) -> None:
    """No --temperature: the card's recommended temperature runs (the same notes as asking
    for it), and the sidecar records it; a model without one samples at 1.0."""
    loaded = load_checkpoint(tiny_run)
    carded = save_checkpoint(
        tmp_path / "carded", loaded.model, loaded.config, loaded.tokenizer,
        loaded.meta.get("training"), card={"sampling": {"temperature": 0.5}},
    )  # fmt: skip
    common = ("--tokens", "48", "--seed", "3", "-q")
    runs = {
        "card": ("--model", carded),
        "asked": ("--model", carded, "--temperature", "0.5"),
        "plain": ("--model", tiny_run),
        "plain-1.0": ("--model", tiny_run, "--temperature", "1.0"),
    }
    sides, tokens = {}, {}
    for name, args in runs.items():
        out = tmp_path / f"{name}.mid"
        result = cli("continue", primer_file, "-o", out, *args, *common)
        assert result.exit_code == 0, result.output
        sides[name] = json.loads(out.with_suffix(".json").read_text())
        tokens[name] = out.read_bytes()
    assert sides["card"]["sampling"]["temperature"] == 0.5
    assert sides["plain"]["sampling"]["temperature"] == 1.0  # nothing recommended
    assert tokens["card"] == tokens["asked"] and tokens["plain"] == tokens["plain-1.0"]
    assert tokens["card"] != tokens["plain"]
    listing = cli("info", carded)
    assert "temperature: 0.5" in listing.output
