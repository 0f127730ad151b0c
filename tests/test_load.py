"""A load test: `generate` of 64 pieces in batches while a second process reads the same model
and a third trains — all finish, every output is a valid MIDI file, the manifest is complete."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pretty_midi
import pytest


@pytest.mark.slow
def test_generate_read_and_train_at_once(tiny_run: Path, bach_data_dir: Path, tmp_path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    py = [sys.executable, "-m", "cli"]
    jobs = {
        "generate": [*py, "generate", "--out", str(tmp_path / "gen"), "--model", str(tiny_run),
                          "--num-samples", "64", "--batch-size", "16", "--tokens", "48",
                          "--seed", "5", "-q"],
        "evaluate": [*py, "evaluate", str(tiny_run), "--data", str(bach_data_dir), "--split",
                          "valid", "--json", "-q"],
        "train": [*py, "train", "--data", str(bach_data_dir), "--out", str(tmp_path / "run"),
                       "--preset", "tiny", "--max-steps", "30", "--seq-len", "32",
                       "--batch-size", "4", "--eval-every", "15", "--save-every", "15",
                       "--device", "cpu", "--precision", "fp32", "-q"],
    }  # fmt: skip
    procs = {
        name: subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
        for name, cmd in jobs.items()
    }  # fmt: skip
    done = {name: (*p.communicate(timeout=600), p.returncode) for name, p in procs.items()}
    done = {name: (code, out, err) for name, (out, err, code) in done.items()}
    for name, (code, _, err) in done.items():
        assert code == 0, f"{name}: {err[-2000:]}"

    manifest = json.loads((tmp_path / "gen" / "manifest.json").read_text())
    assert len(manifest["outputs"]) == 64 and manifest["skipped"] == []
    for entry in manifest["outputs"]:
        midi = tmp_path / "gen" / entry["file"]
        pretty_midi.PrettyMIDI(str(midi))  # whole and readable
        sidecar = json.loads((tmp_path / "gen" / entry["sidecar"]).read_text())
        assert sidecar["continuation"]["tokens"] == entry["tokens"] == 48
    assert len({e["seed"] for e in manifest["outputs"]}) == 64
    assert json.loads(done["evaluate"][1])["tokens"] > 0
    assert (tmp_path / "run" / "best" / "model.safetensors").is_file()
