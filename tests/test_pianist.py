"""Pianist metrics (music_transformer.comparison.pianist) on real piano MIDI, no model: the
real continuation of a piece passes every target against itself, and each way of playing
unlike a pianist fails the target written for it. Plus the recipe's primer cutting.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path

import numpy as np
import pytest

from midi_data.midi_io import read_score
from midi_data.notes import Notes, notes_from_score
from midi_data.presets import make_tokenizer
from music_transformer.comparison.pianist import (
    TARGETS,
    aggregate,
    pianist_record,
    pitch_class_correlation,
)
from music_transformer.comparison.primers import notes_after
from tests.helpers import SHARED_DATA, shared_path

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "piano"
PRIMER, SPAN = 12.0, 60.0  # seconds: primer length, continuation length
# Openings whose real continuation stays in the primer's key for 60 s (every target holds);
# many pieces modulate within a minute and fail the pitch-class target against themselves.
PIECES = [
    "classical-piano/Schumann/scn15_1.mid",
    "classical-piano/Mendelssohn/mendel_op30_2.mid",
    "classical-piano/Schubert/schubert_d850_4.mid",
    "maestro-samples/Maestro_4.mid",
    "maestro-samples/Maestro_7.mid",
]


@cache
# Metrics are float64 (numpy): sums of at most a few thousand terms are off by < 1e-12, far
# inside pytest.approx's default (rel 1e-6); explicit tolerances are about music, not rounding.


def _opening(name: str) -> tuple[Notes, Notes, Notes]:
    notes = notes_from_score(read_score(shared_path(*name.split("/"))))
    start = float(notes.start.min())
    primer = notes_after(notes, start, PRIMER)
    return primer, notes_after(notes, start + PRIMER, SPAN), notes


def opening(name: str) -> tuple[Notes, Notes, Notes]:
    """(primer, real continuation from the cut, whole piece) of a piece's first 12 s."""
    if not (SHARED_DATA / name).is_file():
        shared_path(*name.split("/"))  # skips, naming what is missing
    return _opening(name)


def with_(notes: Notes, **fields: np.ndarray) -> Notes:
    values = {k: getattr(notes, k) for k in ("start", "end", "pitch", "velocity")}
    return Notes(**{**values, **fields})


@pytest.mark.parametrize("name", PIECES)
def test_real_continuation_passes_every_target_against_itself(name: str) -> None:
    primer, real, piece = opening(name)
    r = pianist_record(primer, real, real, piece, SPAN)
    assert r.passed == dict.fromkeys(TARGETS, True), r
    assert r.velocity_std_ratio == pytest.approx(1.0) and r.density_ratio == pytest.approx(1.0)
    assert r.ioi_overlap == pytest.approx(1.0) and r.velocity_mean_diff == 0.0


@pytest.mark.parametrize("name", PIECES)
def test_constant_velocity_fails_dynamics(name: str) -> None:
    primer, real, piece = opening(name)
    flat = np.full(len(real), round(float(real.velocity.mean())), dtype=np.int64)
    r = pianist_record(primer, with_(real, velocity=flat), real, piece, SPAN)
    assert r.velocity_std_ratio == 0.0
    assert r.passed["dynamics_std"] is False
    assert r.passed["dynamics_mean"] is True  # the mean is right: it is the shaping that fails


@pytest.mark.parametrize("name", PIECES)
def test_note_held_for_a_minute_fails_long_note(name: str) -> None:
    primer, real, piece = opening(name)
    held = Notes(np.array([0.0]), np.array([SPAN]), np.array([60]), np.array([70]))
    r = pianist_record(primer, Notes.concat([real, held]).sorted(), real, piece, SPAN)
    assert r.longest_generated == pytest.approx(SPAN)
    assert r.passed["long_note"] is False


@pytest.mark.parametrize("name", PIECES)
def test_tritone_lowers_pitch_class_correlation(name: str) -> None:
    primer, real, piece = opening(name)
    same = pianist_record(primer, real, real, piece, SPAN)
    moved = pianist_record(primer, with_(real, pitch=real.pitch + 6), real, piece, SPAN)
    for a, b in zip(same.pitch_class_corr, moved.pitch_class_corr):
        assert b < a, (same.pitch_class_corr, moved.pitch_class_corr)
    assert moved.pitch_class_corr_min < same.pitch_class_corr_min


@pytest.mark.parametrize("name", PIECES)
def test_time_doubled_continuation_has_half_the_density(name: str) -> None:
    primer, real, piece = opening(name)
    slow = with_(real, start=real.start * 2, end=real.end * 2)
    r = pianist_record(primer, slow, real, piece, SPAN)
    # Its first 60 s hold the real first 30 s, so the ratio is exactly that share of notes.
    assert r.density_ratio == pytest.approx(np.mean(real.start < SPAN / 2))
    assert r.density_ratio == pytest.approx(0.5, abs=0.15)
    assert r.passed["density"] is False


def test_sparse_segment_is_not_measured_rather_than_failed() -> None:
    primer, real, piece = opening(PIECES[0])
    late = np.nonzero(real.start >= 30.0)[0][:3]  # three notes in the second segment
    sparse = real.take(np.concatenate([np.nonzero(real.start < 30.0)[0], late]))
    r = pianist_record(primer, sparse, real, piece, SPAN)
    assert r.pitch_class_corr[0] is not None and r.pitch_class_corr[1] is None
    assert r.passed["pitch_class"] is True
    assert pitch_class_correlation(primer, sparse.take(late)) is None


def test_aggregate_medians_and_shares() -> None:
    primer, real, piece = opening(PIECES[0])
    flat = with_(real, velocity=np.full(len(real), 64, dtype=np.int64))
    records = [pianist_record(primer, g, real, piece, SPAN) for g in (real, flat)]
    agg = aggregate(records)
    assert agg["primers"] == 2 and agg["pass_share"]["dynamics_std"] == 0.5
    assert agg["pass_share"]["density"] == 1.0 and agg["all_pass_share"] == 0.5
    assert agg["median"]["velocity_std_ratio"] == pytest.approx(0.5)


def _recipe(name: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(RECIPE))  # the script imports its sibling `primers`
    spec = importlib.util.spec_from_file_location(name, RECIPE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_primer_cutting_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = "Schumann/scn15_1.mid"
    path = shared_path("classical-piano", *name.split("/"))
    primers = _recipe("primers", monkeypatch)
    cuts = primers.cut_piece(name, path, PRIMER, SPAN)
    assert [c.cut - c.start for c in cuts] == [pytest.approx(PRIMER)]  # 80 s: no middle cut
    cut = cuts[0]
    written = notes_from_score(read_score(primers.write_primer(cut, tmp_path / "primer.mid")))
    assert len(written) == len(cut.primer) > 0
    assert written.start.min() >= 0 and written.end.max() <= PRIMER + 1e-3
    assert sorted(written.velocity) == sorted(cut.primer.velocity)  # dynamics kept
    assert 0 <= cut.real.start.min() < 1.0 and cut.real.start.max() < SPAN
    # the model's tokens of the primer span exactly up to the cut, a final rest included
    tok = make_tokenizer("performance")
    pad_to = _recipe("pianist", monkeypatch).pad_to
    ids = pad_to(tok.encode(tmp_path / "primer.mid"), tok.token_seconds, PRIMER)
    assert tok.seconds(ids) == pytest.approx(PRIMER, abs=0.011)
    short = notes_after(cut.primer, 0.0, 9.0)  # ends in a 3 s rest
    primers.write_primer(primers.PrimerCut(path, "", 0.0, 12.0, short, cut.real, cut.piece_notes),
                         tmp_path / "rest.mid")  # fmt: skip
    ids = pad_to(tok.encode(tmp_path / "rest.mid"), tok.token_seconds, PRIMER)
    assert tok.seconds(ids) == pytest.approx(PRIMER, abs=0.011)
