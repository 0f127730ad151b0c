"""Render many MIDI files to audio in parallel, with a progress bar.

Each render is a FluidSynth process and an encode in libsndfile (which runs without the GIL),
so a pool of threads runs the renders truly in parallel (no process start-up cost). Every
render goes through `midi_data.render.render_audio`, as `continue --audio` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from midi_data.parallel import default_workers
from midi_data.render import (
    RenderError,
    audio_format_of,
    check_encoder,
    find_renderer,
    render_audio,
)


@dataclass
class RenderReport:
    """What happened to a batch of renders.

    Attributes:
        available: False when FluidSynth, a soundfont or the encoder is missing (nothing was
            rendered).
        reason: why audio is unavailable (names the packages to install), else "".
        soundfont: the soundfont used.
        rendered: audio files written.
        failed: (MIDI file, one-line reason) for renders that failed.
    """

    available: bool
    reason: str = ""
    soundfont: str | None = None
    rendered: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def render_all(
    jobs: Sequence[tuple[Path, Path]],
    soundfont: str | Path | None = None,
    workers: int | None = None,
    quiet: bool = False,
) -> RenderReport:
    """Render every (midi, audio) job; a failure is recorded and the others go on.

    Args:
        jobs: (MIDI path, audio path) pairs; the audio suffix picks the format (.mp3, .ogg,
            .flac, .wav), see `render_audio`.
        soundfont: a .sf2 file, or None to look in the usual places.
        workers: renders at a time (default: the CPUs this process may use).
        quiet: no progress bar.
    """
    try:
        exe, sf2 = find_renderer(soundfont)
        for audio_format in {audio_format_of(out) for _, out in jobs}:
            check_encoder(audio_format)
    except RenderError as e:
        return RenderReport(available=False, reason=str(e))
    report = RenderReport(available=True, soundfont=str(sf2))
    if not jobs:
        return report
    from tqdm.auto import tqdm

    workers = max(1, workers or default_workers())
    bar = tqdm(total=len(jobs), unit="file", desc="audio", disable=quiet, leave=False)
    with ThreadPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        futures = {
            pool.submit(render_audio, midi, out, sf2, fluidsynth=exe): (midi, out)
            for midi, out in jobs
        }
        for future in as_completed(futures):
            midi, out = futures[future]
            try:
                future.result()
                report.rendered.append(out)
            except (RenderError, OSError) as e:
                report.failed.append((midi, str(e).splitlines()[0] if str(e) else repr(e)))
            bar.update(1)
    bar.close()
    return report
