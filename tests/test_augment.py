"""Augmentation on token windows: transposition and time stretch decode to what they claim."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import BUNDLED_PRIMERS


def notes(tok, ids) -> list[tuple[int, float, float, int]]:
    return sorted(
        (n.pitch, n.start, n.end, n.velocity) for n in tok.decode(ids).instruments[0].notes
    )


@pytest.mark.parametrize("semitones", [-3, -1, 2, 3])
def test_transposed_window_decodes_to_transposed_notes(tok, bach_midi_dir, semitones):
    ids = np.array(tok.encode(sorted(bach_midi_dir.glob("*.mid"))[1]), dtype=np.int16)
    window = ids[57 : 57 + 400]  # mid-piece, starting anywhere
    moved = tok.transpose(window, semitones)
    assert moved.dtype == window.dtype and moved.shape == window.shape
    want = [(p + semitones, s, e, v) for p, s, e, v in notes(tok, window)]
    assert notes(tok, moved) == sorted(want)


def test_transpose_out_of_range_is_refused(tok, shared_data):
    ids = np.array(tok.encode(shared_data / "odd-midi" / "muspy_pitches.mid"))  # pitches 0..127
    assert tok.transpose(ids, 1) is None and tok.transpose(ids, -1) is None
    assert tok.transpositions(ids) == [0]
    low = ids[:40]  # only the lowest pitches: shifts down are impossible
    assert tok.transpositions(low) == [0, 1, 2, 3]
    assert tok.transpose(low, -1) is None


def test_transpose_leaves_non_pitch_tokens(tok):
    ids = np.array([tok.pad_id, tok.bos_id, tok.eos_id])
    assert np.array_equal(tok.transpose(ids, 3), ids)


@pytest.mark.parametrize("factor", [0.95, 0.975, 1.025, 1.05])
def test_stretched_window_decodes_to_stretched_timings(tok, factor):
    ids = np.array(tok.encode(BUNDLED_PRIMERS / "piano-beethoven-hammerklavier-2.mid"))
    window = ids[100:700]  # mid-piece, starting anywhere
    stretched = tok.stretch(window, factor)
    before, after = notes(tok, window), notes(tok, stretched)
    assert len(after) == len(before)
    for (p, s, e, v), (p2, s2, e2, v2) in zip(before, after):
        assert (p2, v2) == (p, v)
        assert abs(s2 - s * factor) <= 0.005 + 1e-9  # re-quantized to the nearest 10 ms
        assert abs(e2 - e * factor) <= 0.005 + 1e-9
    # half a 10 ms step: the stretched window's end is re-quantized once
    assert tok.seconds(stretched) == pytest.approx(tok.seconds(window) * factor, abs=0.005)
    events = [i for i in window.tolist() if tok.token_seconds[i] == 0]
    assert [i for i in stretched.tolist() if tok.token_seconds[i] == 0] == events


def test_stretch_identity_and_empty(tok):
    ids = np.array(tok.encode(BUNDLED_PRIMERS / "bwv145-a.mid"))  # four parts
    assert np.array_equal(tok.stretch(ids, 1.0), ids)
    assert len(tok.stretch(ids[:0], 1.05)) == 0
