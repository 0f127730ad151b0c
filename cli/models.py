"""`music-transformer models` and `music-transformer info NAME_OR_DIR`."""

from __future__ import annotations

import json
from typing import Any

import click

from cli.errors import user_errors
from cli.options import OneLineCommand
from music_transformer.generation.settings import DEFAULT_TEMPERATURE


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _kind(config: dict[str, Any]) -> str:
    if config.get("arch") == "transformer":
        return f"transformer ({config.get('position', 'relative')})"
    return str(config.get("arch"))


@click.command("models", cls=OneLineCommand)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@user_errors
def models(as_json: bool) -> None:
    """List the models bundled with the package (usable as --model NAME).

    \b
    Example:
      music-transformer models
    """
    from music_transformer.catalog import bundled_info

    infos = bundled_info()
    if as_json:
        click.echo(json.dumps(infos, indent=2))
        return
    if not infos:
        click.echo(
            "No bundled models in this installation. Train one with `music-transformer prepare`"
            " and `music-transformer train`, then pass its run directory as --model."
        )
        return
    rows = [("NAME", "KIND", "PARAMS", "TOKENIZER", "VALID NLL", "TEMP", "FOR")]
    for info in infos:
        if "error" in info:
            rows.append((info["name"], "broken", "-", "-", "-", "-", info["error"]))
            continue
        training = info["training"]
        nll = training.get("best_valid_nll", training.get("valid_nll"))
        rows.append(
            (
                info["name"],
                _kind(info["config"]),
                f"{info['parameters'] / 1e6:.2f}M",
                _fmt(info["tokenizer"].get("preset")),
                _fmt(nll),
                _fmt(info.get("sampling", {}).get("temperature", DEFAULT_TEMPERATURE)),
                _fmt(info.get("suits")),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])


@click.command("info", cls=OneLineCommand)
@click.argument("model", metavar="NAME_OR_DIR")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@user_errors
def info(model: str, as_json: bool) -> None:
    """Show a model's config, parameter count, tokenizer and training metrics.

    NAME_OR_DIR is a bundled model name, a checkpoint directory, or a training run directory
    (its best/ checkpoint, else last/).

    \b
    Examples:
      music-transformer info bach-transformer
      music-transformer info runs/bach --json
    """
    from music_transformer.catalog import model_info, precision_here

    data = model_info(model)
    data["precision_here"] = precision_here(data)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"model:      {data['name']}")
    click.echo(f"directory:  {data['directory']}")
    click.echo(f"kind:       {_kind(data['config'])}")
    click.echo(f"parameters: {data['parameters']:,}")
    click.echo(f"version:    {_fmt(data['version'])}")
    if data.get("suits"):
        click.echo(f"suits:      {data['suits']}")
    temperature = data.get("sampling", {}).get("temperature", DEFAULT_TEMPERATURE)
    click.echo(f"temperature: {temperature} (the default of continue, generate and compare)")
    guard = "on" if data.get("sampling", {}).get("guard") is True else "off"
    click.echo(f"guard:      {guard} (the default of --guard/--no-guard)")
    sinks = data.get("sampling", {}).get("sink_tokens") or 0
    click.echo(f"sinks:      {sinks or 'off'} (the default of --sink-tokens)")
    click.echo("precision (--precision auto on this machine):")
    for workload, choice in data["precision_here"].items():
        click.echo(f"  {workload:<7} {choice['precision']}: {choice['why']}")
    for title in ("config", "tokenizer", "training"):
        click.echo(f"{title}:")
        _echo_section(data[title] or {"(none recorded)": None}, "  ")


def _echo_section(section: dict[str, Any], indent: str) -> None:
    """key  value lines; a nested table (e.g. a shipped model's training recipe) indents."""
    width = max(len(k) for k in section)
    for key, value in section.items():
        if isinstance(value, dict) and value:
            click.echo(f"{indent}{key}:")
            _echo_section(value, indent + "  ")
        else:
            click.echo(f"{indent}{key.ljust(width)}  {_fmt(value)}")
