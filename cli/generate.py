"""`music-transformer continue` and `music-transformer generate`."""

from __future__ import annotations

from pathlib import Path

import click

from cli.errors import UserError, echo_skipped, user_errors
from cli.options import (
    OneLineCommand,
    OutputPath,
    audio_options,
    batch_size_option,
    check_renderer,
    length_options,
    model_options,
    output_options,
    pop_audio,
    pop_settings,
    primers_option,
    sampling_options,
    sustain_pedal_option,
)
from music_transformer.generation.progress import progress_bar


def _describe(record: dict) -> str:
    new = record["continuation"]
    primer = record["primer"]
    head = f"{primer['seconds']:.1f} s primer + " if primer and primer["included"] else ""
    return (
        f"{head}{new['seconds']:.1f} s new ({new['tokens']} tokens, stopped by {new['stopped_by']})"
    )


@click.command("continue", cls=OneLineCommand)
@click.argument("primer", type=click.Path(path_type=Path))
@click.option("-o", "--out", required=True, type=OutputPath(), help="Output MIDI file.")
@model_options
@length_options
@sampling_options
@click.option("--num-samples", type=int, default=1, show_default=True, help="Write OUT-1 … OUT-N.")
@batch_size_option("Samples")
@click.option("--continuation-only", is_flag=True, help="Write only the new music.")
@sustain_pedal_option
@audio_options
@output_options("existing outputs")
@user_errors
def continue_(primer: Path, out: Path, num_samples: int, quiet: bool, **options) -> None:
    """Continue the MIDI file PRIMER and write OUT (primer + continuation).

    A JSON sidecar beside each output (OUT.json) records the model, settings, seed, token
    counts and seconds of music. Past the model's training length the context slides, so
    long continuations cost the same per token as short ones.

    \b
    Examples:
      music-transformer continue chorale.mid -o out.mid --seconds 30 --audio mp3
      music-transformer continue piano.mid -o take.mid --model runs/maestro \\
          --primer-seconds 10 --tokens 2000 --temperature 0.9 --top-p 0.95 --num-samples 4
    """
    from music_transformer.generation.continuation import continue_midi

    sampling = pop_settings(options)
    audio, soundfont = pop_audio(options)
    # before any work: a missing package is one line, and nothing is written
    renderer = check_renderer(audio, soundfont) if audio else None
    with progress_bar(num_samples, sampling, quiet) as progress:
        # the rest are continue_midi's own: model, device, batch_size, continuation_only,
        # sustain_pedal, force
        outputs = continue_midi(
            primer, out, settings=sampling, num_samples=num_samples, progress=progress, **options
        )
    for o in outputs:
        click.echo(f"wrote {o.midi}: {_describe(o.record)}")
        if renderer is not None:
            _render(o.midi, f".{audio}", renderer)


def _render(midi: Path, suffix: str, renderer: tuple[str, Path]) -> None:
    from midi_data.render import RenderError, render_audio

    exe, sf2 = renderer
    try:
        out = render_audio(midi, midi.with_suffix(suffix), sf2, fluidsynth=exe)
    except RenderError as e:
        raise UserError(str(e)) from None
    click.echo(f"wrote {out}")


def _render_all(midis: list[Path], suffix: str, soundfont: Path | None, quiet: bool) -> None:
    """Render every output (in parallel, as compare does); a failure is one line, exit 2."""
    from music_transformer.comparison.audio import render_all

    report = render_all([(m, m.with_suffix(suffix)) for m in midis], soundfont, quiet=quiet)
    if not report.available:
        raise UserError(report.reason)
    click.echo(f"wrote {len(report.rendered)} {suffix[1:]} files")
    if report.failed:
        why = report.failed[0][1]
        raise UserError(f"audio failed for {len(report.failed)} of {len(midis)} pieces: {why}")


@click.command("generate", cls=OneLineCommand)
@click.argument("more_primers", nargs=-1, type=click.Path(path_type=Path), metavar="[PRIMER]...")
@click.option("--out", "-o", required=True, type=OutputPath(folder=True), help="Output folder.")
@click.option(
    "--num-samples",
    type=int,
    default=1,
    show_default=True,
    help="Pieces per primer (in all, without primers).",
)
@batch_size_option("Pieces")
@primers_option("; more may follow as arguments")
@model_options
@length_options
@sampling_options
@sustain_pedal_option
@audio_options
@output_options("an existing manifest and outputs")
@user_errors
def generate(
    more_primers: tuple[Path, ...],
    out: Path,
    num_samples: int,
    primers: tuple[Path, ...],
    quiet: bool,
    **options,
) -> None:
    """Generate many pieces in batches, unconditionally or from primers.

    Writes OUT/<primer>-<i>.mid (or OUT/sample-<i>.mid) with JSON sidecars and
    OUT/manifest.json, which lists every output and every primer skipped and why. Primers
    that cannot be read are skipped; the others go on.

    \b
    Examples:
      music-transformer generate --out samples --num-samples 8 --seconds 20
      music-transformer generate --out takes --primers primers/ --num-samples 2 \\
          --batch-size 8 --temperature 0.95 --top-k 40 --audio mp3
    """
    from music_transformer.generation.batch import generate_pieces
    from music_transformer.generation.primers import find_primers

    sampling = pop_settings(options)
    audio, soundfont = pop_audio(options)
    if audio:
        check_renderer(audio, soundfont)  # before any work
    paths = [*primers, *more_primers]
    rows = num_samples * max(1, len(find_primers(paths)))  # skipped primers overcount
    with progress_bar(rows, sampling, quiet) as progress:
        # the rest are generate_pieces' own: model, device, batch_size, sustain_pedal, force
        manifest = generate_pieces(
            out, num_samples=num_samples, primers=paths, settings=sampling, progress=progress,
            **options,
        )  # fmt: skip
    echo_skipped(manifest["skipped"])
    outputs = manifest["outputs"]
    seconds = sum(e["seconds"] for e in outputs)
    click.echo(
        f"wrote {len(outputs)} pieces ({seconds:.1f} s of music) to {out}; "
        f"{len(manifest['skipped'])} primers skipped; see {out / 'manifest.json'}"
    )
    if audio:
        _render_all([out / e["file"] for e in outputs], f".{audio}", soundfont, quiet)
