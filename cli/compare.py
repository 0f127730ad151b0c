"""`music-transformer compare` (run a listening comparison) and `compare score` (score it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cli.errors import UserError, echo_skipped, user_errors
from cli.options import (
    AUDIO_HELP,
    OneLineCommand,
    batch_size_option,
    device_option,
    length_options,
    output_options,
    pop_settings,
    primers_option,
    sampling_options,
    soundfont_option,
)
from midi_data.render import AUDIO_FORMATS
from music_transformer.comparison.report import COMPARE_BATCH_SIZE


class OneLineGroup(click.Group):
    """A group whose usage errors are one line on stderr with exit status 2."""

    def make_context(self, info_name: str | None, args: list[str], parent=None, **extra: Any):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            raise UserError(e.format_message()) from None

    def resolve_command(self, ctx: click.Context, args: list[str]):
        if args and args[0] not in self.commands:
            raise UserError(
                f"unexpected argument {args[0]!r}: give each primer with its own --primers "
                "(or pass a folder); the only subcommand is 'score'"
            )
        return super().resolve_command(ctx, args)


def _split_models(value: tuple[str, ...]) -> list[str]:
    return [m.strip() for v in value for m in v.split(",") if m.strip()]


@click.group(
    "compare",
    cls=OneLineGroup,
    invoke_without_command=True,
    subcommand_metavar="[score REPORT_DIR ANSWERS.json...]",
)
@click.option(
    "--models",
    multiple=True,
    metavar="A,B[,...]",
    help="Models to compare: bundled names or checkpoint/run directories, comma-separated "
    "(or repeat the option).",
)
@primers_option()
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Report folder to write.")
@length_options
@sampling_options
@click.option(
    "--audio",
    type=click.Choice([*AUDIO_FORMATS, "none"]),
    default="mp3",
    show_default=True,
    help=f"Audio of every clip: {AUDIO_HELP}; none: MIDI and piano rolls only.",
)
@soundfont_option
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    default=None,
    help="Prepared data directory: report each model's NLL on it.",
)
@click.option("--split", default="test", show_default=True, help="Split of --data to score.")
@device_option
@batch_size_option("Primers", COMPARE_BATCH_SIZE)
@click.option("--workers", type=int, default=None, help="Parallel audio renders [default: CPUs].")
@output_options("an existing report in --out")
@click.pass_context
@user_errors
def compare(
    ctx: click.Context,
    models: tuple[str, ...],
    primers: tuple[Path, ...],
    out: Path | None,
    audio: str,
    **options: Any,
) -> None:
    """Listening comparison of several models on the same primers.

    For each primer and model (same seed and settings): the continuation as MIDI, audio
    (FluidSynth, then MP3 unless --audio says otherwise), a piano roll marking where the
    primer ends; then REPORT_DIR/index.html, a self-contained page of blind A/B pairs (random
    order, anonymous files) whose answers the listener exports as JSON. key.json holds the
    key; metrics.json (also tabled in the page) holds each model's NLL on --data and its
    distances to the real continuations of the primers (the music after --primer-seconds,
    default 10 s, or earlier in a file too short for --seconds of real music to follow; the
    page says so). Unreadable primers are reported and skipped.

    Then score the exported answers (one file per listener):

    \b
      music-transformer compare score REPORT_DIR ANSWERS.json [MORE.json...]

    \b
    Example:
      music-transformer compare --models bach-transformer,bach-lstm --primers primers/ \\
          --out report --seconds 20 --seed 1 --temperature 0.95
    """
    if ctx.invoked_subcommand is not None:
        return
    model_list = _split_models(models)
    if not model_list or not primers or out is None:
        missing = [n for n, v in (("--models", model_list), ("--primers", primers), ("--out", out))
                   if not v]  # fmt: skip
        raise UserError(
            f"missing {', '.join(missing)} (see music-transformer compare --help); "
            "to score answers: music-transformer compare score REPORT_DIR ANSWERS.json"
        )
    from music_transformer.comparison import run_comparison

    sampling = pop_settings(options)
    # the rest of the options are run_comparison's own: soundfont, data, split, device,
    # batch_size, workers, force, quiet
    report = run_comparison(
        out,
        models=model_list,
        primers=list(primers),
        sampling=sampling,
        audio=None if audio == "none" else audio,
        **options,
    )
    echo_skipped(report["skipped"])
    for entry in report["primers"]:
        if entry["note"]:
            click.echo(f"{entry['folder']}: {entry['note']}", err=True)
    made = report["audio"]
    if not made["available"] and audio != "none":
        click.echo(f"no audio: {made['reason']} (MIDI and piano rolls were made)", err=True)
    for failed in made["failed"]:
        click.echo(f"audio failed: {failed['reason']}", err=True)
    click.echo(
        f"compared {len(report['models'])} models on {len(report['primers'])} primers "
        f"({report['pairs']} blind pairs, seed {report['sampling']['seed']}); "
        f"open {out / 'index.html'}"
    )


@compare.command("score", cls=OneLineCommand)
@click.argument("report_dir", type=click.Path(path_type=Path))
@click.argument("answers", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@user_errors
def score(report_dir: Path, answers: tuple[Path, ...], as_json: bool) -> None:
    """Score exported answers against REPORT_DIR/key.json.

    Prints each model's preference rate (pairs won / pairs decided) with a two-sided exact
    sign-test p-value. "No preference" answers are ties: counted, but excluded from the rate
    and the test. Several ANSWERS files (one per listener) are pooled.
    """
    import json

    from music_transformer.comparison import format_score, score_answers

    result = score_answers(report_dir, list(answers))
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else format_score(result))
