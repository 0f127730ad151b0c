"""MIDI → audio: FluidSynth synthesizes a WAV, libsndfile (the `soundfile` package) encodes it.

`render_audio(midi, out)` is the one way every command makes audio; the suffix of `out` picks
the format (`AUDIO_FORMATS`). FluidSynth and a soundfont are Debian packages (`fluidsynth`,
`timgm6mb-soundfont` or `fluid-soundfont-gm`), not Python ones; when either is missing,
`RenderError` says which packages to install. `find_renderer` checks everything a render needs
up front, so a batch fails once, with one line, before any work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from .files import atomic_path

SOUNDFONT_DIRS = ("/usr/share/sounds/sf2", "/usr/share/soundfonts", "/usr/local/share/soundfonts")
# Preferred first: the small TimGM6mb, then FluidR3 (fluid-soundfont-gm), then any .sf2.
SOUNDFONT_NAMES = ("TimGM6mb.sf2", "FluidR3_GM.sf2", "default-GM.sf2")
WAV_HEADER_BYTES = 44  # a WAV file of this size holds no samples
INSTALL_HINT = (
    "install the Debian packages 'fluidsynth' and 'timgm6mb-soundfont' (or 'fluid-soundfont-gm')"
)
# format name (= file suffix) → libsndfile (format, subtype, write options). MP3 at a constant
# 128 kbit/s (compression_level 0.65 is LAME's 128 kbit/s step): every browser plays it,
# Safari included, at a tenth of the WAV. Ogg Vorbis at libsndfile's default quality
# (~80 kbit/s for these renders) is smaller still but Safari may not play it; FLAC is lossless
# (about half the WAV).
ENCODINGS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "mp3": ("MP3", "MPEG_LAYER_III", {"bitrate_mode": "CONSTANT", "compression_level": 0.65}),
    "ogg": ("OGG", "VORBIS", {}),
    "flac": ("FLAC", "PCM_16", {}),
}
AUDIO_FORMATS = ("mp3", "ogg", "flac", "wav")
ENCODE_BLOCK = 16384  # frames per write to the encoder (0.37 s at 44.1 kHz)


class RenderError(RuntimeError):
    """Audio cannot be rendered (no FluidSynth, no soundfont, no encoder, or a render failed)."""


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
        if path.is_file():
            return path
        if not path.is_dir():
            raise RenderError(f"soundfont {path} does not exist")
        found = _soundfont_in([path])  # a folder of soundfonts, as the default places are
        if found is None:
            raise RenderError(f"soundfont folder {path} holds no .sf2 file")
        return found
    found = _soundfont_in([Path(folder) for folder in SOUNDFONT_DIRS])
    if found is None:
        raise RenderError(f"no General MIDI soundfont found: {INSTALL_HINT}, or pass --soundfont")
    return found


def _soundfont_in(folders: list[Path]) -> Path | None:
    """The preferred soundfont in `folders` (SOUNDFONT_NAMES first, then any .sf2)."""
    for folder in folders:
        for name in SOUNDFONT_NAMES:
            if (folder / name).is_file():
                return folder / name
    for folder in folders:
        found = sorted(folder.glob("*.sf2")) if folder.is_dir() else []
        if found:
            return found[0]
    return None


def check_encoder(audio_format: str) -> None:
    """RenderError unless this machine can write `audio_format` (one of AUDIO_FORMATS)."""
    if audio_format not in AUDIO_FORMATS:
        known = ", ".join(AUDIO_FORMATS)
        raise RenderError(f"unknown audio format {audio_format!r} (one of {known})")
    if audio_format == "wav":
        return  # FluidSynth writes it itself
    try:
        import soundfile
    except (ImportError, OSError) as e:  # OSError: the package is there but libsndfile is not
        raise RenderError(
            f"cannot encode {audio_format}: the Python package 'soundfile' is unusable ({e}); "
            "pip install soundfile, or use --audio wav"
        ) from None
    kind, subtype, _ = ENCODINGS[audio_format]
    if subtype not in soundfile.available_subtypes(kind):
        raise RenderError(
            f"this libsndfile ({soundfile.__libsndfile_version__}) cannot write {audio_format}: "
            "use another --audio format"
        )


def find_renderer(
    soundfont: str | Path | None = None, audio_format: str = "wav"
) -> tuple[str, Path]:
    """(FluidSynth executable, soundfont) or RenderError naming what to install; checks the
    encoder of `audio_format` too. Batch jobs call this once up front, so a missing package is
    one message, not one per file."""
    found = find_fluidsynth(), find_soundfont(soundfont)
    check_encoder(audio_format)
    return found


def audio_format_of(path: str | Path) -> str:
    """The format `path`'s suffix names ("song.mp3" → "mp3"); RenderError if none."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in AUDIO_FORMATS:
        raise RenderError(f"{path}: audio files end in .{', .'.join(AUDIO_FORMATS)}")
    return suffix


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


def encode_audio(wav_path: str | Path, out_path: str | Path) -> Path:
    """Encode a 16-bit WAV as `out_path`'s format (mp3, ogg or flac), written atomically."""
    import soundfile

    kind, subtype, options = ENCODINGS[audio_format_of(out_path)]
    try:
        samples, rate = soundfile.read(str(wav_path), dtype="int16")  # (S, C)
        with (
            atomic_path(out_path) as tmp,
            soundfile.SoundFile(
                str(tmp), "w", rate, samples.shape[1], subtype, format=kind, **options
            ) as f,
        ):
            # In blocks: libvorbis allocates a whole write's samples on the stack, so one
            # write of a minute of audio overflows it and kills the process (libsndfile #1095).
            for start in range(0, len(samples), ENCODE_BLOCK):
                f.write(samples[start : start + ENCODE_BLOCK])
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as e:
        # TypeError: a soundfile older than 0.12 has no compression options
        raise RenderError(f"cannot encode {out_path}: {e}") from None
    return Path(out_path)


def render_audio(
    midi_path: str | Path,
    out_path: str | Path,
    soundfont: str | Path | None = None,
    *,
    fluidsynth: str | None = None,
    sample_rate: int = 44100,
    gain: float = 0.8,
) -> Path:
    """Render `midi_path` as audio in the format `out_path`'s suffix names (.mp3, .ogg, .flac,
    .wav), written atomically; a compressed format leaves no WAV behind. Raises RenderError.

    Args:
        midi_path: the MIDI file.
        out_path: the audio file to write.
        soundfont: a .sf2 file; default $SOUNDFONT, then the usual Debian places.
        fluidsynth: the executable, when the caller already found it (`find_renderer`).
        sample_rate: samples per second (FluidSynth renders 16-bit stereo).
        gain: FluidSynth's master gain.
    """
    out_path = Path(out_path)
    audio_format = audio_format_of(out_path)
    if audio_format == "wav":
        return render_wav(midi_path, out_path, soundfont, sample_rate, gain, fluidsynth)
    check_encoder(audio_format)
    with tempfile.TemporaryDirectory(prefix="music-transformer-render-") as folder:
        wav = render_wav(midi_path, Path(folder) / "take.wav", soundfont, sample_rate, gain,
                         fluidsynth)  # fmt: skip
        return encode_audio(wav, out_path)
