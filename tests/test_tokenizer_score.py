"""The `score` preset (REMI): round trips on real MIDI, robust decoding, save/load.

Oracle (read with pretty_midi, in beats = ticks / resolution): every non-drum note comes
back with its pitch, its onset within one grid step (1/8 beat), its duration within one
duration step (1/8 beat below 4 beats, 1/4 beat up to 12) and its velocity within one of 32
bins. Dropped or changed by design: drums, programs (one merged stream), the tempo map
(decoded at 120 BPM), durations beyond 12 beats (cut to 12).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from midi_data import load_tokenizer
from tests.helpers import piano_files

GRID = 1 / 8  # beats
MAX_BEATS = 12
SECONDS_PER_BEAT = 0.5


PRESET = "score"  # the `tok` fixture (conftest.py) makes this preset's tokenizer


def beat_notes(pm: pretty_midi.PrettyMIDI) -> list[tuple[float, float, int, int]]:
    """(onset, duration, pitch, velocity) in beats, sorted by pitch then onset."""
    res = pm.resolution
    notes = [
        (pm.time_to_tick(n.start) / res, (pm.time_to_tick(n.end) - pm.time_to_tick(n.start)) / res,
         n.pitch, n.velocity)
        for inst in pm.instruments if not inst.is_drum for n in inst.notes
    ]  # fmt: skip
    return sorted(notes, key=lambda n: (n[2], n[0], n[1]))


def assert_round_trip(tok, path: Path) -> None:
    original = beat_notes(pretty_midi.PrettyMIDI(str(path)))
    decoded = tok.decode(tok.encode(path))
    got = sorted(
        ((n.start / SECONDS_PER_BEAT, (n.end - n.start) / SECONDS_PER_BEAT, n.pitch, n.velocity)
         for n in decoded.instruments[0].notes),
        key=lambda n: (n[2], n[0], n[1]),
    )  # fmt: skip
    assert len(got) == len(original)
    for (onset, dur, pitch, vel), (onset2, dur2, pitch2, vel2) in zip(original, got):
        assert pitch2 == pitch
        assert abs(onset2 - onset) <= GRID + 1e-6
        want = min(dur, MAX_BEATS)
        assert abs(dur2 - want) <= (GRID if want < 4 else 2 * GRID) + 1e-6, (onset, dur, dur2)
        assert abs(vel2 - vel) <= 127 / 32


def test_vocabulary(tok):
    names = tok.token_names()
    assert tok.vocab_size == len(names)
    assert sum(n.startswith("Pitch_") for n in names) == 128
    assert sum(n.startswith("Velocity_") for n in names) == 32
    assert sum(n.startswith("Position_") for n in names) == 32  # 4/4 bars, 8 per beat
    assert names[tok.bos_id] == "BOS_None"
    assert tok.token_seconds[names.index("Bar_None")] == pytest.approx(2.0)


def test_round_trip_bach(tok, bach_midi_dir):
    for path in sorted(bach_midi_dir.glob("*.mid")):
        assert_round_trip(tok, path)


@pytest.mark.parametrize("path", piano_files(limit=3), ids=lambda p: p.name)
def test_round_trip_real_piano(tok, path):
    assert_round_trip(tok, path)


def test_decode_never_raises_on_random_ids(tok):
    rng = np.random.default_rng(1)
    for length in (0, 1, 7, 500, 4000):
        pm = tok.decode(rng.integers(-3, tok.vocab_size + 3, size=length))
        pm.write(io.BytesIO())
        for n in pm.instruments[0].notes:
            assert n.end > n.start


def test_decode_skips_incomplete_notes(tok):
    v = {name: i for i, name in enumerate(tok.token_names())}
    ids = [v["Pitch_60"], v["Duration_1.0.8"]]  # no velocity: skipped
    ids += [v["Bar_None"], v["Position_8"], v["Pitch_62"], v["Velocity_63"], v["Duration_1.0.8"]]
    ids += [v["Bar_None"], v["Pitch_64"], v["Bar_None"], v["Velocity_63"], v["Duration_2.0.8"]]
    notes = [(n.pitch, n.start, n.end) for n in tok.decode(ids).instruments[0].notes]
    assert notes == [(62, 0.5, 1.0)]


def test_save_load(tok, tmp_path, bach_midi_dir):
    tok.save(tmp_path / "tokenizer.json")
    again = load_tokenizer(tmp_path)  # a directory holding tokenizer.json works too
    assert again.preset == "score" and again.token_names() == tok.token_names()
    path = next(bach_midi_dir.glob("*.mid"))
    assert again.encode(path) == tok.encode(path)


def test_transpose_and_stretch(tok, bach_midi_dir):
    ids = np.array(tok.encode(next(bach_midi_dir.glob("*.mid"))))
    up = tok.transpose(ids, 2)
    pitches = sorted(n.pitch for n in tok.decode(ids).instruments[0].notes)
    assert sorted(n.pitch for n in tok.decode(up).instruments[0].notes) == [p + 2 for p in pitches]
    assert np.array_equal(tok.stretch(ids, 1.05), ids)  # REMI has no absolute time to stretch
