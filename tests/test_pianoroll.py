"""Piano rolls a listener can read: seconds, bar lines from the file's meter, pitch names, the
primer's end; checked on the matplotlib figure itself, on the PNG (Pillow), and the bar lines
against pretty_midi's own downbeats on real files."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgb

from midi_data import make_tokenizer
from midi_data.midi_io import crop_seconds, read_midi
from midi_data.notes import Notes
from midi_data.pianoroll import (
    HEIGHT_PX,
    MARK_COLOR,
    NEW_COLOR,
    PRIMER_COLOR,
    WIDTH_PX,
    piano_roll_figure,
    pitch_name,
    pitch_ticks,
    save_piano_roll,
)
from music_transformer.comparison.bars import bar_times
from tests.helpers import BUNDLED_PRIMERS

Image = pytest.importorskip("PIL.Image", reason="Pillow decodes the PNGs (comes with music21)")


def one_piece(notes: list[tuple[float, float, int]]) -> pretty_midi.PrettyMIDI:
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(127, p, s, e) for s, e, p in notes]
    pm.instruments.append(inst)
    return pm


def texts(labels) -> list[str]:
    return [t.get_text() for t in labels]


def notes_of(fig) -> PolyCollection:
    return next(c for c in fig.axes[0].collections if isinstance(c, PolyCollection))


@pytest.mark.parametrize(
    "pitch, name", [(60, "C4"), (61, "C#4"), (69, "A4"), (21, "A0"), (108, "C8"), (48, "C3")]
)
def test_pitch_names(pitch, name) -> None:
    assert pitch_name(pitch) == name  # middle C is C4, as pianists and DAWs name it


def test_axes_are_labelled(bach_midi_dir: Path) -> None:
    """A real chorale cut at 4 s with a bar every 2 s: seconds at the bottom, pitch names at
    the left that sit on their own rows, bar numbers on top, the primer's end in red."""
    pm = read_midi(sorted(bach_midi_dir.glob("*.mid"))[0])
    pm = crop_seconds(pm, 0, 12)
    bars = np.arange(0, 12, 2.0)
    fig = piano_roll_figure(pm, primer_end=4.0, bars=bars)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "pitch"
    names = texts(ax.get_yticklabels())
    assert "C4" in names and all(n[0] in "CEG" for n in names), names
    for tick, name in zip(ax.get_yticks(), names):  # each name on its own pitch row
        assert pretty_midi.note_name_to_number(name) == tick
    low, high = ax.get_ylim()
    pitches = [n.pitch for i in pm.instruments for n in i.notes]
    assert low < min(pitches) and high > max(pitches)
    seconds = ax.get_xticks()
    # the x limits have a margin of under 0.1 s around the 12 s shown
    assert np.allclose(np.diff(seconds), 1.0) and ax.get_xlim() == pytest.approx((0, 12), abs=0.1)
    red = [ln for ln in ax.lines if to_rgb(ln.get_color()) == to_rgb(MARK_COLOR)]
    assert red and red[0].get_xdata()[0] == pytest.approx(4.0)
    legend = texts(fig.legends[0].get_texts())
    assert legend == ["primer", "continuation", "primer ends at 4.0 s", "bar lines"]
    top = ax.child_axes[0]  # the bar numbers
    assert texts(top.get_xticklabels()) == ["1", "2", "3", "4", "5", "6"]
    assert np.allclose(top.get_xticks(), bars)


def test_colours_follow_the_cut() -> None:
    pm = one_piece([(0.0, 1.0, 60), (2.0, 3.0, 72), (5.0, 6.0, 48)])
    fig = piano_roll_figure(pm, primer_end=4.0)
    boxes = notes_of(fig)
    colours = [tuple(np.round(c[:3], 3)) for c in boxes.get_facecolors()]
    starts = [p.vertices[:, 0].min() for p in boxes.get_paths()]
    for start, colour in zip(starts, colours):
        want = PRIMER_COLOR if start < 4.0 else NEW_COLOR
        assert colour == tuple(np.round(to_rgb(want), 3)), (start, colour)
    assert not fig.axes[0].child_axes  # no meter given: no bar axis
    assert "bar lines" not in texts(fig.legends[0].get_texts())


def test_primer_only_roll_lists_only_its_colour() -> None:
    fig = piano_roll_figure(one_piece([(0.0, 1.0, 60), (1.0, 2.0, 64)]), primer_end=2.0)
    assert texts(fig.legends[0].get_texts()) == ["primer", "primer ends at 2.0 s"]


def test_long_pieces_keep_few_labels(shared_data: Path) -> None:
    """Three minutes of MAESTRO across the piano: ≤ 16 time labels, only the Cs named."""
    pm = crop_seconds(read_midi(shared_data / "maestro-samples" / "Maestro_1.mid"), 0, 180)
    ax = piano_roll_figure(pm, primer_end=30.0).axes[0]
    assert len([t for t in ax.get_xticks() if 0 <= t <= 180]) <= 17
    names = texts(ax.get_yticklabels())
    assert names and all(n.startswith("C") and "#" not in n for n in names), names
    assert pitch_ticks(21, 108) == list(range(24, 109, 12))


def test_saved_png(tmp_path: Path) -> None:
    pm = read_midi(BUNDLED_PRIMERS / "piano-chpn-op53.mid")  # 12 s of real piano
    path = save_piano_roll(pm, tmp_path / "roll.png", primer_end=8.0, bars=np.arange(0, 12, 2.0))
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (WIDTH_PX, HEIGHT_PX)
        rgb = np.asarray(im.convert("RGB")).astype(int)
    red = (np.abs(rgb - np.array(to_rgb(MARK_COLOR)) * 255).sum(axis=2) < 40).any(axis=0)
    assert red.sum() >= 2  # the primer's end is drawn
    assert [p.name for p in tmp_path.iterdir()] == ["roll.png"]  # atomic: no temporary left


def test_empty_roll_is_fine(tmp_path: Path) -> None:
    path = save_piano_roll(Notes.concat([]), tmp_path / "empty.png")
    with Image.open(path) as im:
        assert im.size == (WIDTH_PX, HEIGHT_PX)


# --- bar lines from the file's meter -------------------------------------------------------


def write_meter_file(path: Path, tpb: int = 480) -> Path:
    """3/4 at 90 BPM for 2 bars, then 6/8 at 60 BPM (a dotted-crotchet bar lasts 3 s)."""
    mf = mido.MidiFile(ticks_per_beat=tpb)
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(90), time=0))
    track.append(mido.Message("note_on", note=60, velocity=80, time=0))
    track.append(mido.Message("note_off", note=60, velocity=0, time=6 * tpb))
    track.append(mido.MetaMessage("time_signature", numerator=6, denominator=8, time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(60), time=0))
    track.append(mido.Message("note_on", note=64, velocity=80, time=0))
    track.append(mido.Message("note_off", note=64, velocity=0, time=6 * tpb))
    track.append(mido.MetaMessage("end_of_track", time=0))
    mf.tracks.append(track)
    mf.save(str(path))
    return path


def test_bar_lines_follow_meter_and_tempo(tmp_path: Path) -> None:
    path = write_meter_file(tmp_path / "meter.mid")
    bars = bar_times(path, until=16.0)
    # 3/4 at 90: 2 s a bar; 6/8 at 60: 3 s a bar from 4 s on, repeating past the file's end
    # float64 sums of a few tempo segments: off by ~1e-15, not by any tick
    assert np.allclose(bars, [0, 2, 4, 7, 10, 13, 16], atol=1e-9), bars
    pm_downbeats = pretty_midi.PrettyMIDI(str(path)).get_downbeats()
    assert np.allclose(bars[: len(pm_downbeats)], pm_downbeats, atol=1e-9)
    # a `score` model counts beats at 120 BPM: a 3/4 bar is 1.5 s, a 6/8 bar too
    beats = bar_times(path, until=8.0, tok=make_tokenizer("score"))
    assert np.allclose(beats, [0, 1.5, 3, 4.5, 6, 7.5], atol=1e-9), beats


def test_no_time_signature_no_bars(tmp_path: Path) -> None:
    mf = mido.MidiFile()
    mf.tracks.append(mido.MidiTrack([mido.Message("note_on", note=60, time=0),
                                     mido.Message("note_off", note=60, time=960)]))  # fmt: skip
    mf.save(str(tmp_path / "free.mid"))
    assert len(bar_times(tmp_path / "free.mid", until=10.0)) == 0
    assert len(bar_times(tmp_path / "missing.mid", until=10.0)) == 0  # unreadable: no bars


def test_bar_lines_of_a_rubato_mozart_sonata(shared_data: Path) -> None:
    """K. 330 in 2/4 with over a thousand tempo changes: our downbeats are pretty_midi's."""
    path = shared_data / "classical-piano" / "Mozart" / "mz_330_1.mid"
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout of the shared data")
    bars = bar_times(path, until=60.0)
    expected = pretty_midi.PrettyMIDI(str(path)).get_downbeats()
    expected = expected[expected <= 60.0]
    assert len(bars) == len(expected) > 20
    assert np.abs(bars - expected).max() < 1e-6  # float64 over 1,000 tempo segments: ≤ 1e-12
