"""The one generation loop (`generation.runner`): continue, generate and compare make the same
pieces for the same primer and seed; seeds, batches, skipping and stopping; and `generate`
stopped by Ctrl-C resumes where it stopped, as if it had never stopped. The tiny trained run
in fp32 (bf16 rounding may differ between batch shapes)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from music_transformer.generation import Job, SamplingSettings, load_model, read_primer, run
from music_transformer.generation.batch import MANIFEST, GenerationInterrupted, generate_pieces
from music_transformer.generation.outputs import OutputExistsError
from music_transformer.generation.runner import batches
from tests.helpers import cli

VOLATILE = ("created", "version")


@pytest.fixture(scope="module")
def primer_file(bach_midi_dir: Path) -> Path:
    return sorted(bach_midi_dir.glob("*.mid"))[0]


@pytest.fixture(scope="module")
def loaded(tiny_run: Path):
    return load_model(tiny_run, "cpu")


def sidecar(path: Path, *drop: str) -> dict:
    record = json.loads(path.with_suffix(".json").read_text())
    return {k: v for k, v in record.items() if k not in (*VOLATILE, *drop)}


def test_batches_are_cut_at_multiples_of_the_batch_size_and_around_skips() -> None:
    assert batches(5, 2) == [range(0, 2), range(2, 4), range(4, 5)]
    assert batches(5, 2, {0, 1, 3}) == [range(2, 3), range(4, 5)]
    assert batches(7, 3, {1}) == [range(0, 1), range(2, 3), range(3, 6), range(6, 7)]
    assert batches(3, 16, {0, 1, 2}) == []


def test_continue_and_generate_write_the_same_pieces(tiny_run, primer_file, tmp_path) -> None:
    common = ["--model", tiny_run, "--tokens", 24, "--seed", 5, "--precision", "fp32",
              "--num-samples", 3, "--batch-size", 2, "-q"]  # fmt: skip
    assert cli("continue", primer_file, "-o", tmp_path / "c.mid", *common).exit_code == 0
    assert cli("generate", primer_file, "-o", tmp_path / "g", *common).exit_code == 0
    manifest = json.loads((tmp_path / "g" / MANIFEST).read_text())
    assert [e["seed"] for e in manifest["outputs"]] == [5, 6, 7]
    made = [tmp_path / f"c-{i}.mid" for i in (1, 2, 3)]
    assert len({m.read_bytes() for m in made}) == 3  # three seeds, three pieces
    for i, c in enumerate(made, start=1):
        g = tmp_path / "g" / f"{primer_file.stem}-{i}.mid"
        assert c.read_bytes() == g.read_bytes()
        assert sidecar(c, "output") == sidecar(g, "output")
        assert sidecar(c)["sampling"]["batch"] == (2 if i < 3 else 1)


def test_compare_clips_are_the_runners_takes(tiny_run, primer_file, loaded, tmp_path) -> None:
    other = tmp_path / "other"  # compare refuses identical weights: a different model
    shutil.copytree(tiny_run, other)
    weights = other / "best" / "model.safetensors"
    tensors = load_file(weights)
    save_file({k: v * 1.01 for k, v in tensors.items()}, weights)
    primers = tmp_path / "primers"
    primers.mkdir()
    shutil.copy(primer_file, primers)
    out = tmp_path / "report"
    result = cli("compare", "--models", f"{tiny_run},{other}", "--primers", primers, "--out",
                 out, "--seconds", 2, "--primer-seconds", 4, "--seed", 3, "--precision",
                 "fp32", "--audio", "none", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    settings = SamplingSettings(seconds=2, primer_seconds=4, seed=3, precision="fp32")
    primer = read_primer(loaded.tokenizer, primer_file, 4, file_time=True)
    (take,) = run(loaded, [Job(primer)], settings)
    expected = tmp_path / "expected.mid"
    loaded.tokenizer.write_midi(primer.ids[1:] + take.result.tokens, expected)
    key = json.loads((out / "key.json").read_text())
    first = [s for s in key["samples"].items() if s[1]["model"] == key["models"][0]]
    assert len(first) == 1 and len(key["samples"]) == 2
    for sid, sample in first:
        assert sample["seed"] == take.seed == 3
        assert sample["tokens"] == len(take.result.tokens)
        assert next(out.glob(f"*/{sid}.mid")).read_bytes() == expected.read_bytes()


def test_run_seeds_batches_skips_and_stops(loaded, primer_file) -> None:
    primer = read_primer(loaded.tokenizer, primer_file, 4.0, file_time=True)
    jobs = [Job(primer), Job(None), Job(primer), Job(primer), Job(None)]
    settings = SamplingSettings(tokens=12, seed=40, precision="fp32")
    takes = list(run(loaded, jobs, settings, batch_size=2))
    assert [t.index for t in takes] == [0, 1, 2, 3, 4]
    assert [t.seed for t in takes] == [40, 41, 42, 43, 44]
    assert [t.batch for t in takes] == [2, 2, 2, 2, 1]
    assert all(t.job is jobs[t.index] for t in takes)
    # Skipping finished jobs: the rest are made as the whole run made them.
    rest = list(run(loaded, jobs, settings, batch_size=2, skip={0, 1, 3}))
    assert [t.index for t in rest] == [2, 4]
    assert [t.result.tokens for t in rest] == [takes[2].result.tokens, takes[4].result.tokens]
    # should_stop between batches: the run ends after the first batch's takes.
    got: list = []
    for take in run(loaded, jobs, settings, batch_size=2, should_stop=lambda: len(got) >= 2):
        got.append(take)
    assert [t.index for t in got] == [0, 1]
    # ... and between decoding steps: the unfinished batch is dropped.
    steps: list[int] = []
    stopped = run(loaded, jobs, settings, 2, lambda n, s: steps.append(n),
                  should_stop=lambda: len(steps) >= 3)  # fmt: skip
    assert list(stopped) == [] and len(steps) == 3


def test_generate_interrupted_writes_what_finished_and_resumes(tiny_run, bach_midi_dir, tmp_path):
    primers = sorted(bach_midi_dir.glob("*.mid"))[:2]
    args = dict(num_samples=2, primers=primers, model=tiny_run, batch_size=2, device="cpu",
                settings=SamplingSettings(tokens=16, precision="fp32"))  # fmt: skip
    steps = []

    def ctrl_c_in_second_batch(tokens: int, seconds: float) -> None:
        steps.append(tokens)
        if len(steps) == 16 + 3:  # a batch of 16 tokens is 16 steps
            raise KeyboardInterrupt

    out = tmp_path / "out"
    with pytest.raises(GenerationInterrupted, match="wrote 2 of 4 pieces"):
        generate_pieces(out, progress=ctrl_c_in_second_batch, **args)
    first = json.loads((out / MANIFEST).read_text())
    assert "incomplete" in first
    assert [e["file"] for e in first["outputs"]] == [f"{primers[0].stem}-{i}.mid" for i in (1, 2)]
    assert sorted(p.name for p in out.glob("*.mid")) == [e["file"] for e in first["outputs"]]
    kept = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}

    # Another length is another run: refused, nothing touched.
    other = {**args, "settings": SamplingSettings(tokens=17, precision="fp32")}
    with pytest.raises(OutputExistsError, match="interrupted run with another sampling"):
        generate_pieces(out, **other)
    # The same call again (no seed given: the interrupted run's) makes the other two only.
    resumed = generate_pieces(out, **args)
    assert "incomplete" not in resumed
    assert [e["seed"] for e in resumed["outputs"]] == [
        first["sampling"]["seed"] + j for j in range(4)
    ]
    assert all(out.joinpath(n).stat().st_mtime_ns == t for n, t in kept.items() if n != MANIFEST)
    # ... exactly as one uninterrupted run with that seed.
    seed = first["sampling"]["seed"]
    whole = generate_pieces(tmp_path / "whole", **{**args, "settings": SamplingSettings(
        tokens=16, precision="fp32", seed=seed)})  # fmt: skip
    strip = lambda m: {k: v for k, v in m.items() if k not in VOLATILE}  # noqa: E731
    assert strip(resumed) == strip(whole)
    for entry in whole["outputs"]:
        assert (out / entry["file"]).read_bytes() == (
            tmp_path / "whole" / entry["file"]
        ).read_bytes()
        assert sidecar(out / entry["file"]) == sidecar(tmp_path / "whole" / entry["file"])
    # A finished run is not resumed: its manifest needs --force.
    with pytest.raises(OutputExistsError, match="pass --force"):
        generate_pieces(out, **args)


@pytest.mark.parametrize("name", ["bach-lstm", "bach-transformer"])
def test_samples_of_one_primer_read_it_once_and_match_lone_runs(name) -> None:
    """Rows with the same primer share one prefill (its cache rows copied): each still
    makes what it makes alone (the LSTM's state and the Transformer's cache alike)."""
    loaded = load_model(name, "cpu")
    bundled = Path(__file__).resolve().parents[1] / "music_transformer" / "bundled" / "primers"
    primer = read_primer(loaded.tokenizer, bundled / "bwv145-a.mid", 4.0, file_time=True)
    other = read_primer(loaded.tokenizer, bundled / "bwv17_7.mid", 3.0, file_time=True)
    jobs = [Job(primer), Job(other), Job(primer), Job(primer)]
    settings = SamplingSettings(tokens=20, seed=9, precision="fp32")
    together = [t.result.tokens for t in run(loaded, jobs, settings, batch_size=4)]
    alone = [next(run(loaded, jobs, settings, 1, skip=set(range(4)) - {j})).result.tokens
             for j in range(4)]  # fmt: skip
    assert together == alone
    assert len({tuple(t) for t in together}) == 4  # four seeds, four different takes
