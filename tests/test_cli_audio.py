"""Audio works the same in `continue`, `generate` and `compare`: one renderer
(`midi_data.render.render_audio`), the format chosen by --audio (`--wav` kept as a synonym of
--audio wav), and the same one-line error, exit 2, nothing written, when FluidSynth is missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import cli

needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None,
    reason="FluidSynth is not installed (apt-get install fluidsynth)",
)
MISSING = "Error: FluidSynth is not installed: install the Debian packages 'fluidsynth'"


@pytest.fixture(scope="module")
def primer(bach_midi_dir: Path) -> Path:
    return sorted(bach_midi_dir.glob("*.mid"))[0]


@needs_fluidsynth
@pytest.mark.parametrize("flags, suffix", [(["--audio", "mp3"], ".mp3"), (["--wav"], ".wav")])
def test_continue_audio(flags, suffix, tiny_run, primer, tmp_path) -> None:
    out = tmp_path / "take.mid"
    result = cli("continue", primer, "-o", out, "--model", tiny_run, "--tokens", 40,
                 "--primer-seconds", 3, "--seed", 2, "-q", *flags)  # fmt: skip
    assert result.exit_code == 0, result.output
    audio = out.with_suffix(suffix)
    assert f"wrote {audio}" in result.output
    head = audio.read_bytes()[:4]
    assert head == b"RIFF" if suffix == ".wav" else head[:3] == b"ID3" or head[:2] == b"\xff\xfb"
    assert sorted(p.suffix for p in tmp_path.iterdir()) == sorted([".mid", ".json", suffix])


@needs_fluidsynth
def test_generate_audio(tiny_run, primer, tmp_path) -> None:
    out = tmp_path / "takes"
    result = cli("generate", "--out", out, "--model", tiny_run, "--primers", primer,
                 "--num-samples", 2, "--tokens", 30, "--seed", 1, "-q",
                 "--audio", "ogg")  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["outputs"]:
        ogg = (out / entry["file"]).with_suffix(".ogg")
        assert ogg.read_bytes()[:4] == b"OggS", ogg
    assert "wrote 2 ogg files" in result.output
    assert not list(out.glob("*.wav"))


def test_wav_and_another_audio_format_conflict(tiny_run, primer, tmp_path) -> None:
    out = tmp_path / "take.mid"
    result = cli("continue", primer, "-o", out, "--model", tiny_run, "--tokens", 8, "-q",
                 "--wav", "--audio", "mp3")  # fmt: skip
    assert result.exit_code == 2 and "--wav" in result.stderr and not out.exists()


def test_same_error_everywhere_without_fluidsynth(tiny_run, primer, tmp_path, monkeypatch) -> None:
    """continue, generate and compare all stop before any work with FluidSynth's one line."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    runs = {
        "continue": ("continue", primer, "-o", tmp_path / "c.mid", "--model", tiny_run,
                     "--tokens", 8, "-q", "--audio", "mp3"),
        "generate": ("generate", "--out", tmp_path / "g", "--model", tiny_run, "--tokens", 8,
                     "-q", "--audio", "flac"),
        "compare": ("compare", "--models", f"{tiny_run},bach-lstm", "--primers", primer,
                    "--out", tmp_path / "r", "--seconds", 2, "-q"),
    }  # fmt: skip
    for name, args in runs.items():
        result = cli(*args)
        assert result.exit_code == 2, (name, result.output)
        err = result.stderr.strip()
        assert err.startswith(MISSING) and "\n" not in err, (name, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing written
