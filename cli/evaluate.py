"""`music-transformer evaluate`: NLL per token and by position bucket."""

from __future__ import annotations

import json

import click

from cli.errors import OneLineCommand, user_errors
from cli.options import device_option
from music_transformer.runtime import PRECISIONS


@click.command(cls=OneLineCommand, context_settings={"show_default": True})
@click.argument("model_dir")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False),
    required=True,
    help="Prepared data directory (same tokenizer as the model).",
)
@click.option("--split", type=click.Choice(["train", "valid", "test"]), default="test")
@click.option(
    "--context",
    type=click.IntRange(min=1),
    default=None,
    help="Longest window in tokens of context [default: 4 × training length].",
)
@click.option(
    "--window",
    type=click.IntRange(min=1),
    default=None,
    help="Attend only to the last W positions in every layer, as generation past its window "
    "does [default: full attention].",
)
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=4, help="Windows per forward pass."
)
@click.option(
    "--max-pieces", type=click.IntRange(min=1), default=None, help="Score only the first N pieces."
)
@device_option
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="auto",
    help="auto: as training decides (bf16 where it measured faster); the result says which.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@user_errors
def evaluate(
    model_dir: str,
    data_dir: str,
    split: str,
    context: int | None,
    window: int | None,
    batch_size: int,
    max_pieces: int | None,
    device: str,
    precision: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """NLL (nats/token) and perplexity of MODEL_DIR on a data split, and NLL by position:
    0–L, L–2L, 2L–4L where L is the model's training length. MODEL_DIR is a checkpoint,
    a run directory (its best/, else last/) or a bundled model name.

    \b
    Examples:
      music-transformer evaluate bach-transformer --data data/bach --split test
      music-transformer evaluate runs/bach --data data/bach --context 1024 --window 256 --json
    """
    from tqdm.auto import tqdm

    from music_transformer.evaluation import evaluate as run_evaluation
    from music_transformer.evaluation import format_table

    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="window", leave=False, disable=True if quiet else None)
        bar.update(done - bar.n)

    result = run_evaluation(
        model_dir,
        data_dir,
        split,
        context,
        batch_size,
        device,
        max_pieces=max_pieces,
        window=window,
        precision=precision,
        progress=progress,
    )
    if bar is not None:
        bar.close()
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else format_table(result))
