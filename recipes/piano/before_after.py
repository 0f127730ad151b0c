"""Stack three-minute piano rolls of the same primers continued two ways, for the README.

    python recipes/piano/before_after.py OUT.png BEFORE_DIR AFTER_DIR NAME [NAME ...] \
        [--labels "before|after"]

Each NAME is a file in both folders (e.g. `Chopin__chpn_op53-1.mid`, written by `generate`
with its JSON sidecar, which gives the primer's end). The rolls share one time axis and, per
primer, one pitch range; they are drawn with the project's own piano roll
(`midi_data.pianoroll`) and stacked top to bottom: NAME 1 before, NAME 1 after, NAME 2 before...
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pretty_midi
from matplotlib import pyplot as plt
from PIL import Image

from midi_data.files import atomic_write
from midi_data.notes import notes_from_pretty
from midi_data.pianoroll import piano_roll_figure, pitch_range


def roll_png(midi: Path, title: str, seconds: float, pitches: tuple[int, int]) -> Image.Image:
    record = json.loads(midi.with_suffix(".json").read_text(encoding="utf-8"))
    cut = float(record["primer"]["seconds"]) if record.get("primer") else None
    fig = piano_roll_figure(
        pretty_midi.PrettyMIDI(str(midi)), cut, seconds=seconds, pitches=pitches, height_px=260
    )
    fig.axes[0].set_title(title, fontsize=9, loc="left")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("names", nargs="+")
    ap.add_argument("--labels", default="before|after", help="the two labels, split by |")
    args = ap.parse_args()
    labels = args.labels.split("|")
    pairs = [(args.before / n, args.after / n) for n in args.names]
    seconds = max(pretty_midi.PrettyMIDI(str(p)).get_end_time() for pair in pairs for p in pair)
    images = []
    for name, pair in zip(args.names, pairs):
        notes = [notes_from_pretty(pretty_midi.PrettyMIDI(str(p))) for p in pair]
        low = min(pitch_range(n)[0] for n in notes)
        high = max(pitch_range(n)[1] for n in notes)
        for label, path in zip(labels, pair):
            images.append(roll_png(path, f"{name} — {label}", seconds, (low, high)))
    width = max(i.width for i in images)
    sheet = Image.new("RGB", (width, sum(i.height for i in images)), "white")
    y = 0
    for image in images:
        sheet.paste(image, (0, y))
        y += image.height
    atomic_write(args.out, lambda tmp: sheet.save(tmp, format="PNG", optimize=True))
    print(f"wrote {args.out} ({len(images)} rolls)")


if __name__ == "__main__":
    main()
