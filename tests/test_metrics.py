"""Distances between generated and real music, the sign test and answer scoring."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from midi_data.features import HISTOGRAM_BINS, SCALARS, piece_features
from midi_data.midi_io import crop_seconds, read_midi
from midi_data.notes import Notes
from music_transformer.comparison.metrics import (
    histogram_overlap,
    overlap_and_kl,
    paired_metrics,
    set_metrics,
)
from music_transformer.comparison.score import AnswersError, score_answers, sign_test

# Metrics are float64 (numpy): sums of at most a few thousand terms are off by < 1e-12, far
# inside pytest.approx's default (rel 1e-6); explicit tolerances are about music, not rounding.


def test_histogram_overlap() -> None:
    rng = np.random.default_rng(1)
    p, q = rng.random(12), rng.random(12)
    assert histogram_overlap(p, p * 3) == pytest.approx(1.0)
    assert histogram_overlap(p, q) == pytest.approx(histogram_overlap(q, p))
    assert 0 < histogram_overlap(p, q) < 1
    assert histogram_overlap([1, 0], [0, 1]) == 0.0
    assert histogram_overlap([0, 0], [0, 1]) is None


def test_overlap_and_kl_of_distance_sets() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(5, 1, 200)
    oa, kl = overlap_and_kl(a, a.copy())
    assert oa == pytest.approx(1.0, abs=1e-6) and kl == pytest.approx(0.0, abs=1e-6)
    near, far = overlap_and_kl(a, rng.normal(5.5, 1, 200)), overlap_and_kl(a, a + 20)
    assert far[0] < 0.01 < near[0] < 1 and far[1] > near[1] > 0


@pytest.fixture(scope="module")
def segments(shared_data: Path):
    """20 s pieces of real piano: 6 from one performance, 6 from another."""
    out = []
    for name in ("Maestro_2.mid", "Maestro_5.mid"):
        pm = read_midi(shared_data / "maestro-samples" / name)
        out.append([piece_features(crop_seconds(pm, s, s + 20.0), 20.0) for s in range(0, 120, 20)])
    return out


def drone(seconds: float = 20.0):
    """What a broken model might write: one note struck over and over."""
    n = int(seconds * 4)
    start = np.arange(n) * 0.25
    return piece_features(
        Notes(start, start + 0.2, np.full(n, 60), np.full(n, 100)), seconds=seconds
    )


def test_paired_metrics(segments) -> None:
    real = segments[0]
    same = paired_metrics(real, real)
    assert same["primers"] == len(real)
    assert all(v == pytest.approx(1.0) for v in same["overlap"].values())
    assert all(v == pytest.approx(0.0) for v in same["abs_diff"].values() if v is not None)
    bad = paired_metrics([drone()] * len(real), real)
    other = paired_metrics(segments[1], real)
    for name in ("pitch_class", "interval", "polyphony"):
        assert bad["overlap"][name] < other["overlap"][name], name
    assert paired_metrics([None, drone()], [real[0], None])["primers"] == 0


def test_set_metrics_rank_real_music_above_a_drone(segments) -> None:
    real, other = segments
    assert set_metrics(real[:3], real[:2]) is None  # too few real pieces
    good, bad = set_metrics(other, real), set_metrics([drone()] * 4, real)
    assert set(good["overlap"]) == set(HISTOGRAM_BINS) | set(SCALARS)
    for name in ("pitch_class", "interval", "polyphony", "pitch_range"):
        assert bad["overlap"][name] < good["overlap"][name], name
        assert bad["kl"][name] > good["kl"][name], name
    for value in good["overlap"].values():
        assert value is None or 0 <= value <= 1


def test_sign_test_matches_enumeration() -> None:
    for wins, losses in itertools.product(range(9), repeat=2):
        n = wins + losses
        probs = [math.comb(n, k) / 2**n for k in range(n + 1)]
        # two-sided: every outcome at most as likely as the observed one
        expected = min(1.0, sum(p for p in probs if p <= probs[wins] * (1 + 1e-12)))
        assert sign_test(wins, losses) == pytest.approx(expected), (wins, losses)
    assert sign_test(10, 0) == pytest.approx(2 / 1024)
    assert sign_test(0, 0) == 1.0


def write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_score_answers_pools_listeners(tmp_path: Path) -> None:
    pairs = {f"p{i:02d}-1": {"A": "mt", "B": "rnn"} if i % 2 else {"A": "rnn", "B": "mt"}
             for i in range(1, 7)}  # fmt: skip
    write(tmp_path / "key.json", {"report_id": "r1", "models": ["mt", "rnn"], "pairs": pairs})
    fmt = "music-transformer/answers"
    prefer_mt = {p: ("A" if v["A"] == "mt" else "B") for p, v in pairs.items()}
    one = write(tmp_path / "one.json", {"format": fmt, "report_id": "r1", "answers": prefer_mt})
    ties = {p: "none" for p in pairs} | {"p99-1": "A"}
    two = write(tmp_path / "two.json", {"format": fmt, "report_id": "r1", "answers": ties})
    score = score_answers(tmp_path, [one, two])
    mt, rnn = score.models["mt"], score.models["rnn"]
    assert (mt.wins, mt.losses, mt.ties) == (6, 0, 6) and (rnn.wins, rnn.losses) == (0, 6)
    assert mt.rate == 1.0 and mt.p_value == pytest.approx(sign_test(6, 0))
    assert score.unknown == ["p99-1"] and score.answered == 12
    bad = write(
        tmp_path / "bad.json", {"format": fmt, "report_id": "r1", "answers": {"p01-1": "C"}}
    )
    with pytest.raises(AnswersError, match="'C'"):
        score_answers(tmp_path, [bad])
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(AnswersError, match=r"junk\.json"):
        score_answers(tmp_path, [tmp_path / "junk.json"])
