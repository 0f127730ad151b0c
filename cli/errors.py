"""One-line errors with exit code 2 for user mistakes, never a traceback."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class UserError(click.ClickException):
    """Bad input from the user: printed as one line on stderr, exit status 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True)


class OneLineCommand(click.Command):
    """A command whose usage errors (bad option type, missing argument) are one line on
    stderr with exit status 2, like every other user error, instead of usage + hint."""

    def make_context(self, info_name: str | None, args: list[str], parent=None, **extra: Any):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            raise UserError(e.format_message()) from None


def user_errors(func: F) -> F:
    """Turn the library's ValueError subclasses (bad MIDI, bad config, missing model, bad data
    directory, ...) and OSError into a one-line UserError."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise
        except BrokenPipeError:
            raise  # the reader closed our output (`| head -1`): click exits quietly
        except KeyboardInterrupt as e:  # a library's message says what was kept
            click.echo(f"Interrupted: {e}" if str(e) else "Interrupted.", err=True)
            sys.exit(130)
        except (ValueError, OSError) as e:
            if os.environ.get("MUSIC_TRANSFORMER_DEBUG"):
                raise
            raise UserError(_one_line(e)) from None

    return wrapper  # type: ignore[return-value]


def _one_line(e: Exception) -> str:
    """The first line of the message; an OSError as "FILE: what" (no "[Errno 36]"), a very
    long file name shortened."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        name = str(e.filename)
        return f"{name if len(name) <= 80 else name[:77] + '...'}: {e.strerror}"
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def echo_skipped(entries: list[dict]) -> None:
    """One stderr line per input a batch command skipped (`entries`: its manifest's
    "skipped" list, each with a "reason")."""
    for entry in entries:
        click.echo(f"skipped {entry['reason']}", err=True)
