"""Piano-roll pictures of a performance, written as PNG with numpy and zlib only.

One row of pixels band per pitch (high pitches at the top), one column per time step. Notes
before `primer_end` are drawn in blue, notes after it in orange, and the primer's region is
shaded with a red line where it ends, so a listener sees at a glance where the model took over.
Note colour fades with velocity. There is no text (no font dependency): a scale at the bottom
marks every second (short tick) and every 10 seconds (long tick); C rows are underlined.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pretty_midi

from .files import atomic_write
from .notes import Notes, notes_from_pretty

PRIMER_RGB = (52, 101, 164)  # notes of the primer
NEW_RGB = (230, 110, 20)  # notes the model wrote
MARK_RGB = (200, 30, 30)  # the line where the primer ends
SHADE_RGB = (236, 240, 246)  # background of the primer's region
C_ROW_RGB = (215, 215, 215)  # line under every C
BLACK_KEY_RGB = (247, 247, 247)  # background of black-key rows
SCALE_HEIGHT = 8  # pixels of the time scale under the roll


def _blend(image: np.ndarray, rows: slice, cols: slice, rgb: tuple[int, int, int], alpha: float):
    region = image[rows, cols].astype(np.float32)
    image[rows, cols] = (region * (1 - alpha) + np.array(rgb) * alpha).astype(np.uint8)


def piano_roll_image(
    notes: Notes | pretty_midi.PrettyMIDI,
    primer_end: float | None = None,
    *,
    pixels_per_second: float = 40.0,
    pitch_pixels: int = 4,
    max_width: int = 2400,
    min_pitches: int = 24,
) -> np.ndarray:
    """Render notes as an RGB raster.

    Args:
        notes: a PrettyMIDI object (drums dropped, sustain folded) or `Notes` in seconds.
        primer_end: seconds where the primer ends (None: no primer, everything is orange).
        pixels_per_second: horizontal scale; lowered when the picture would exceed max_width.
        pitch_pixels: height of one pitch row in pixels.
        max_width: widest picture in pixels.
        min_pitches: rows shown at least (the range is centred on the notes' pitches).

    Returns:
        (H, W, 3) uint8 image, H = rows × pitch_pixels + SCALE_HEIGHT.
    """
    if isinstance(notes, pretty_midi.PrettyMIDI):
        notes = notes_from_pretty(notes)
    start, end = np.asarray(notes.start, float), np.asarray(notes.end, float)
    pitch, velocity = np.asarray(notes.pitch, int), np.asarray(notes.velocity, int)
    duration = max(float(end.max()) if len(end) else 0.0, primer_end or 0.0, 1.0)
    pps = min(pixels_per_second, (max_width - 1) / duration)
    width = int(np.ceil(duration * pps)) + 1
    if len(pitch):
        low, high = int(pitch.min()), int(pitch.max())
    else:
        low = high = 60
    spare = max(min_pitches - (high - low + 1), 0)
    low = max(low - 2 - spare // 2, 0)
    high = min(high + 2 + spare - spare // 2, 127)
    rows = high - low + 1
    height = rows * pitch_pixels + SCALE_HEIGHT
    image = np.full((height, width, 3), 255, dtype=np.uint8)

    def row_of(p: int) -> slice:  # high pitches at the top
        top = (high - p) * pitch_pixels
        return slice(top, top + pitch_pixels)

    for p in range(low, high + 1):
        if p % 12 in (1, 3, 6, 8, 10):
            image[row_of(p), :] = BLACK_KEY_RGB
    roll = slice(0, rows * pitch_pixels)
    if primer_end is not None:
        _blend(image, roll, slice(0, round(primer_end * pps)), SHADE_RGB, 0.8)
    for p in range(low, high + 1):
        if p % 12 == 0:
            image[row_of(p).stop - 1, :] = C_ROW_RGB
    for s, e, p, v in zip(start.tolist(), end.tolist(), pitch.tolist(), velocity.tolist()):
        if not low <= p <= high:
            continue
        x0 = round(s * pps)
        x1 = max(round(e * pps), x0 + 1)
        rgb = PRIMER_RGB if primer_end is not None and s < primer_end - 1e-6 else NEW_RGB
        _blend(image, row_of(p), slice(x0, x1), rgb, 0.35 + 0.65 * min(v, 127) / 127)
    if primer_end is not None:
        x = min(round(primer_end * pps), width - 1)
        image[roll, max(x - 1, 0) : x + 1] = MARK_RGB
    scale = image[rows * pitch_pixels :]  # (SCALE_HEIGHT, W, 3) view
    scale[0, :] = 160
    for second in range(int(duration) + 1):
        x = min(round(second * pps), width - 1)
        scale[: SCALE_HEIGHT if second % 10 == 0 else SCALE_HEIGHT // 2, x] = 90
    return image


def png_bytes(image: np.ndarray) -> bytes:
    """Encode an (H, W, 3) uint8 RGB or (H, W) grey image as PNG (no filtering, zlib level 6)."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if image.ndim == 2:
        color_type = 0
        image = image[:, :, None]  # (H, W, 1)
    elif image.ndim == 3 and image.shape[2] == 3:
        color_type = 2
    else:
        raise ValueError(f"PNG needs an (H, W) or (H, W, 3) image, got shape {image.shape}")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise ValueError("PNG needs an image of at least 1×1 pixels")
    rows = image.reshape(height, -1)  # (H, W·C)
    # Each scanline starts with its filter type; 0 = none (the roll compresses well anyway).
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1)  # (H, 1 + W·C)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write `image` as a PNG file, atomically."""
    data = png_bytes(image)
    atomic_write(path, lambda p: p.write_bytes(data))
    return Path(path)


def save_piano_roll(
    midi: pretty_midi.PrettyMIDI | Notes,
    path: str | Path,
    primer_end: float | None = None,
    **options: float,
) -> Path:
    """Draw `midi` (see `piano_roll_image`) and write it to `path` as PNG."""
    return write_png(path, piano_roll_image(midi, primer_end, **options))
