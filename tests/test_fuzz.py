"""Fuzzing: 200 mutations of real MIDI files (byte flips, truncation, chunk-length and division
edits; fixed seed) through `prepare` and `continue`. Each case either gives a valid output or
one line and exit 2 — no traceback, no hang, nothing left behind."""

from __future__ import annotations

import random
import signal
import struct
from contextlib import contextmanager
from pathlib import Path

import pretty_midi
import pytest

from tests.helpers import cli

CASES = 200
SECONDS_PER_CASE = 60  # a hang, not a slow case on a loaded machine (each takes ~1 s)


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One mutation of a MIDI file's bytes, named for the report."""
    kind = rng.choice(["flip", "truncate", "chunk-length", "division", "splice"])
    b = bytearray(data)
    if kind == "flip":
        for _ in range(rng.randint(1, 12)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        b = b[: rng.randrange(len(b))]
    elif kind == "chunk-length":  # an MTrk (or MThd) length that lies
        starts = [i for i in range(len(b) - 8) if b[i : i + 4] in (b"MTrk", b"MThd")]
        i = rng.choice(starts)
        value = rng.choice([0, 1, 0xFFFFFFFF, rng.randrange(1 << 32), len(b) * 2])
        b[i + 4 : i + 8] = struct.pack(">I", value)
    elif kind == "division":
        b[12:14] = struct.pack(">H", rng.choice([0, 1, 0x7FFF, 0x8000 | 25 << 8 | 40, 0xFFFF]))
    else:  # a random span copied over another place
        a, n = rng.randrange(len(b)), rng.randint(1, 64)
        at = rng.randrange(len(b))
        b[at : at + n] = b[a : a + n]
    return kind, bytes(b)


class CaseTimeout(BaseException):
    """A case ran too long. A BaseException, so that no `except Exception`/`OSError` in the
    code under test (TimeoutError is an OSError) can turn it into a tidy one-line error."""


@contextmanager
def time_limit(seconds: int):
    def stop(signum, frame):
        raise CaseTimeout(f"case took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def mutants(bach_midi_dir: Path, tmp_path_factory) -> list[tuple[str, Path]]:
    rng = random.Random(20261201)
    originals = [p.read_bytes() for p in sorted(bach_midi_dir.glob("*.mid"))]
    folder = tmp_path_factory.mktemp("mutants")
    cases = []
    for i in range(CASES):
        kind, data = mutate(rng.choice(originals), rng)
        path = folder / f"case{i:03d}-{kind}.mid"
        path.write_bytes(data)
        cases.append((kind, path))
    return cases


def one_line_or_valid(result, out: Path) -> str:
    """'ok' (a readable MIDI file was written) or 'refused' (one line, exit 2)."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    if result.exit_code == 0:
        pretty_midi.PrettyMIDI(str(out))  # the output is a MIDI file others can read
        return "ok"
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return "refused"


def test_prepare_skips_every_broken_mutant_and_keeps_going(mutants, tmp_path) -> None:
    with time_limit(SECONDS_PER_CASE * 10):
        result = cli(
            *["prepare", str(mutants[0][1].parent), "--out", str(tmp_path / "d"), "-j", "1", "-q"],
        )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # no temporary folder left


def test_continue_on_every_mutant(mutants, tiny_run, tmp_path) -> None:
    seen = {"ok": 0, "refused": 0}
    for i, (_, path) in enumerate(mutants):
        out = tmp_path / f"o{i}.mid"
        args = ["continue", str(path), "-o", str(out), "--model", str(tiny_run), "--tokens", "8",
                "--seed", "0", "-q"]  # fmt: skip
        with time_limit(SECONDS_PER_CASE):
            result = cli(*args)
        outcome = one_line_or_valid(result, out)
        seen[outcome] += 1
        if outcome == "refused":
            assert not out.exists() and not out.with_suffix(".json").exists(), path.name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left
    assert seen["ok"] > 0 and seen["refused"] > 0, seen  # the mutations test both paths
