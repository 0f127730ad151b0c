"""Shared by the tests: the shared test data, options for quick deterministic CPU training, the
settings of the session's tiny trained run, and sharpened tiny random models."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import click.testing
import mido
import pytest
import torch

from music_transformer.nn import build_model
from music_transformer.nn.config import make_config
from music_transformer.training import TrainOptions

# ../shared/data beside the checkout (MAESTRO samples, odd MIDI files, JSB chorales): only on
# development machines, so every test that reads it skips without it, saying so.
# $MUSIC_TRANSFORMER_TEST_DATA points elsewhere (a path that does not exist: as a fresh clone).
SHARED_DATA = Path(
    os.environ.get("MUSIC_TRANSFORMER_TEST_DATA")
    or Path(__file__).resolve().parents[2] / "shared" / "data"
)
# What every checkout has: 12-s primers of real music (3 Bach chorales, 3 piano pieces).
BUNDLED_PRIMERS = Path(__file__).resolve().parents[1] / "music_transformer" / "bundled" / "primers"


def shared_path(*parts: str) -> Path:
    """SHARED_DATA / parts, or skip the calling test (or fixture) saying what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (only on development machines)")
    return path


def shared_files(folder: str, pattern: str) -> list[Any]:
    """The files matching `pattern` in SHARED_DATA / folder, sorted, for `parametrize`; without
    that folder, one parameter that skips with the reason (so a clone without the data skips)."""
    path = SHARED_DATA / folder
    if not path.is_dir():
        reason = f"shared test data not found at {path} (only on development machines)"
        return [pytest.param(None, id="no-shared-data", marks=pytest.mark.skip(reason=reason))]
    return sorted(path.glob(pattern))


def piano_files(limit: int | None = None) -> list[Any]:
    """Real piano MIDI for `parametrize`: the bundled piano primers (in every checkout), then
    the shared MAESTRO samples (at most `limit`; without them, one parameter that skips)."""
    return (
        sorted(BUNDLED_PRIMERS.glob("piano-*.mid"))
        + shared_files("maestro-samples", "*.mid")[:limit]
    )


def cpu_train_options(data_dir: str | Path, out_dir: str | Path, **fields: Any) -> TrainOptions:
    """TrainOptions for a test: the tiny preset on the CPU in fp32, quiet, no TensorBoard;
    `fields` set the rest (steps, lengths, learning rate, ...) and may override these."""
    values: dict[str, Any] = dict(
        data_dir=str(data_dir),
        out_dir=str(out_dir),
        preset="tiny",
        quiet=True,
        device="cpu",
        precision="fp32",
        tensorboard=False,
    )
    values.update(fields)
    return TrainOptions(**values)


# The session's tiny run (the `tiny_run` fixture in conftest.py, trained once on the Bach
# chorales of `bach_data_dir`): what test_train checks about a run directory, and the model the
# CLI, evaluate, compare and fine-tuning tests use. Validation every 10 steps on the whole valid
# split (test_evaluate compares its own NLL with it), a checkpoint every 10 (the last 3 kept), a
# metrics line every 5.
TINY_RUN: dict[str, Any] = dict(
    arch="transformer",
    max_steps=40,
    seq_len=64,
    batch_size=4,
    lr=1e-2,
    warmup_steps=5,
    eval_every=10,
    eval_batches=0,
    save_every=10,
    log_every=5,
    seed=0,
)


def cli(*args: object) -> click.testing.Result:
    """Run `music-transformer ARGS...` in this process (each argument str()-ed), as click's
    CliRunner does: exit_code, output (stdout and stderr), stderr, exception."""
    from cli.main import main

    return click.testing.CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(result: click.testing.Result, *words: str) -> str:
    """The error of a refused command: exit status 2, nothing on stdout, one stderr line
    "Error: …" naming each of `words` (case-insensitive), no traceback; returns that line."""
    assert result.exit_code == 2, result.output
    err = result.stderr.strip()
    assert err.startswith("Error: ") and "\n" not in err, result.output
    assert not result.stdout.strip() and "Traceback" not in result.output, result.output
    for word in words:
        assert word.lower() in err.lower(), err
    return err


def run_recipe(script: str, *args: str, **env: str) -> None:
    """Run recipes/SCRIPT (bash) from the project root with this interpreter's CLI and Python
    (MT, PY) and the extra environment given; fail the test with its stderr tail."""
    root = Path(__file__).resolve().parents[1]
    full = dict(os.environ, PY=sys.executable,
                MT=str(Path(sys.executable).parent / "music-transformer"), **env)  # fmt: skip
    done = subprocess.run(["bash", str(root / "recipes" / script), *args], env=full, cwd=root,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]


def tree_digest(root: Path) -> dict[str, str]:
    """Path → sha256 of every file under root (to prove nothing was overwritten)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def sharpened_model(
    arch: str = "transformer",
    vocab: int = 48,
    seed: int = 0,
    *,
    std: float | None = None,
    **overrides: Any,
) -> torch.nn.Module:
    """A tiny randomly initialized model (`make_config(arch, "tiny", vocab, **overrides)`, seeded
    with `seed`) in eval mode, its matrices re-drawn with larger weights.

    The training init (std 0.02) leaves a random model's logits almost blind to the context
    (it mostly echoes the last token), so a broken cache, window or padding would go unnoticed.
    Weights of std ~1.5/√fan_in (or `std` when given) make every earlier token move the logits
    by whole units, and attention peaky. Vectors (biases, LayerNorm gains) keep their init."""
    torch.manual_seed(seed)
    model = build_model(make_config(arch, "tiny", vocab, **overrides))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, std if std is not None else 1.5 / p.shape[-1] ** 0.5)
    return model.eval()


def forward_in_pieces(model: torch.nn.Module, tokens: torch.Tensor, bounds) -> tuple:
    """Run `model` over tokens (B, T) piece by piece, [a, e) for each (a, e) in `bounds`,
    carrying its cache: (logits (B, T', V) of all pieces, the last cache)."""
    cache, outs = None, []
    for a, e in bounds:
        logits, cache = model(tokens[:, a:e], cache=cache)
        outs.append(logits)
    return torch.cat(outs, dim=1), cache


def left_padded(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows, each (1, n_i), side by side: tokens (B, T) int64 left-padded with 0 and
    valid (B, T) bool, T the longest row (what the sampler feeds a batch of primers)."""
    t = max(row.shape[1] for row in rows)
    tokens = torch.zeros(len(rows), t, dtype=torch.long)
    valid = torch.zeros(len(rows), t, dtype=torch.bool)
    for i, row in enumerate(rows):
        n = row.shape[1]
        tokens[i, t - n :], valid[i, t - n :] = row[0], True
    return tokens, valid


def retimed_chorale(bach_midi_dir: Path, out: Path, tempi: dict[int, int]) -> Path:
    """A real chorale written to `out` with its tempo map replaced by `tempi` (beat → µs per
    beat): for beat-time models, whose clock differs from the file's away from 120 BPM."""
    source = mido.MidiFile(str(sorted(bach_midi_dir.glob("*.mid"))[0]))
    tpb = source.ticks_per_beat
    for track in source.tracks:
        track[:] = [m for m in track if m.type != "set_tempo"]
    events, tick = [], 0
    for m in source.tracks[0]:
        tick += m.time
        events.append((tick, m))
    for beat, tempo in tempi.items():
        events.append((beat * tpb, mido.MetaMessage("set_tempo", tempo=tempo)))
    events.sort(key=lambda e: (e[0], e[1].type != "set_tempo", e[1].type == "end_of_track"))
    source.tracks[0] = mido.MidiTrack(
        m.copy(time=t - (events[i - 1][0] if i else 0)) for i, (t, m) in enumerate(events)
    )
    source.save(str(out))
    return out
