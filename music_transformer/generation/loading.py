"""Which model generation uses, loaded on the device the runtime policy picks, and the
sampler run for a loaded model with its tokenizer's conventions and training length."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, LoadedModel, bundled_models, load_checkpoint
from ..runtime import pick_device
from .filters import SamplingError
from .guards import GuardSettings, bands_from_card
from .sampler import Generated, ProgressFn, TokenInfo, generate, is_absolute
from .settings import DEFAULT_TEMPERATURE, SamplingSettings

DEFAULT_MODEL = "piano-transformer"


def load_model(
    model: str | Path | LoadedModel | None = None, device: str | torch.device | None = "auto"
) -> LoadedModel:
    """A loaded model from a bundled name or checkpoint/run directory (default: the bundled
    Transformer). Raises CheckpointError (a ValueError) with advice when it is missing."""
    if isinstance(model, LoadedModel):
        return model
    if model is None:
        if DEFAULT_MODEL not in bundled_models():
            raise CheckpointError(
                f"the default model {DEFAULT_MODEL!r} is not installed; train one "
                "(music-transformer prepare MIDI_FOLDER --out data/mine && music-transformer "
                "train --data data/mine --out runs/mine) and pass --model runs/mine"
            )
        model = DEFAULT_MODEL
    return load_checkpoint(model, pick_device(device))


def context_slides(loaded: LoadedModel) -> bool:
    """Whether the model's context window slides past its training length, so that attention
    sinks apply: a relative Transformer; not the LSTM (a state, no window) nor a Transformer
    with absolute positions (re-encoded instead)."""
    return loaded.config.arch == "transformer" and not is_absolute(loaded.model)


def check_window(loaded: LoadedModel, settings: SamplingSettings) -> None:
    """A window asked for a model that has none (the LSTM keeps a fixed-size state, not a
    context of tokens), or attention sinks for a model whose context never slides (the LSTM,
    and absolute positions, re-encoded instead), is refused rather than silently ignored."""
    name, arch = loaded.directory.name, loaded.config.arch
    if settings.window is not None and arch != "transformer":
        raise SamplingError(
            f"--window {settings.window}: {name} is an {arch.upper()}, which carries a state "
            "instead of a window of tokens; leave --window out"
        )
    if settings.sink_tokens and not context_slides(loaded):
        kind = (
            f"an {arch.upper()}"
            if arch != "transformer"
            else "a Transformer with absolute positions"
        )
        raise SamplingError(
            f"--sink-tokens {settings.sink_tokens}: {name} is {kind}, whose context is never "
            "slid; leave --sink-tokens out"
        )


def model_settings(loaded: LoadedModel, settings: SamplingSettings) -> SamplingSettings:
    """`settings` with what they leave open taken from the model: its training length as the
    window, its longest note as the note limit, its card's temperature (else
    DEFAULT_TEMPERATURE), its card's choice of guard (else off: `guard` is then GuardSettings
    or False), its card's guard bands (`guards.bands_from_card`) and its card's attention
    sinks (else 0: off; always 0 where the context never slides, `context_slides`)."""
    guard = loaded.guard if settings.guard is None else settings.guard
    if guard is True:
        guard = GuardSettings()
    if isinstance(guard, GuardSettings) and guard.bands is None:  # the card's, if it has some
        guard = replace(guard, bands=bands_from_card(loaded.meta))
    return replace(
        settings,
        guard=guard,
        window=loaded.context_window(settings.window),
        max_note_seconds=settings.max_note_seconds or loaded.max_note_seconds,
        sink_tokens=next(k for k in (settings.sink_tokens, loaded.sink_tokens, 0) if k is not None)
        if context_slides(loaded)
        else 0,  # the sampler keeps no sinks in a context that never slides: recorded so
        temperature=next(
            t
            for t in (settings.temperature, loaded.temperature, DEFAULT_TEMPERATURE)
            if t is not None
        ),
    )


def sample_batch(
    loaded: LoadedModel,
    primers: list[list[int]],
    settings: SamplingSettings,
    progress: ProgressFn | None = None,
    rates: Sequence[float] | None = None,
) -> list[Generated]:
    """`generate` for a loaded model: its tokenizer's specials, durations and grammar, and
    `model_settings` for what `settings` leave open; `rates` as `generate` takes them."""
    settings = model_settings(loaded, settings)
    tokens = TokenInfo.of(loaded.tokenizer)
    return generate(loaded.model, primers, settings, tokens, progress=progress, rates=rates)
