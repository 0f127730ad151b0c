"""Model configs: presets, JSON round trip, errors that name the problem."""

from __future__ import annotations

import dataclasses

import pytest

from music_transformer.nn import build_model
from music_transformer.nn.config import (
    PRESETS,
    ConfigError,
    LSTMConfig,
    ModelConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    make_config,
    save_config,
)


@pytest.mark.parametrize("arch", ["transformer", "transformer-absolute", "lstm"])
@pytest.mark.parametrize("preset", ["tiny", "small", "paper"])
def test_every_preset_round_trips_through_json(arch, preset, tmp_path):
    config = make_config(arch, preset, vocab_size=437)
    save_config(config, tmp_path / "config.json")
    assert load_config(tmp_path / "config.json") == config
    assert config_from_dict(config_to_dict(config)) == config
    assert (
        getattr(config, "position", None)
        == {
            "transformer": "relative",
            "transformer-absolute": "absolute",
            "lstm": None,
        }[arch]
    )


def test_paper_preset_matches_the_paper():
    c = make_config("transformer", "paper", vocab_size=437)
    assert (c.n_layers, c.d_model, c.n_heads) == (6, 512, 8)


def test_overrides_win_and_configs_are_frozen():
    c = make_config("transformer", "tiny", 100, n_layers=3, rel_shared_heads=True)
    assert (
        c.n_layers == 3
        and c.rel_shared_heads
        and c.d_model == PRESETS["transformer"]["tiny"]["d_model"]
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.n_layers = 4  # type: ignore[misc]


def test_old_config_without_new_fields_still_loads():
    d = config_to_dict(make_config("transformer", "tiny", 50))
    for new_field in ("attn_chunk", "grad_checkpoint"):
        d.pop(new_field)
    assert isinstance(config_from_dict(d), ModelConfig)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"arch": "transformer", "vocab_size": 10, "d_model": 30, "n_heads": 4}, "divisible"),
        ({"arch": "transformer", "vocab_size": 10, "position": "rotary"}, "position"),
        ({"arch": "transformer", "vocab_size": 10, "dropout": 1.0}, "dropout"),
        ({"arch": "transformer", "vocab_size": 10, "attn_chunk": -1}, "attn_chunk"),
        ({"arch": "transformer", "vocab_size": 10, "colour": "red"}, "'colour'"),
        ({"arch": "lstm", "vocab_size": 0}, "vocab_size"),
        ({"arch": "gru", "vocab_size": 10}, "'gru'"),
        ({"arch": "lstm"}, "vocab_size"),
    ],
)
def test_bad_configs_raise_one_line_errors(fields, message):
    with pytest.raises(ConfigError, match=message) as info:
        config_from_dict(fields)
    assert "\n" not in str(info.value)


def test_unknown_arch_or_preset_in_make_config():
    with pytest.raises(ConfigError, match="unknown arch"):
        make_config("gpt", "tiny", 10)
    with pytest.raises(ConfigError, match="unknown preset"):
        make_config("lstm", "huge", 10)


def test_build_model_keeps_its_config():
    for config in (make_config("transformer", "tiny", 20), LSTMConfig(vocab_size=20, hidden=8)):
        assert build_model(config).config is config
