"""`music-transformer prepare`: MIDI sources → a tokenized data directory."""

from __future__ import annotations

import click

from cli.errors import OneLineCommand, UserError, user_errors
from cli.options import output_options
from midi_data.presets import PRESETS


@click.command(cls=OneLineCommand)
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@click.option(
    "--out", "-o", required=True, type=click.Path(file_okay=False),
    help="Data directory to write: a new or empty folder, or with --force a previous data "
    "directory (never any other folder).",
)  # fmt: skip
@click.option(
    "--tokenizer", "preset", default="performance", show_default=True,
    type=click.Choice(PRESETS),
    help="performance: the paper's NOTE_ON/OFF + 10 ms TIME_SHIFT events; score: REMI; "
    "jsb: four-voice 16th-note grid, S A T B per step (the paper's JSB Chorales tokens).",
)  # fmt: skip
@click.option(
    "--tokenizer-from", "tokenizer_from", metavar="MODEL_NAME_OR_DIR",
    help="Use this model's tokenizer (bundled name or checkpoint/run directory), to fine-tune "
    "it on the data: `train --init` needs the same vocabulary.",
)  # fmt: skip
@click.option("--workers", "-j", type=click.IntRange(min=1), help="Processes [default: CPUs].")
@click.option(
    "--split", default="0.9,0.05,0.05", show_default=True,
    help="Train,valid,test fractions (split by file, deterministic).",
)  # fmt: skip
@output_options("an existing data directory at --out")
@click.pass_context
@user_errors
def prepare(
    ctx: click.Context,
    sources: tuple[str, ...],
    out: str,
    preset: str,
    tokenizer_from: str | None,
    workers: int | None,
    split: str,
    force: bool,
    quiet: bool,
) -> None:
    """Tokenize MIDI SOURCEs into a training data directory.

    \b
    A SOURCE is a folder (searched recursively for .mid/.midi), a MIDI file,
    a built-in corpus: music21:bach (the chorales) or music21:palestrina,
    or a four-voice grid .json file (the JSB Chorales benchmark), whose own
    train/valid/test split is kept (--split then applies to the other sources).
    Unreadable files are skipped and listed; manifest.json records why.

    \b
    Examples:
      music-transformer prepare music21:bach --out data/bach
      music-transformer prepare Jsb16thSeparated.json --out data/jsb --tokenizer jsb
      music-transformer prepare my-pieces/ --out data/mine --tokenizer-from piano-transformer
    """
    from midi_data.shards import prepare as run

    tokenizer = None
    if tokenizer_from is not None:
        from music_transformer.checkpoint import model_tokenizer

        tokenizer = model_tokenizer(tokenizer_from)
        source = ctx.get_parameter_source("preset")
        if source == click.core.ParameterSource.COMMANDLINE and preset != tokenizer.preset:
            raise UserError(
                f"--tokenizer {preset} contradicts --tokenizer-from {tokenizer_from}, whose "
                f"tokenizer is {tokenizer.preset!r}; give only one"
            )
    result = run(
        sources, out, preset=preset, workers=workers, split=split, progress=not quiet,
        tokenizer=tokenizer, force=force,
    )  # fmt: skip
    for name, reason in result.skipped:
        click.echo(f"skipped {name}: {reason}", err=True)
    counts = ", ".join(
        f"{s} {result.pieces[s]} pieces / {result.tokens[s]:,} tokens" for s in result.pieces
    )
    click.echo(
        f"{result.directory}: {counts}; {len(result.skipped)} skipped; {result.seconds:.1f} s"
    )
