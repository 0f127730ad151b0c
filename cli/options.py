"""Click options shared by the generation commands, a one-line-error command class, and the
progress bar. Defaults come from, and ranges are checked by, the library's
`SamplingSettings`, so a Python caller gets the same defaults and messages as a CLI user."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from cli.errors import OneLineCommand, UserError  # noqa: F401 (OneLineCommand: re-exported)
from midi_data.render import AUDIO_FORMATS
from music_transformer.generation.loading import DEFAULT_MODEL
from music_transformer.generation.rules import HARD_END, SOFT_END
from music_transformer.generation.runner import DEFAULT_BATCH_SIZE
from music_transformer.generation.settings import DEFAULT_SECONDS, SamplingSettings, default
from music_transformer.runtime import DEVICE_HELP, PRECISIONS

F = Callable[..., Any]


class OutputPath(click.ParamType):
    """An output path as typed: a file (`folder=False`: not empty, not ending in "/", not an
    existing folder) or a folder (`folder=True`: not empty, not an existing file). Checked
    where it is parsed because the text is lost once it is a Path (`new/` becomes `new`)."""

    name = "path"

    def __init__(self, folder: bool = False) -> None:
        self.folder = folder

    def convert(self, value: Any, param: Any, ctx: Any) -> Path:
        if isinstance(value, Path):
            return value
        text = str(value)
        if not text.strip():
            self.fail(f"the output {'folder' if self.folder else 'file'} name is empty")
        path = Path(text)
        try:
            is_dir, exists = path.is_dir(), path.exists()
        except OSError as e:  # a name too long for the file system, ...
            self.fail(f"{text if len(text) < 80 else text[:77] + '...'}: {e.strerror or e}")
        if self.folder and exists and not is_dir:
            self.fail(f"{text} is a file, not a folder")
        if not self.folder and (text.endswith(("/", os.sep)) or is_dir):
            self.fail(f"{text} is a folder; give a file name such as {path / 'out.mid'}")
        return path


def _stack(*decorators: F) -> F:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


class DeviceType(click.ParamType):
    """A torch device this machine can run a model on, checked once where it is parsed
    (`runtime.check_device`); the value stays the name given ("auto", "cpu", "cuda:1")."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        from music_transformer.runtime import RuntimeChoiceError, check_device

        try:
            return check_device(str(value))
        except RuntimeChoiceError as e:
            self.fail(str(e), param, ctx)


# --device of every command: one option, one check.
device_option = click.option(
    "--device",
    type=DeviceType(),
    default="auto",
    show_default=True,
    help=f"Where to run: {DEVICE_HELP} (auto: CUDA when available, else the CPU).",
)

model_options = _stack(
    click.option(
        "--model",
        "model",
        metavar="NAME_OR_DIR",
        default=None,
        help=f"Bundled model name or checkpoint/run directory [default: {DEFAULT_MODEL}].",
    ),
    device_option,
)

sampling_options = _stack(
    click.option(
        "--temperature",
        type=float,
        default=default("temperature"),
        help="Softmax temperature, ≥ 0; 0 is greedy [default: the model's recommended "
        "temperature (`music-transformer models`), else 1.0].",
    ),
    click.option("--top-k", type=int, default=None, help="Sample among the K most likely tokens."),
    click.option(
        "--top-p", type=float, default=None, help="Nucleus sampling: keep mass P, in (0, 1]."
    ),
    click.option(
        "--seed", type=int, default=None, help="Random seed (sample i uses SEED+i-1); recorded."
    ),
    click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        default=default("precision"),
        show_default=True,
        help="auto: bf16 only where it measured faster on this machine for this model and "
        "batch (cached; `music-transformer info MODEL` says what it picks).",
    ),
    click.option(
        "--window",
        type=int,
        default=None,
        help="Context tokens the model attends to [default: its training length].",
    ),
    click.option(
        "--max-note-seconds",
        type=float,
        default=None,
        metavar="S",
        help="No note sounds longer than S seconds [default: the model's own limit, the "
        "99.9th percentile note length of its training data, and for performance tokens at "
        "most twice the primer's longest note, at least 2 s]. For score/jsb models S is in seconds "
        "at 120 BPM (2·S beats), whatever the primer's tempo.",
    ),
    click.option(
        "--no-primer-note-limit",
        "primer_note_limit",
        flag_value=False,
        default=None,
        help="Do not bound note lengths by the primer's (performance tokens).",
    ),
    click.option(
        "--allow-early-end",
        is_flag=True,
        help="Let the model end a piece before the length asked for (its EOS).",
    ),
    click.option(
        "--allow-voice-crossing",
        is_flag=True,
        help="Four-part (jsb) models: let a lower voice go above a higher one.",
    ),
    click.option(
        "--no-repeat-ngram",
        type=int,
        default=None,
        metavar="N",
        help="Never repeat the same N tokens (breaks loops of greedy or cold sampling).",
    ),
    click.option(
        "--guard/--no-guard",
        default=None,
        help="Watch each continuation's last 10 s (performance tokens): when its pitches, "
        "repeats, gaps or density leave what real music shows, go back a few seconds and "
        "sample again (each backtrack recorded in the sidecar) [default: as the model's card "
        "recommends, see `music-transformer info MODEL`; else off].",
    ),
    click.option(
        "--min-p",
        type=float,
        default=None,
        metavar="P",
        help="Keep only tokens at least P times as likely as the likeliest, P in (0, 1].",
    ),
    click.option(
        "--entropy-floor",
        type=float,
        default=None,
        metavar="NATS",
        help="Sample warmer (up to 2× the temperature) where the choice collapses below "
        "this entropy.",
    ),
    click.option(
        "--sink-tokens",
        type=int,
        default=None,
        metavar="K",
        help="When the context slides, keep the first K tokens of each row's context "
        "(attention sinks); 0: off. Default: the model card's choice (`info` shows it).",
    ),
    click.option(
        "--no-grammar",
        "grammar",
        flag_value=False,
        default=True,
        help="Sample without the grammar masks and musical endings (as the first release).",
    ),
    click.option(
        "--time-limit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="Stop each batch after this much wall-clock time (its rows record 'time_limit').",
    ),
)

length_options = _stack(
    click.option(
        "--seconds",
        type=float,
        default=None,
        help=f"Seconds of new music per sample, at the primer file's tempo; with the grammar "
        f"on, a piece ends at its first break (nothing sounding, or a bar line) from "
        f"{SOFT_END:g}× to {HARD_END:g}× of it [default: {DEFAULT_SECONDS:g} unless --tokens "
        "is given].",
    ),
    click.option(
        "--tokens",
        type=int,
        default=None,
        help="New tokens per sample (with --seconds: whichever comes first).",
    ),
    click.option(
        "--primer-seconds",
        type=float,
        default=None,
        help="Use only the first S seconds of each primer (the file's seconds).",
    ),
)

quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bar.")


def output_options(replaces: str) -> F:
    """--force (help: what it `replaces`) and --quiet: every command that writes files."""
    force = click.option("--force", is_flag=True, help=f"Replace {replaces}.")
    return _stack(force, quiet_option)


def primers_option(more: str = "") -> F:
    """--primers DIR|FILE, repeatable (`more`: what the help adds)."""
    return click.option(
        "--primers",
        multiple=True,
        type=click.Path(path_type=Path),
        metavar="DIR|FILE",
        help=f"Primer MIDI files or folders (repeatable{more}).",
    )


sustain_pedal_option = click.option(
    "--sustain-pedal",
    is_flag=True,
    help="Write the continuations' pedalled notes as key lifts plus sustain pedal (CC64).",
)


def batch_size_option(what: str, default: int = DEFAULT_BATCH_SIZE) -> F:
    """--batch-size: `what` computed together (the runner's default unless given)."""
    return click.option(
        "--batch-size", type=int, default=default, show_default=True, help=f"{what} per batch."
    )


AUDIO_HELP = (
    "mp3 (128 kbit/s, plays in every browser), ogg (Vorbis, smaller), flac (lossless) or wav"
)
soundfont_option = click.option(
    "--soundfont",
    type=click.Path(path_type=Path),
    default=None,
    help="General MIDI .sf2 for FluidSynth [default: $SOUNDFONT, then /usr/share/sounds/sf2].",
)
# continue and generate: audio only when asked for (compare has its own --audio, default mp3)
audio_options = _stack(
    click.option(
        "--audio",
        type=click.Choice(AUDIO_FORMATS),
        default=None,
        help=f"Also render each output to OUT.<FORMAT> with FluidSynth: {AUDIO_HELP}.",
    ),
    click.option("--wav", is_flag=True, help="The same as --audio wav."),
    soundfont_option,
)


def pop_audio(kwargs: dict[str, Any]) -> tuple[str | None, Path | None]:
    """Remove --audio, --wav and --soundfont from a command's kwargs → (format or None,
    soundfont or None)."""
    audio, wav, soundfont = kwargs.pop("audio"), kwargs.pop("wav"), kwargs.pop("soundfont")
    if wav and audio not in (None, "wav"):
        raise UserError(f"--wav means --audio wav: give --wav or --audio {audio}, not both")
    return ("wav" if wav else audio), soundfont


def check_renderer(audio: str, soundfont: Path | None) -> tuple[str, Path]:
    """(FluidSynth, soundfont) for rendering `audio`, or the one-line UserError every command
    gives when FluidSynth, a soundfont or the encoder is missing. Call it before any work."""
    from midi_data.render import RenderError, find_renderer

    try:
        return find_renderer(soundfont, audio)
    except RenderError as e:
        raise UserError(str(e)) from None


# every SamplingSettings field is an option of the generation commands, under its own name
SAMPLING_KEYS = tuple(f.name for f in fields(SamplingSettings))


def pop_settings(kwargs: dict[str, Any]) -> SamplingSettings:
    """Remove the sampling and length options from a command's kwargs → checked settings."""
    values = {key: kwargs.pop(key) for key in SAMPLING_KEYS if key in kwargs}
    return SamplingSettings(**values)
