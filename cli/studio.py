"""`music-transformer studio`: the local web app."""

from __future__ import annotations

from pathlib import Path

import click

from cli.errors import UserError, user_errors
from cli.options import OneLineCommand


@click.command("studio", cls=OneLineCommand)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="TCP port (0: any free port).")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback prints a warning.")  # fmt: skip
@click.option("--model", default=None, metavar="NAME_OR_DIR",
              help="Default model: a bundled name or a checkpoint/run directory.")  # fmt: skip
@click.option("--pieces", "pieces_dir", type=click.Path(path_type=Path), default=None,
              help="Folder of pieces [default: $MUSIC_TRANSFORMER_STUDIO "
              "or ~/music-transformer-studio].")  # fmt: skip
@click.option("--no-browser", is_flag=True, help="Do not open the page in a browser.")
@click.option("--abandon-after", type=click.FloatRange(1, 3600), default=30.0, show_default=True,
              help="Stop a job after this many seconds with no page watching it.")  # fmt: skip
@user_errors
def studio(port: int, host: str, model: str | None, pieces_dir: Path | None, no_browser: bool,
           abandon_after: float) -> None:  # fmt: skip
    """Open the studio: continue a primer, audition candidates, pick one and keep going.

    A local web page (nothing is fetched from the internet) over a small JSON API under
    /api/. Pieces are folders that survive a restart: the primer and a tree of takes.

    \b
    Examples:
      music-transformer studio
      music-transformer studio --port 9000 --no-browser --pieces ~/sketches
    """
    from music_transformer.studio.server import serve

    if pieces_dir is not None and pieces_dir.exists() and not pieces_dir.is_dir():
        raise UserError(f"--pieces {pieces_dir} is a file, not a folder")
    serve(host=host, port=port, model=model, pieces_dir=pieces_dir,
          open_browser=not no_browser, abandon_after=abandon_after,
          echo=lambda line: click.echo(line))  # fmt: skip
