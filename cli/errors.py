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


def user_errors(func: F) -> F:
    """Turn the library's ValueError subclasses (bad MIDI, bad config, missing model, bad data
    directory, ...) and OSError into a one-line UserError."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except click.ClickException:
            raise
        except KeyboardInterrupt as e:  # a library's message says what was kept
            click.echo(f"Interrupted: {e}" if str(e) else "Interrupted.", err=True)
            sys.exit(130)
        except (ValueError, OSError) as e:
            if os.environ.get("MUSIC_TRANSFORMER_DEBUG"):
                raise
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(msg) from None

    return wrapper  # type: ignore[return-value]
