"""Errors of the data pipeline. Both are ValueErrors with a one-line message, so the CLI's
`user_errors` decorator shows them as one line on stderr (exit 2)."""

from __future__ import annotations


class MidiReadError(ValueError):
    """A MIDI file that cannot be read or holds nothing to tokenize. The message names the file."""


class DataError(ValueError):
    """A bad data directory, source or option of the data pipeline."""
