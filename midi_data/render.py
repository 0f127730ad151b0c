"""MIDI → WAV with the FluidSynth command-line program and a General MIDI soundfont.

FluidSynth and a soundfont are Debian packages (`fluidsynth`, `timgm6mb-soundfont` or
`fluid-soundfont-gm`), not Python ones; when either is missing, `RenderError` says which
packages to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .files import atomic_path

SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/soundfonts", "/usr/local/share/soundfonts")
# Preferred first: the small TimGM6mb, then FluidR3 (fluid-soundfont-gm), then any .sf2.
SOUNDFONT_NAMES = ("TimGM6mb.sf2", "FluidR3_GM.sf2", "default-GM.sf2")
WAV_HEADER_BYTES = 44  # a WAV file of this size holds no samples
INSTALL_HINT = (
    "install the Debian packages 'fluidsynth' and 'timgm6mb-soundfont' (or 'fluid-soundfont-gm')"
)


class RenderError(RuntimeError):
    """Audio cannot be rendered (no FluidSynth, no soundfont, or FluidSynth failed)."""


def find_fluidsynth() -> str:
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise RenderError(f"FluidSynth is not installed: {INSTALL_HINT}")
    return exe


def find_soundfont(soundfont: str | Path | None = None) -> Path:
    """The soundfont to use: `soundfont` if given, else $SOUNDFONT, else the usual places."""
    if soundfont is None:
        soundfont = os.environ.get("SOUNDFONT")
    if soundfont is not None:
        path = Path(soundfont)
        if not path.is_file():
            raise RenderError(f"soundfont {path} does not exist")
        return path
    for folder in SOUNDFONT_DIRS:
        for name in SOUNDFONT_NAMES:
            if (Path(folder) / name).is_file():
                return Path(folder) / name
    for folder in SOUNDFONT_DIRS:
        found = sorted(Path(folder).glob("*.sf2")) if Path(folder).is_dir() else []
        if found:
            return found[0]
    raise RenderError(f"no General MIDI soundfont found: {INSTALL_HINT}, or pass --soundfont")


def find_renderer(soundfont: str | Path | None = None) -> tuple[str, Path]:
    """(FluidSynth executable, soundfont) or RenderError naming what to install. Batch jobs
    call this once up front, so a missing package is one message, not one per file."""
    return find_fluidsynth(), find_soundfont(soundfont)


def render_wav(
    midi_path: str | Path,
    wav_path: str | Path,
    soundfont: str | Path | None = None,
    sample_rate: int = 44100,
    gain: float = 0.8,
    fluidsynth: str | None = None,
) -> Path:
    """Render `midi_path` to a WAV file (written atomically). Raises RenderError.

    Args:
        midi_path: the MIDI file.
        wav_path: the WAV file to write (16-bit stereo at `sample_rate` Hz).
        soundfont: a .sf2 file; default $SOUNDFONT, then the usual Debian places.
        sample_rate: samples per second.
        gain: FluidSynth's master gain (its default 0.2 is quiet).
        fluidsynth: the executable, when the caller already found it (`find_renderer`).
    """
    exe = fluidsynth or find_fluidsynth()
    sf2 = find_soundfont(soundfont)
    wav_path = Path(wav_path)
    with atomic_path(wav_path) as tmp:
        # -n no MIDI input driver, -i no interactive shell (else it waits), -F render to file.
        cmd = [exe, "-ni", "-q", "-g", str(gain), "-r", str(sample_rate), "-T", "wav"]
        cmd += ["-F", str(tmp), str(sf2), str(midi_path)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise RenderError(f"FluidSynth failed on {midi_path}: {e}") from None
        # FluidSynth exits 0 even when it rejects the MIDI file or the soundfont (it then
        # writes a header-only or silent WAV), so its error lines decide too.
        lines = (done.stderr + "\n" + done.stdout).strip().splitlines()
        errors = [x for x in lines if "error" in x.lower() or "not a SoundFont or MIDI" in x]
        if done.returncode != 0 or errors or tmp.stat().st_size <= WAV_HEADER_BYTES:
            reason = (errors or lines or ["no audio written"])[0].strip()
            raise RenderError(f"FluidSynth failed on {midi_path}: {reason}")
    return wav_path
