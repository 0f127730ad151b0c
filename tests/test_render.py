"""MIDI → audio with FluidSynth and libsndfile: real renders in every format (type, length,
size), parallel batches, clear messages when something is missing."""

from __future__ import annotations

import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from midi_data.midi_io import crop_seconds, read_midi
from midi_data.render import (
    AUDIO_FORMATS,
    RenderError,
    check_encoder,
    find_renderer,
    find_soundfont,
    render_audio,
    render_wav,
)
from music_transformer.comparison.audio import render_all
from tests.helpers import BUNDLED_PRIMERS

# the first bytes of each format, and its largest size as a share of the 16-bit WAV
MAGIC = {"mp3": (b"ID3", b"\xff\xfb"), "ogg": (b"OggS",), "flac": (b"fLaC",), "wav": (b"RIFF",)}
MAX_SHARE = {"mp3": 0.12, "ogg": 0.12, "flac": 0.7, "wav": 1.0}


def renderer_or_skip() -> None:
    try:
        find_renderer()
    except RenderError as e:
        pytest.skip(f"cannot render audio here: {e}")


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return frames.reshape(-1, w.getnchannels()), w.getframerate()  # (S, C)


def test_render_a_real_performance(tmp_path: Path) -> None:
    renderer_or_skip()
    pm = crop_seconds(read_midi(BUNDLED_PRIMERS / "piano-beethoven-opus10-3.mid"), 0, 6)
    midi = tmp_path / "piece.mid"
    pm.write(str(midi))
    wav = render_wav(midi, tmp_path / "piece.wav", sample_rate=22050)
    samples, rate = read_wav(wav)
    assert rate == 22050
    seconds = len(samples) / rate
    assert pm.get_end_time() - 0.1 <= seconds <= pm.get_end_time() + 4  # plus the release tail
    assert np.abs(samples).max() > 1000  # audible, not silence
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write cleaned up


def test_parallel_batch_reports_a_bad_file(bach_midi_dir: Path, tmp_path: Path) -> None:
    renderer_or_skip()
    jobs = [(m, tmp_path / f"{m.stem}.wav") for m in sorted(bach_midi_dir.glob("*.mid"))[:3]]
    broken = tmp_path / "broken.mid"
    broken.write_bytes(b"MThd this is not MIDI")
    jobs.append((broken, tmp_path / "broken.wav"))
    report = render_all(jobs, workers=2, quiet=True)
    assert report.available and report.soundfont
    assert sorted(report.rendered) == sorted(w for _, w in jobs[:3])
    assert [m for m, _ in report.failed] == [broken] and "broken.mid" in report.failed[0][1]
    for _, wav in jobs[:3]:
        assert read_wav(wav)[0].shape[0] > 0


def test_missing_fluidsynth_names_the_packages(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no fluidsynth on it
    with pytest.raises(RenderError, match=r"fluidsynth.*timgm6mb-soundfont"):
        find_renderer()
    report = render_all([(tmp_path / "a.mid", tmp_path / "a.wav")], quiet=True)
    assert not report.available and "fluidsynth" in report.reason and not report.rendered


def test_missing_soundfont(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(RenderError, match=r"nope\.sf2"):
        find_soundfont(tmp_path / "nope.sf2")
    monkeypatch.setenv("SOUNDFONT", str(tmp_path / "env.sf2"))
    with pytest.raises(RenderError, match=r"env\.sf2"):
        find_soundfont()


def test_fluidsynth_failure_is_one_line(tmp_path: Path) -> None:
    if shutil.which("fluidsynth") is None:
        pytest.skip("FluidSynth is not installed (apt-get install fluidsynth)")
    fake = tmp_path / "fake.sf2"
    fake.write_bytes(b"not a soundfont")
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(0)
    piano.notes.append(pretty_midi.Note(90, 60, 0, 1))
    pm.instruments.append(piano)
    pm.write(str(tmp_path / "n.mid"))
    with pytest.raises(RenderError) as e:
        render_wav(tmp_path / "n.mid", tmp_path / "n.wav", soundfont=fake)
    assert "\n" not in str(e.value) and "n.mid" in str(e.value)
    assert not (tmp_path / "n.wav").exists()


@pytest.fixture(scope="module")
def chorale_wav(bach_midi_dir: Path, tmp_path_factory) -> tuple[Path, Path]:
    """A real chorale (first 20 s) and its WAV, rendered once."""
    renderer_or_skip()
    folder = tmp_path_factory.mktemp("chorale")
    midi = folder / "chorale.mid"
    crop_seconds(read_midi(sorted(bach_midi_dir.glob("*.mid"))[0]), 0, 20).write(str(midi))
    return midi, render_wav(midi, folder / "chorale.wav")


@pytest.mark.parametrize("audio_format", AUDIO_FORMATS)
def test_render_audio_in_every_format(audio_format, chorale_wav, tmp_path: Path) -> None:
    """The suffix picks the format; the file is what it says, as long as the WAV, far smaller
    when compressed (MP3 at 128 kbit/s), and no WAV or temporary file is left beside it."""
    soundfile = pytest.importorskip("soundfile")
    midi, wav = chorale_wav
    out = render_audio(midi, tmp_path / f"take.{audio_format}")
    assert out.read_bytes().startswith(MAGIC[audio_format]), out.read_bytes()[:8]
    info, reference = soundfile.info(str(out)), soundfile.info(str(wav))
    assert info.samplerate == 44100 and info.channels == 2
    # the encoders pad to whole frames (an MP3 frame is 26 ms) and add encoder delay
    assert abs(info.duration - reference.duration) < 0.1, (info.duration, reference.duration)
    share = out.stat().st_size / wav.stat().st_size
    assert share <= MAX_SHARE[audio_format], share
    if audio_format == "mp3":
        kbps = out.stat().st_size * 8 / info.duration / 1000
        assert 120 < kbps < 135, kbps
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    samples, _ = soundfile.read(str(out), dtype="int16")
    assert np.abs(samples).max() > 1000  # audible


def test_batch_renders_compressed_audio(bach_midi_dir: Path, tmp_path: Path) -> None:
    renderer_or_skip()
    midis = sorted(bach_midi_dir.glob("*.mid"))[:2]
    jobs = [(m, tmp_path / f"{m.stem}.{f}") for m, f in zip(midis, ("mp3", "ogg"))]
    report = render_all(jobs, workers=2, quiet=True)
    assert sorted(report.rendered) == sorted(out for _, out in jobs) and not report.failed
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".mp3", ".ogg"]


def test_bad_format_and_missing_encoder(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(RenderError, match=r"\.mid.*\.mp3"):
        render_audio(tmp_path / "a.mid", tmp_path / "a.mid")
    with pytest.raises(RenderError, match="unknown audio format 'aac'"):
        check_encoder("aac")
    monkeypatch.setitem(sys.modules, "soundfile", None)  # as if the package were not installed
    check_encoder("wav")  # FluidSynth writes WAV itself
    with pytest.raises(RenderError, match=r"cannot encode mp3.*pip install soundfile") as e:
        check_encoder("mp3")
    assert "\n" not in str(e.value)


def test_long_audio_encodes_in_blocks(tmp_path: Path) -> None:
    """Two minutes of audio written to Ogg Vorbis in one call overflow libvorbis' stack and
    kill the process (libsndfile #1095); encode_audio writes in blocks. In a child process, so
    a regression fails this test instead of killing the run."""
    soundfile = pytest.importorskip("soundfile")
    t = np.arange(44100 * 120) / 44100
    tone = (3000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    soundfile.write(str(tmp_path / "long.wav"), np.stack([tone, tone], axis=1), 44100)
    code = (
        "import sys; from midi_data.render import encode_audio; "
        "encode_audio(sys.argv[1], sys.argv[2])"
    )
    for audio_format in ("ogg", "mp3"):
        out = tmp_path / f"long.{audio_format}"
        done = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / "long.wav"), str(out)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, (audio_format, done.returncode, done.stderr[-500:])
        assert abs(soundfile.info(str(out)).duration - 120) < 0.1
