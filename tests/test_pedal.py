"""The sustain pedal back out of note lengths, on real pedalled piano: what sounds is unchanged,
what the keys do is what a pianist's would be."""

from __future__ import annotations

import itertools

import mido
import numpy as np
import pretty_midi
import pytest

from midi_data.midi_io import read_score
from midi_data.notes import notes_from_pretty, notes_from_score
from midi_data.pedal import sounding_ends, unfold_sustain
from midi_data.presets import make_tokenizer
from midi_data.splice import splice
from music_transformer.generation.primers import crop_tokens
from tests.helpers import shared_files

PIECES = shared_files("maestro-samples", "Maestro_[12].mid")


@pytest.mark.parametrize("path", PIECES, ids=lambda p: getattr(p, "name", str(p)))
def test_unfolding_changes_what_the_keys_do_not_what_sounds(path) -> None:
    folded = notes_from_score(read_score(path))  # the pedal folded into lengths, as tokenized
    keys, spans = unfold_sustain(folded)
    assert len(spans) > 20  # a pedalled performance reads as many presses
    assert all(a < b <= c for (a, b), (c, _) in itertools.pairwise(spans))  # in order, disjoint
    assert np.abs(sounding_ends(keys, spans) - folded.end).max() <= 0.011  # one token step
    assert (keys.end - keys.start).sum() < 0.5 * (folded.end - folded.start).sum()
    assert (keys.end > keys.start).all()


def test_a_chord_let_go_together_is_not_a_pedal() -> None:
    from midi_data.notes import Notes

    chord = Notes(np.zeros(3), np.full(3, 2.0), np.array([60, 64, 67]), np.full(3, 80))
    assert unfold_sustain(chord)[1] == []


@pytest.mark.parametrize("path", PIECES[:1], ids=lambda p: getattr(p, "name", str(p)))
def test_a_spliced_continuation_with_pedal_sounds_as_without(path, tmp_path) -> None:
    tok = make_tokenizer("performance")
    ids = tok.encode(path)
    primer = crop_tokens(ids, tok.token_seconds, 10.0)
    rest = ids[len(primer) : len(primer) + 600]  # the real piece plays the continuation
    plain, pedalled = tmp_path / "plain.mid", tmp_path / "pedal.mid"
    splice(tok, path, primer, rest, plain)
    done = splice(tok, path, primer, rest, pedalled, pedal=True)
    assert done.pedal_spans > 0
    track = mido.MidiFile(str(pedalled)).tracks[-1]
    assert any(m.type == "control_change" and m.control == 64 for m in track)
    a = notes_from_pretty(pretty_midi.PrettyMIDI(str(plain)))  # sustain folded back in
    b = notes_from_pretty(pretty_midi.PrettyMIDI(str(pedalled)))
    assert len(a) == len(b)
    assert np.abs(a.start - b.start).max() < 1e-3  # the same notes, through the file's ticks
    assert np.abs(a.end - b.end).max() <= 0.012  # one 10 ms step (pedal lifts), + tick rounding
