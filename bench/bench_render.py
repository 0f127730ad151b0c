"""Audio rendering for `compare`: WAVs per second with 1 vs N parallel FluidSynth workers.

Run by hand:  OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_render.py [MIDI_DIR]
(default: ../shared/data/maestro-samples, each cut to its first 30 s). Writes
bench/results/render.md with the machine load, so numbers from a busy machine are marked.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from midi_data.midi_io import crop_seconds, read_midi
from midi_data.parallel import default_workers
from music_transformer.comparison.audio import render_all

ROOT = Path(__file__).resolve().parents[1]
SOURCE = (
    Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "maestro-samples"
)
SECONDS = 30.0


def main() -> None:
    files = sorted(SOURCE.glob("*.mid"))[:8]
    if not files:
        sys.exit(f"no MIDI files in {SOURCE}")
    lines = [
        "# Audio rendering (FluidSynth, TimGM6mb) for `compare`",
        "",
        f"{len(files)} excerpts of {SECONDS:.0f} s from {SOURCE.name}; "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; "
        f"load average before: {os.getloadavg()[0]:.2f}; CPUs: {default_workers()}",
        "",
        "| workers | seconds | WAVs/s | seconds of audio per wall second |",
        "|---:|---:|---:|---:|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        midis = []
        for f in files:
            out = Path(tmp) / f"{f.stem}.mid"
            crop_seconds(read_midi(f), 0, SECONDS).write(str(out))
            midis.append(out)
        for workers in sorted({1, default_workers()}):
            jobs = [(m, m.with_name(f"{m.stem}-{workers}.wav")) for m in midis]
            start = time.perf_counter()
            report = render_all(jobs, workers=workers, quiet=True)
            took = time.perf_counter() - start
            if not report.available:
                sys.exit(report.reason)
            n = len(report.rendered)
            lines.append(f"| {workers} | {took:.2f} | {n / took:.2f} | {n * SECONDS / took:.0f} |")
    lines.append(f"\nload average after: {os.getloadavg()[0]:.2f}")
    text = "\n".join(lines) + "\n"
    (ROOT / "bench" / "results" / "render.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
