"""Piano-roll pictures and the PNG writer (checked against Pillow's decoder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pretty_midi
import pytest

from midi_data.midi_io import crop_seconds, read_midi
from midi_data.notes import Notes
from midi_data.pianoroll import (
    MARK_RGB,
    NEW_RGB,
    PRIMER_RGB,
    SCALE_HEIGHT,
    piano_roll_image,
    png_bytes,
    save_piano_roll,
)

Image = pytest.importorskip("PIL.Image", reason="Pillow decodes the PNGs (comes with music21)")


def decode(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 13, 3), (40, 3), (64, 300, 3)])
def test_png_round_trip(shape, tmp_path: Path) -> None:
    image = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / "x.png"
    path.write_bytes(png_bytes(image))
    assert np.array_equal(decode(path), image)


@pytest.mark.parametrize("shape", [(0, 5, 3), (4, 4, 4), (3,)])
def test_png_rejects_bad_shapes(shape) -> None:
    with pytest.raises(ValueError, match="PNG"):
        png_bytes(np.zeros(shape, dtype=np.uint8))


def one_piece(notes: list[tuple[float, float, int]]) -> pretty_midi.PrettyMIDI:
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    inst.notes = [pretty_midi.Note(127, p, s, e) for s, e, p in notes]
    pm.instruments.append(inst)
    return pm


def colour_columns(image: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """Columns holding a pixel close to `rgb` (notes at full velocity are drawn opaque)."""
    close = (np.abs(image.astype(int) - np.array(rgb)).sum(axis=2) < 12).any(axis=0)
    return np.nonzero(close)[0]


def test_notes_land_where_they_sound() -> None:
    pps, px = 10.0, 4
    pm = one_piece([(0.0, 1.0, 60), (2.0, 3.0, 72), (5.0, 6.0, 48)])
    image = piano_roll_image(pm, primer_end=4.0, pixels_per_second=pps, pitch_pixels=px)
    blue, orange, red = (colour_columns(image, c) for c in (PRIMER_RGB, NEW_RGB, MARK_RGB))
    assert blue.min() == 0 and blue.max() < 4.0 * pps  # primer notes left of the cut
    assert orange.min() >= 5.0 * pps - 1 and orange.max() <= 6.0 * pps + 1
    assert set(range(int(4.0 * pps) - 1, int(4.0 * pps) + 1)) <= set(red.tolist())
    rows = {}
    for pitch, x in ((60, 5), (72, 25), (48, 55)):
        ys = np.nonzero(np.abs(image[:, x].astype(int) - 255).sum(axis=1) > 60)[0]
        ys = ys[ys < image.shape[0] - SCALE_HEIGHT]
        rows[pitch] = ys[(ys % px) == 1][0] if len(ys) else None
    assert rows[72] < rows[60] < rows[48]  # higher pitch, higher up


def test_width_is_capped_and_empty_is_fine(shared_data: Path, tmp_path: Path) -> None:
    pm = read_midi(shared_data / "maestro-samples" / "Maestro_1.mid")
    image = piano_roll_image(pm, primer_end=30.0, max_width=800)
    assert image.shape[1] <= 800 and image.dtype == np.uint8
    empty = piano_roll_image(Notes.concat([]), primer_end=None)
    assert empty.shape[0] > SCALE_HEIGHT and empty.shape[1] >= 1


def test_saved_roll_of_a_real_performance(shared_data: Path, tmp_path: Path) -> None:
    pm = crop_seconds(read_midi(shared_data / "maestro-samples" / "Maestro_3.mid"), 0, 20)
    path = save_piano_roll(pm, tmp_path / "roll.png", primer_end=8.0)
    image = decode(path)
    pitches = [n.pitch for i in pm.instruments for n in i.notes]
    assert image.shape[0] >= (max(pitches) - min(pitches) + 1) * 4 + SCALE_HEIGHT
    assert len(colour_columns(image, MARK_RGB)) >= 2
    assert np.array_equal(image, piano_roll_image(pm, primer_end=8.0))
