"""Click options shared by the generation commands, a one-line-error command class, and the
progress bar. Defaults come from, and ranges are checked by, the library's
`SamplingSettings`, so a Python caller gets the same defaults and messages as a CLI user."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from cli.errors import UserError
from midi_data.render import AUDIO_FORMATS
from music_transformer.generation.guards import GuardSettings
from music_transformer.generation.settings import DEFAULT_SECONDS, SamplingSettings, default
from music_transformer.runtime import PRECISIONS

F = Callable[..., Any]


class OneLineCommand(click.Command):
    """A command whose usage errors (bad option type, missing argument) are one line on
    stderr with exit status 2, like every other user error, instead of usage + hint."""

    def make_context(self, info_name: str | None, args: list[str], parent=None, **extra: Any):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            raise UserError(e.format_message()) from None


def _stack(*decorators: F) -> F:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


model_options = _stack(
    click.option(
        "--model",
        "model",
        metavar="NAME_OR_DIR",
        default=None,
        help="Bundled model name or checkpoint/run directory [default: piano-transformer].",
    ),
    click.option(
        "--device",
        default="auto",
        show_default=True,
        help="auto (CUDA when available), cpu, cuda, cuda:1, ...",
    ),
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
        default=default("guard") is not None,
        show_default=True,
        help="Watch each continuation's last 10 s (performance tokens): when its pitches, "
        "repeats, gaps or density leave what real music shows, go back a few seconds and "
        "sample again (each backtrack recorded in the sidecar).",
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
        help="When the context slides, keep the first K tokens of each row's context.",
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
        help=f"Seconds of new music per sample, at the primer file's tempo [default: "
        f"{DEFAULT_SECONDS:g} unless --tokens is given].",
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


SAMPLING_KEYS = (
    "temperature",
    "top_k",
    "top_p",
    "seed",
    "precision",
    "window",
    "seconds",
    "tokens",
    "primer_seconds",
    "time_limit",
    "max_note_seconds",
    "primer_note_limit",
    "allow_early_end",
    "allow_voice_crossing",
    "no_repeat_ngram",
    "grammar",
    "guard",
    "min_p",
    "entropy_floor",
    "sink_tokens",
)


def pop_settings(kwargs: dict[str, Any]) -> SamplingSettings:
    """Remove the sampling and length options from a command's kwargs → checked settings."""
    values = {key: kwargs.pop(key) for key in SAMPLING_KEYS if key in kwargs}
    if "guard" in values:  # the flag → the guard's default settings, or none
        values["guard"] = (default("guard") or GuardSettings()) if values["guard"] else None
    return SamplingSettings(**values)


@contextlib.contextmanager
def progress_bar(rows: int, sampling: Any, quiet: bool) -> Iterator[Callable[[int, float], None]]:
    """A tqdm bar over all rows' budget, in seconds of music when a duration was asked for,
    else in tokens; yields the sampler's progress callback. The bar appears at the first
    step, so an input error raised before generation starts prints no bar."""
    if quiet:
        yield lambda tokens, seconds: None
        return
    from tqdm.auto import tqdm

    by_seconds = sampling.seconds is not None
    total = rows * (sampling.seconds if by_seconds else sampling.max_new_tokens)
    bars: list[Any] = []

    def update(tokens: int, seconds: float) -> None:
        if not bars:
            fmt = "{l_bar}{bar}| {n:.1f}/{total:.1f} s of music [{elapsed}<{remaining}]"
            bars.append(
                tqdm(
                    total=total,
                    unit="s" if by_seconds else "tok",
                    dynamic_ncols=True,
                    bar_format=fmt if by_seconds else None,
                    leave=False,
                )
            )
        bar = bars[0]
        step = seconds if by_seconds else tokens
        bar.update(min(step, total - bar.n))  # the last step may overshoot a row's duration

    reading: list[Any] = []

    def prefill(done: int, total: int) -> None:  # a long primer being read (the LSTM)
        if not reading:
            reading.append(tqdm(total=total, desc="reading primer", unit="tok", leave=False))
        reading[0].update(done - reading[0].n)

    update.prefill = prefill  # type: ignore[attr-defined]
    try:
        yield update
    finally:
        for bar in bars + reading:
            bar.close()
