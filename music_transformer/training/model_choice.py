"""Which model a run trains: a preset and its overrides, the checkpoint being resumed, or the
model being fine-tuned (`--init`) — its architecture and, checked here, its tokenizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..checkpoint import model_tokenizer, read_meta, resolve_model_dir
from ..nn import AnyConfig, make_config
from ..nn.config import config_from_dict
from .options import TrainError, TrainOptions

# Model options a fine-tuning run (`--init`) may change: they leave the weights' shapes alone.
TUNABLE = {"dropout", "attn_chunk", "grad_checkpoint"}


def init_checkpoint(options: TrainOptions, tokenizer: Any) -> Path:
    """The checkpoint `--init` names; its tokenizer must be the data's, id for id."""
    directory = resolve_model_dir(options.init)
    theirs = model_tokenizer(directory)
    if theirs.vocab != tokenizer.vocab:
        raise TrainError(
            f"data {options.data_dir} was prepared with another tokenizer "
            f"({tokenizer.preset}, {tokenizer.vocab_size} tokens) than model "
            f"{options.init} ({theirs.preset}, {theirs.vocab_size} tokens); prepare it with "
            f"`music-transformer prepare ... --tokenizer-from {options.init}`"
        )
    return directory


def init_architecture(options: TrainOptions, chosen: set[str]) -> str:
    """The `--arch` of the model `--init` names, which the run trains (and options.json
    records). An `arch` chosen (on the command line or in --config) that differs, or any
    `preset`, contradicts it: TrainError, rather than silently training another model."""
    init_arch = arch_name(config_from_dict(read_meta(options.init)["model"]))
    if "preset" in chosen:
        raise TrainError(
            f"--preset {options.preset} contradicts --init {options.init}, whose size is its "
            "own; leave --preset out"
        )
    if "arch" in chosen and options.arch != init_arch:
        raise TrainError(
            f"--arch {options.arch} contradicts --init {options.init}, whose architecture is "
            f"{init_arch}; leave --arch out"
        )
    return init_arch


def model_config(
    options: TrainOptions,
    tokenizer: Any,
    resumed: dict[str, Any] | None = None,
    init_dir: Path | None = None,
) -> AnyConfig:
    """The run's model config: the resumed checkpoint's (`resumed`: its config.json "model"),
    else the fine-tuned model's with only TUNABLE options changed, else arch + preset."""
    if resumed is not None:  # the checkpoint decides the architecture
        return config_from_dict(resumed)
    overrides = dict(options.model)
    if options.dropout is not None:
        overrides["dropout"] = options.dropout
    if init_dir is not None:  # fine-tuning: the model's own architecture
        shaping = sorted(set(overrides) - TUNABLE)
        if shaping:
            raise TrainError(
                f"--init takes the architecture of {options.init}; model option "
                f"{shaping[0]!r} cannot change it (only {', '.join(sorted(TUNABLE))})"
            )
        return config_from_dict({**read_meta(init_dir)["model"], **overrides})
    if options.arch != "lstm":  # the token preset's frame: voice labels follow from it
        overrides.setdefault("frame", int(getattr(tokenizer, "frame", 1)))
        overrides.setdefault("grain", int(getattr(tokenizer, "grain", 1)))
        if overrides.get("rel_pitch_time"):
            overrides.update(pitch_tokens(tokenizer))
    config = make_config(options.arch, options.preset, tokenizer.vocab_size, **overrides)
    if getattr(config, "voice_dims", 0) and options.seq_len % config.frame:
        raise TrainError(
            f"voice labels need a seq_len divisible by the preset's {config.frame} tokens per "
            f"step, not {options.seq_len}"
        )
    return config


def pitch_tokens(tokenizer: Any) -> dict[str, int]:
    """{"pitch_token0", "pitch_tokens"}: the tokenizer's run of pitch tokens, consecutive ids
    for consecutive semitones (what relative pitch embeddings need)."""
    pitches = getattr(tokenizer, "pitches", None)
    first = getattr(tokenizer, "rest_id", None)
    if not pitches or first is None or list(pitches) != list(range(pitches[0], pitches[-1] + 1)):
        raise TrainError(
            "rel_pitch_time needs a grid preset whose pitch tokens are consecutive semitones "
            f"(jsb); {getattr(tokenizer, 'preset', '?')} tokens are not"
        )
    return {"pitch_token0": int(first) + 1, "pitch_tokens": len(pitches)}


def arch_name(config: AnyConfig) -> str:
    """The `--arch` value that builds this config."""
    if config.arch == "transformer" and config.position == "absolute":
        return "transformer-absolute"
    return config.arch
