"""Count what a continuation holds and how it plays: notes sounding over 10 s, the longest
note, velocity spread — on the "Continuation" track of `continue` outputs, pedal folded in
(what sounds). Writes OUT.png piano rolls beside each file.

Usage: python recipes/piano/held_notes.py OUT.mid [OUT.mid ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pretty_midi

from midi_data.midi_io import read_midi
from midi_data.notes import notes_from_pretty
from midi_data.pianoroll import save_piano_roll


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) > 1 else 2)
    failed = 0
    for arg in sys.argv[1:]:
        try:
            report(Path(arg))
        except (OSError, ValueError, KeyError) as error:  # one line per bad file, then the next
            message = str(error) if arg in str(error) else f"{arg}: {error}"
            print(f"Error: {message}", file=sys.stderr)
            failed += 1
    sys.exit(2 if failed else 0)


def report(path: Path) -> None:
    """Print one continuation's line and write its piano roll beside it."""
    pm = read_midi(path)  # hostile files: MidiReadError (a ValueError) with a clear message
    sidecar = json.loads(path.with_suffix(".json").read_text())
    part = pretty_midi.PrettyMIDI()
    part.instruments = [i for i in pm.instruments if i.name == "Continuation"]
    notes = notes_from_pretty(part)
    held, vel = notes.end - notes.start, notes.velocity
    print(
        f"{path.name}: {sidecar['continuation']['seconds']} s, {len(notes)} notes, "
        f"held > 10 s: {int((held > 10).sum())}, longest {held.max():.2f} s, velocity "
        f"{vel.mean():.1f} ± {vel.std():.1f} ({vel.min()}–{vel.max()}, "
        f"{len(np.unique(vel))} values), median note {np.median(held):.2f} s"
    )
    cut = pm.tick_to_time(sidecar["midi"]["cut_tick"])
    save_piano_roll(pm, path.with_suffix(".png"), primer_end=cut)


if __name__ == "__main__":
    main()
