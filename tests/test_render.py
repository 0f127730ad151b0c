"""MIDI → WAV with FluidSynth: real renders, parallel batches, clear messages when missing."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from midi_data.midi_io import crop_seconds, read_midi
from midi_data.render import RenderError, find_renderer, find_soundfont, render_wav
from music_transformer.comparison.audio import render_all


def renderer_or_skip() -> None:
    try:
        find_renderer()
    except RenderError as e:
        pytest.skip(f"cannot render audio here: {e}")


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return frames.reshape(-1, w.getnchannels()), w.getframerate()  # (S, C)


def test_render_a_real_performance(shared_data: Path, tmp_path: Path) -> None:
    renderer_or_skip()
    pm = crop_seconds(read_midi(shared_data / "maestro-samples" / "Maestro_6.mid"), 0, 6)
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
