"""`music-transformer judge`: do generated continuations stay music over minutes?"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cli.errors import UserError, user_errors
from cli.options import OneLineCommand


def _percentiles(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise UserError(f"--percentiles {text!r}: expected LOW,HIGH such as 1,99") from None
    return low, high


@click.command(cls=OneLineCommand, context_settings={"show_default": True})
@click.argument("inputs", nargs=-1, required=True, metavar="FILES_OR_FOLDERS...")
@click.option(
    "--reference",
    "-r",
    "references",
    multiple=True,
    required=True,
    metavar="[NAME=]PATH",
    help="Real music to measure against: a MIDI folder or a prepared data directory "
    "(DATA_DIR@SOURCE keeps one source's pieces). Repeatable: classical=DIR pop=DIR.",
)
@click.option(
    "--assign",
    multiple=True,
    metavar="NAME=PATTERN",
    help="With several references: files whose path (or primer's path) matches PATTERN (a "
    "shell pattern or a folder) use reference NAME [default: a reference named like a folder "
    "of the path].",
)
@click.option(
    "--primer-seconds",
    type=click.FloatRange(min=0),
    default=None,
    help="Where the primer ends in files without a JSON sidecar [sidecar files: from it].",
)
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Write judge.txt, judge.json "
              "and judge-<reference>.png here.")  # fmt: skip
@click.option("--segment-seconds", type=click.FloatRange(min=1), default=30.0,
              help="Length of the segments measured (the real ones too).")  # fmt: skip
@click.option("--percentiles", default="1,99", help="The real band: LOW,HIGH percentiles.")
@click.option("--max-outside", type=click.IntRange(min=0), default=1,
              help="Segments outside the band a stretch may have and still hold.")  # fmt: skip
@click.option("--min-seconds", type=click.FloatRange(min=0), default=150.0,
              help="A stretch shorter than this does not hold.")  # fmt: skip
@click.option("--stretch-seconds", type=click.FloatRange(min=0), default=180.0,
              help="Seconds after the primer judged for holds (0: all).")  # fmt: skip
@click.option("--workers", "-j", type=click.IntRange(min=1), default=None,
              help="Processes reading a reference the first time [default: CPUs].")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@user_errors
def judge(
    inputs: tuple[str, ...],
    references: tuple[str, ...],
    assign: tuple[str, ...],
    primer_seconds: float | None,
    out: Path | None,
    segment_seconds: float,
    percentiles: str,
    max_outside: int,
    min_seconds: float,
    stretch_seconds: float,
    workers: int | None,
    as_json: bool,
) -> None:
    """Judge the music after the primer of each MIDI file in 30-s segments against the real
    corpus's bands (percentiles 1–99 of notes per second, distinct pitches, longest
    silence, two-pitch share, repeated pitch 8-grams, register drift from the primer). A
    stretch holds when at most one segment is outside and it lasts ≥ 150 s; the real music's
    own holds rate (its pieces after their first 12 s) is printed beside. Files that cannot
    be judged are reported; the exit status is then 2.

    \b
    Example:
      music-transformer judge out/ --reference classical=../shared/data/classical-piano \\
          --reference pop=data/piano@pop909 --assign pop='*pop*' --out judged
    """
    from music_transformer.longform import Rule, format_table, run_judge

    low, high = _percentiles(percentiles)
    rule = Rule(low, high, segment_seconds, max_outside, min_seconds, stretch_seconds)
    report = run_judge(list(inputs), list(references), assign=list(assign), rule=rule,
                       primer_seconds=primer_seconds, out=out, workers=workers)  # fmt: skip
    click.echo(json.dumps(report.to_dict(), indent=1) if as_json else format_table(report, rule))
    if out is not None:
        click.echo(f"wrote {out / 'judge.txt'}, judge.json, "
                   + ", ".join(p.name for p in report.pictures), err=True)  # fmt: skip
    for path, reason in report.failed:
        click.echo(f"Error: {reason if path in reason else f'{path}: {reason}'}", err=True)
    if report.failed:
        sys.exit(2)
