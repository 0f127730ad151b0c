"""Shared fixtures: the shared test data, a few Bach chorales as MIDI, a prepared data dir,
and one tiny model trained on it for the whole session.

The chorales come from music21's corpus through `midi_data.corpus` (converted once and cached
in the user cache directory, see `midi_data.cache.cache_dir`), so the first session that
needs them takes a few seconds longer.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Spinning OpenMP threads slow everything down when the other core is busy. Set before anything
# imports torch: hence the fixtures import the packages and tests.helpers in their bodies.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

NUM_CHORALES = 12


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (MAESTRO samples, odd MIDI files, JSB chorales), or skip."""
    from tests.helpers import shared_path

    return shared_path()


@pytest.fixture(scope="module")
def tok(request: pytest.FixtureRequest):
    """A fresh tokenizer of the test module's PRESET ("performance" unless the module sets
    it), one per module."""
    from midi_data.presets import make_tokenizer

    return make_tokenizer(getattr(request.module, "PRESET", "performance"))


@pytest.fixture(scope="session")
def bach_midi_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 12 Bach chorales (music21 corpus) rendered to MIDI."""
    pytest.importorskip("music21")
    from midi_data.corpus import music21_files

    files = music21_files("bach", limit=NUM_CHORALES, workers=2)
    folder = tmp_path_factory.mktemp("bach_midi")
    for f in files:
        if f.error is None:
            shutil.copyfile(f.path, folder / (Path(f.relative).name + ".mid"))
    if len(list(folder.iterdir())) < NUM_CHORALES // 2:
        pytest.fail(f"music21 converted too few chorales: {[f.error for f in files]}")
    return folder


@pytest.fixture(scope="session")
def bach_data_dir(bach_midi_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory (performance preset) prepared from `bach_midi_dir`, with non-empty
    train and valid splits (split 0.7,0.3,0; test is empty)."""
    from midi_data.shards import prepare

    out = tmp_path_factory.mktemp("bach_data") / "data"
    result = prepare([str(bach_midi_dir)], out, workers=1, split="0.7,0.3,0", progress=False)
    assert result.pieces["train"] > 0 and result.pieces["valid"] > 0, result
    return out


@pytest.fixture(scope="session")
def tiny_run(bach_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tiny Transformer run directory trained once per session on `bach_data_dir` with
    `TINY_RUN` (40 steps, seq_len 64: a few seconds). Read-only: a test that writes into a run
    copies it first; the teardown checks that no file of it changed."""
    from music_transformer.training import train
    from tests.helpers import TINY_RUN, cpu_train_options, tree_digest

    run = tmp_path_factory.mktemp("tiny_run") / "run"
    train(cpu_train_options(bach_data_dir, run, **TINY_RUN))
    before = tree_digest(run)
    yield run
    assert tree_digest(run) == before, f"a test changed the shared run {run}"
