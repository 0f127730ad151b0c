"""`music-transformer train`: parse options, call music_transformer.training.train."""

from __future__ import annotations

import os
from pathlib import Path

import click

from cli.errors import OneLineCommand, UserError, user_errors
from cli.options import device_option
from music_transformer.nn.config import PRESETS
from music_transformer.runtime import PRECISIONS
from music_transformer.training.options import ARCHS, SCHEDULES
from music_transformer.training.options import default as d


@click.command(cls=OneLineCommand, context_settings={"show_default": True})
@click.option(
    "--data", "data_dir", type=click.Path(file_okay=False), help="Prepared data directory."
)
@click.option("--out", "out_dir", type=click.Path(), required=True, help="Run directory (RUN_DIR).")
@click.option(
    "--arch",
    type=click.Choice(ARCHS),
    default=d("arch"),
)
@click.option("--preset", type=click.Choice(list(PRESETS["transformer"])), default=d("preset"))
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="JSON or TOML file of options (keys as below, with _; plus a [model] table).",
)
@click.option(
    "--init",
    metavar="MODEL_NAME_OR_DIR",
    default=d("init"),
    help="Fine-tune: start from this model's weights and architecture (bundled name or "
    "checkpoint/run directory); the data must use its tokenizer (prepare --tokenizer-from).",
)
@click.option("--resume", is_flag=True, help="Continue RUN_DIR/last exactly where it stopped.")
@click.option("--max-steps", type=int, default=d("max_steps"), help="Optimizer steps in total.")
@click.option(
    "--seq-len",
    type=click.IntRange(min=2),
    default=d("seq_len"),
    help="Training window length L (tokens), ≥ 2 (a model samples with a window of ≥ 2).",
)
@click.option(
    "--batch-size", type=int, default=d("batch_size"), help="Windows per process per micro-batch."
)
@click.option(
    "--accumulation", type=int, default=d("accumulation"), help="Micro-batches per optimizer step."
)
@click.option("--lr", type=float, default=d("lr"), help="Peak learning rate (AdamW).")
@click.option(
    "--schedule",
    type=click.Choice(SCHEDULES),
    default=d("schedule"),
    help="Decay after the linear warm-up.",
)
@click.option(
    "--warmup-steps",
    type=int,
    default=d("warmup_steps"),
    help="Linear warm-up steps [default: 500, or a tenth of --max-steps if that is less].",
)
@click.option(
    "--step-offset",
    type=click.IntRange(min=0),
    default=d("step_offset"),
    help="Train step s as step s + N would be: its learning rate, data windows and dropout. "
    "With --init from a model trained N steps (same --lr, --schedule, --warmup-steps, --seed) "
    "it continues that run, but for the optimizer's moments, which start afresh (so the rate "
    "warms up again over --warmup-steps).",
)
@click.option(
    "--cooldown-steps",
    type=click.IntRange(min=0),
    default=d("cooldown_steps"),
    help="The last N steps before --max-steps take the rate linearly down to ~0.",
)
@click.option("--dropout", type=float, default=None, help="Override the preset's dropout.")
@click.option("--seed", type=int, default=d("seed"))
@click.option("--save-every", type=int, default=d("save_every"), help="Steps between checkpoints.")
@click.option(
    "--eval-every", type=int, default=d("eval_every"), help="Steps between validations (0: end)."
)
@click.option(
    "--early-stop",
    type=int,
    default=d("early_stop"),
    help="Stop after N validations without improvement (0: never).",
)
@click.option("--keep-last", type=int, default=d("keep_last"), help="Step checkpoints to keep.")
@device_option
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default=d("precision"),
    help="auto: bf16 only where one training step of this model's shape measured faster on "
    "this machine (cached; the run's first line says what and why).",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.pass_context
@user_errors
def train(ctx: click.Context, config_file: str | None, **values: object) -> None:
    """Train a Music Transformer or the LSTM baseline on a prepared data directory.

    Under `torchrun --nproc_per_node=K $(which music-transformer) train ...` it runs DDP (gloo on
    CPU, nccl on CUDA); one optimizer step then sees batch-size × K × accumulation windows.
    Options given on the command line win over --config, which wins over the defaults (with
    --resume: over the run's own options.json).

    \b
    RUN_DIR/last/ and RUN_DIR/best/  checkpoints (config.json, model.safetensors, tokenizer.json)
    RUN_DIR/checkpoints/step-N/      the newest --keep-last checkpoints
    RUN_DIR/metrics.jsonl            training loss, validation NLL (nats/token), tokens/s

    \b
    Examples:
      music-transformer train --data data/bach --out runs/bach --preset small --max-steps 5000
      music-transformer train --data data/bach --out runs/bach-lstm --arch lstm
      music-transformer train --out runs/bach --resume --max-steps 8000
      music-transformer train --init piano-transformer --data data/mine --out runs/mine \\
          --max-steps 120 --lr 3e-4
    """
    from music_transformer.training import build_options, load_run_options
    from music_transformer.training import train as run_training

    source = click.core.ParameterSource
    given = {
        name: value
        for name, value in values.items()
        if ctx.get_parameter_source(name) in (source.COMMANDLINE, source.ENVIRONMENT)
    }
    # Defaults are TrainOptions' own; with --resume the run's options.json takes their place.
    base = load_run_options(values["out_dir"]) if values["resume"] else {}
    options = build_options(given, config_file, base)
    if not options.data_dir:
        raise UserError("--data is required (or a --config with data_dir)")
    run_dir = run_training(options)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, one summary line, not K
        click.echo(_summary(run_dir))


def _summary(run_dir: object) -> str:
    from music_transformer.checkpoint import read_meta

    meta = read_meta(Path(str(run_dir)) / "last")  # the run dir itself resolves to best/
    t = meta.get("training", {})
    best = t.get("best_valid_nll")
    tail = f"; best valid NLL {best:.4f} nats/token at step {t.get('best_step')}" if best else ""
    return f"Trained to step {t.get('step')} in {run_dir}{tail}"
