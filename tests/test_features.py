"""Per-piece musical features on synthetic pieces with known answers and on real music."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from midi_data.features import HISTOGRAM_BINS, SCALARS, piece_features
from midi_data.midi_io import crop_seconds, read_midi
from midi_data.notes import Notes
from tests.helpers import piano_files


def notes(rows: list[tuple[float, float, int, int]]) -> Notes:
    arr = np.array(rows, dtype=np.float64).reshape(-1, 4)  # (N, 4)
    return Notes(arr[:, 0], arr[:, 1], arr[:, 2].astype(np.int64), arr[:, 3].astype(np.int64))


def melody(pitches: list[int], step: float = 0.25, velocity: int = 80) -> Notes:
    return notes([(i * step, (i + 1) * step, p, velocity) for i, p in enumerate(pitches)])


SCALE = [60, 62, 64, 65, 67, 69, 71, 72]


# Features are float64 (numpy): sums of at most a few thousand terms are off by < 1e-12, far
# inside pytest.approx's default (rel 1e-6); explicit tolerances are about music, not rounding.


def test_scale_histograms() -> None:
    f = piece_features(melody(SCALE * 4), seconds=8.0)
    white = [0, 2, 4, 5, 7, 9, 11]
    assert f.histograms["pitch_class"][white].sum() == pytest.approx(1.0)
    steps = np.nonzero(f.histograms["interval"])[0] - 12
    assert set(steps.tolist()) == {1, 2, -12}  # up the scale, then back down an octave
    assert f.histograms["ioi"].argmax() == np.searchsorted([0.03, 0.06, 0.12, 0.25], 0.25, "right")
    assert f.scalars["pitch_range"] == 12
    assert f.scalars["notes_per_second"] == pytest.approx(32 / 8.0)
    assert f.scalars["mean_polyphony"] == pytest.approx(1.0)
    for name, bins in HISTOGRAM_BINS.items():
        assert f.histograms[name].shape == (bins,)
        assert f.histograms[name].sum() == pytest.approx(1.0)


def test_transposition_moves_only_pitch_classes() -> None:
    a = piece_features(melody(SCALE * 3), seconds=6.0)
    b = piece_features(melody([p + 3 for p in SCALE * 3]), seconds=6.0)
    assert np.allclose(np.roll(a.histograms["pitch_class"], 3), b.histograms["pitch_class"])
    for name in ("interval", "ioi", "velocity", "polyphony", "note_density"):
        assert np.allclose(a.histograms[name], b.histograms[name]), name
    for name in SCALARS:
        assert a.scalars[name] == pytest.approx(b.scalars[name]), name


def test_chords_count_as_polyphony_and_one_skyline_step() -> None:
    chord = [(0.0, 1.0, 60, 70), (0.01, 1.0, 64, 70), (0.02, 1.0, 67, 70)]
    next_chord = [(1.0, 2.0, 62, 70), (1.0, 2.0, 65, 70), (1.0, 2.0, 69, 70)]
    f = piece_features(notes(chord + next_chord), seconds=2.0)
    assert f.scalars["mean_polyphony"] == pytest.approx(3.0, abs=0.1)
    assert f.histograms["interval"][12 + 2] == pytest.approx(1.0)  # top voice 67 → 69


def test_repetition_and_self_similarity_tell_loops_from_noise() -> None:
    motif = [60, 64, 67, 72, 67, 64, 62, 59]  # 2 s at 0.25 s per note
    looped = piece_features(melody(motif * 8), seconds=16.0)
    rng = np.random.default_rng(0)
    noise = piece_features(melody(rng.integers(40, 90, 64).tolist()), seconds=16.0)
    assert looped.scalars["repetition"] > 0.8 > 0.2 > noise.scalars["repetition"]
    assert looped.scalars["self_similarity"] == pytest.approx(1.0, abs=1e-6)
    assert noise.scalars["self_similarity"] < 0.6


def test_slower_is_sparser() -> None:
    fast = piece_features(melody(SCALE * 4, step=0.25), seconds=8.0)
    slow = piece_features(melody(SCALE * 4, step=0.5), seconds=16.0)
    assert slow.scalars["notes_per_second"] == pytest.approx(fast.scalars["notes_per_second"] / 2)
    assert slow.histograms["ioi"].argmax() > fast.histograms["ioi"].argmax()


def test_empty_piece() -> None:
    f = piece_features(Notes.concat([]), seconds=5.0)
    assert f.notes == 0
    assert all(f.scalars[name] in (None, 0.0) for name in SCALARS)
    assert f.histograms["pitch_class"].sum() == 0


@pytest.mark.parametrize("path", piano_files(), ids=lambda p: p.name)
def test_real_performances(path: Path) -> None:
    pm = read_midi(path)
    start = 10.0 if pm.get_end_time() > 40.0 else 0.0  # the 12-s bundled primers: all of it
    seconds = min(30.0, pm.get_end_time() - start)
    f = piece_features(crop_seconds(pm, start, start + seconds), seconds=seconds)
    assert f.notes > 30
    for hist in f.histograms.values():
        assert hist.sum() == pytest.approx(1.0) and (hist >= 0).all()
    assert 12 <= f.scalars["pitch_range"] <= 88
    assert 0.5 < f.scalars["notes_per_second"] < 40
    assert 1.0 <= f.scalars["mean_polyphony"] < 30
    assert 0.0 <= f.scalars["repetition"] <= 1.0
    assert 0.0 < f.scalars["self_similarity"] <= 1.0 + 1e-9
