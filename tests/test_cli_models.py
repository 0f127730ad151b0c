"""`music-transformer models` and `music-transformer info` on real checkpoint directories."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from midi_data.presets import make_tokenizer
from music_transformer.checkpoint import bundled_models, save_checkpoint
from music_transformer.nn import build_model
from music_transformer.nn.config import make_config
from music_transformer.training import TrainOptions
from tests.helpers import cli

TRAINING = {"seq_len": 96, "step": 1234, "valid_nll": 1.8765, "best_valid_nll": 1.75}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """A checkpoint per architecture, with recorded training metrics, and a run directory."""
    root = tmp_path_factory.mktemp("models")
    dirs = {}
    for arch, preset in (("transformer", "performance"), ("lstm", "score")):
        tok = make_tokenizer(preset)
        config = make_config(arch, "tiny", tok.vocab_size)
        dirs[arch] = save_checkpoint(root / arch, build_model(config), config, tok, TRAINING)
    tok = make_tokenizer("performance")
    config = make_config("transformer-absolute", "tiny", tok.vocab_size)
    dirs["run"] = root / "run"
    save_checkpoint(dirs["run"] / "best", build_model(config), config, tok, TRAINING)
    return dirs


@pytest.mark.parametrize("arch", ["transformer", "lstm"])
def test_info_shows_config_parameters_tokenizer_and_metrics(checkpoints, arch) -> None:
    directory = checkpoints[arch]
    text = cli("info", directory)
    assert text.exit_code == 0, text.output
    as_json = cli("info", directory, "--json")
    assert as_json.exit_code == 0
    data = json.loads(as_json.stdout)
    config = make_config(arch, "tiny", data["config"]["vocab_size"])
    expected = sum(p.numel() for p in build_model(config).parameters())
    assert data["parameters"] == expected
    assert f"{expected:,}" in text.stdout
    assert data["config"]["arch"] == ("lstm" if arch == "lstm" else "transformer")
    assert data["training"]["valid_nll"] == TRAINING["valid_nll"]
    assert "1.877" in text.stdout  # the validation NLL, shown with 4 digits
    preset = "score" if arch == "lstm" else "performance"
    assert data["tokenizer"]["preset"] == preset and preset in text.stdout
    assert data["tokenizer"]["vocab_size"] == make_tokenizer(preset).vocab_size
    assert "miditok_version" in data["tokenizer"]


def test_info_of_a_run_directory_uses_its_best_checkpoint(checkpoints) -> None:
    result = cli("info", checkpoints["run"], "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["directory"].endswith("best")
    assert data["config"]["position"] == "absolute"
    assert "absolute" in cli("info", checkpoints["run"]).stdout


def test_info_bad_inputs_are_one_line_errors(checkpoints, tmp_path) -> None:
    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((checkpoints["lstm"] / "config.json").read_text())
    bad_config = tmp_path / "bad-config"
    bad_config.mkdir()
    (bad_config / "config.json").write_text('{"model": {"arch": "lstm", "wings": 2}}')
    (bad_config / "model.safetensors").write_bytes(b"")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = {
        tmp_path / "missing": "missing",
        no_weights: "model.safetensors",
        bad_config: "wings",
        empty: "config.json",
    }
    for path, word in cases.items():
        result = cli("info", path)
        assert result.exit_code == 2, (path, result.output)
        err = result.stderr.strip()
        assert err.startswith("Error:") and "\n" not in err and word in err, err


def test_models_lists_bundled_models_or_says_how_to_get_one() -> None:
    result = cli("models")
    assert result.exit_code == 0, result.output
    listed = json.loads(cli("models", "--json").stdout)
    bundled = bundled_models()
    assert [m["name"] for m in listed] == list(bundled)
    if bundled:
        for name in bundled:
            assert name in result.stdout
    else:
        assert "No bundled models" in result.stdout and "train" in result.stdout


def test_export_writes_the_best_checkpoint_with_bf16_weights(checkpoints, tmp_path) -> None:
    import torch

    from music_transformer.checkpoint import export_checkpoint, load_checkpoint

    recipe = TrainOptions(data_dir="/somewhere/data", out_dir=str(checkpoints["run"]), augment=True)
    (checkpoints["run"] / "options.json").write_text(json.dumps(recipe.to_dict()))
    out = export_checkpoint(checkpoints["run"], tmp_path / "shipped")
    source, shipped = load_checkpoint(checkpoints["run"]), load_checkpoint(out)
    assert (out / "model.safetensors").stat().st_size < 0.6 * (
        source.directory / "model.safetensors"
    ).stat().st_size
    assert not (out / "train_state.pt").exists()
    umask = os.umask(0)
    os.umask(umask)
    for name in ("model.safetensors", "config.json", "tokenizer.json"):  # not private files
        assert (out / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    assert shipped.meta["training"]["bundled_from"] == "run/best"
    # how it was trained travels with the weights; where it ran does not
    shipped_recipe = shipped.meta["training"]["recipe"]
    assert shipped_recipe["augment"] is True and shipped_recipe["lr"] == recipe.lr
    assert "data_dir" not in shipped_recipe and "out_dir" not in shipped_recipe
    shown = cli("info", out).output.splitlines()  # the recipe as an indented table
    assert "  recipe:" in shown and any(line.split() == ["augment", "True"] for line in shown)
    assert shipped.meta["training"]["step"] == TRAINING["step"]
    shipped_weights = shipped.model.state_dict()
    for name, weight in source.model.state_dict().items():  # bf16 rounding, nothing else
        assert torch.equal(shipped_weights[name].float(), weight.bfloat16().float()), name
