"""`music-transformer`: the click group (each command lives in its own module under cli/)
and `run`, the program's entry point, which sets up the process once before the group runs.

Importing this module changes nothing in the process: tests and Python callers invoke `main`
as they are; only `run` (the console script, `python -m cli`) sets the process up.
"""

from __future__ import annotations

import importlib
import os

import click


def run() -> None:
    """The console script: set up the process (`setup_process`), then run the group."""
    setup_process()
    main()


def setup_process() -> None:
    """What the program sets for its whole process, before torch is loaded (the commands
    import it lazily). Spinning OpenMP workers made `continue` 12× slower (23 s instead of
    1.9 s for 300 tokens) when another process kept the other core busy, so OpenMP waits
    passively unless the user's OMP_WAIT_POLICY says otherwise; and freed buffers stay in
    the heap for reuse instead of being page-faulted afresh (`allocator`)."""
    from music_transformer.allocator import keep_freed_memory

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    keep_freed_memory()


# command name → "module:function". Modules are imported only when their command runs,
# so `music-transformer --help` stays fast (torch is not imported for it).
COMMANDS: dict[str, str] = {
    "prepare": "cli.prepare:prepare",
    "train": "cli.train:train",
    "evaluate": "cli.evaluate:evaluate",
    "continue": "cli.generate:continue_",
    "generate": "cli.generate:generate",
    "models": "cli.models:models",
    "info": "cli.models:info",
    "compare": "cli.compare:compare",
    "judge": "cli.judge:judge",
    "studio": "cli.studio:studio",
}

HELP = {
    "prepare": "Tokenize MIDI sources into a training data directory.",
    "train": "Train a Music Transformer or the LSTM baseline.",
    "evaluate": "NLL per token and by position bucket on a data split.",
    "continue": "Continue a MIDI primer with a model.",
    "generate": "Generate many pieces in batches, with or without primers.",
    "models": "List the bundled models.",
    "info": "Show a model's config, size, tokenizer and training metrics.",
    "compare": "Listening comparison of several models (audio, piano rolls, A/B page).",
    "judge": "Do continuations stay music over minutes? 30-s segments vs a real corpus.",
    "studio": "Local web app: continue, audition, pick a take and keep going.",
}


def _available(name: str) -> bool:
    module = COMMANDS[name].split(":")[0]
    return importlib.util.find_spec(module) is not None


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if _available(name)]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS or not _available(name):
            return None
        module, attr = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, HELP[name]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="music-transformer")
def main() -> None:
    """Generate symbolic music with the Music Transformer (Huang et al., ICLR 2019).

    \b
    Example:
      music-transformer continue primer.mid -o out.mid --seconds 30
    """
