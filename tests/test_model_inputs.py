"""What the input tells the model besides the token — the paper's Table 2 options:
position sinusoids concatenated to the token embedding, and voice labels for grid presets."""

from __future__ import annotations

import pytest
import torch

from music_transformer.generation.sampler import _last, generate
from music_transformer.generation.settings import SamplingSettings
from music_transformer.nn import ConfigError, make_config
from music_transformer.nn.transformer import sinusoids
from tests.helpers import sharpened_model
from tests.tolerances import rounding_bound

V = 40
VOICES = {"concat_positions": 8, "voice_dims": 4, "frame": 4}


def test_options_are_checked_and_shape_the_embedding() -> None:
    config = make_config("transformer", "tiny", V, **VOICES)
    assert config.token_dims == 64 - 8 - 4
    for bad, why in [
        ({"voice_dims": 4}, "frame"),  # no voices in this preset
        ({"concat_positions": 40, "voice_dims": 24, "frame": 4}, "no channel"),
        ({"concat_positions": 8, "tie_embeddings": True}, "tie_embeddings"),
        ({"concat_positions": -1}, "≥ 0"),
    ]:
        with pytest.raises(ConfigError, match=why):
            make_config("transformer", "tiny", V, **bad)


@torch.no_grad()
def test_inputs_concatenate_token_position_and_voice() -> None:
    model = sharpened_model("transformer", V, 0, **VOICES)
    tokens = torch.randint(0, V, (2, 11))
    positions = torch.arange(11).expand(2, 11)
    x = model._inputs(tokens, positions)  # (B, T, D)
    d_tok = model.config.token_dims
    # the same operations on the same values: equal (the default tolerance is never used)
    torch.testing.assert_close(x[..., :d_tok], model.embed(tokens) * 8.0)  # √64
    torch.testing.assert_close(x[..., d_tok : d_tok + 8], sinusoids(positions, 8))
    voices = model.voice_emb.weight[(positions - 1) % 4]  # position 0: BOS or a step's bass
    torch.testing.assert_close(x[..., d_tok + 8 :], voices)
    # the voice label changes the output: the same tokens one voice later differ
    differ = model(tokens)[0][:, 1:] - model(tokens[:, 1:])[0]
    assert differ.abs().max() > rounding_bound(128, 8, sums=13)  # more than rounding


def test_tails_start_on_a_time_step() -> None:
    row = list(range(23))  # BOS, then steps of 4 tokens (+ two of the next)
    assert _last(row, None, 4) == row and _last(row, 30, 4) == row
    assert _last(row, 10, 4) == row[16:]  # index 16: the bass of a step, then a soprano
    assert _last(row, 11, 4) == row[12:] and _last(row, 10, 1) == row[13:]
    assert _last(row, 10, 16) == _last(row, 20, 16) == row[16:]  # a beat: 16 tokens


@torch.no_grad()
def test_decoding_past_the_window_keeps_the_voices() -> None:
    """A relative model with voice labels, sampled greedily past its window with the cache
    sliding, equals the one-pass forward with that window over the whole row — so the voice
    of every position stayed right while the cache slid."""
    model, w = sharpened_model("transformer", V, 2, voice_dims=4, frame=4), 12
    primer = [1, *torch.randint(3, V, (8,)).tolist()]  # BOS + 2 steps
    settings = SamplingSettings(tokens=30, temperature=0.0, window=w, precision="fp32")
    new = generate(model, [primer], settings)[0].tokens
    row = torch.tensor([primer + new])
    logits = model(row, window=w)[0][0, len(primer) - 1 : -1]  # (T_new, V)
    # each sampled token is the one-pass forward's greedy choice, up to a near-tie within
    # rounding (tiny preset: 13 chained sums of ≤ 128 terms, |z| ≤ 8)
    gap = logits.max(-1).values - logits[torch.arange(len(new)), new]
    assert (gap <= 2 * rounding_bound(128, 8, sums=13)).all()


def test_pitch_and_time_logits_are_what_the_paper_describes() -> None:
    """Each query/key pair gets q·(P[interval] + E[steps apart]), written out pair by pair:
    tokens 4…33 are semitones, others no pitch; step = (position − 1) // 4."""
    config = make_config("transformer", "tiny", V, frame=4, rel_pitch_time=3, pitch_token0=4,
                         pitch_tokens=30)  # fmt: skip
    table = sharpened_model("transformer", V, 1, **{
        k: getattr(config, k) for k in ("frame", "rel_pitch_time", "pitch_token0", "pitch_tokens")
    }).blocks[0].attn.pitch_time  # fmt: skip
    tokens = torch.tensor([[1, 10, 12, 3, 20, 5, 33, 2, 9, 10, 11, 12, 13]])  # (1, K)
    positions = torch.arange(13)[None]
    q = torch.randn(1, 4, 5, 16)  # the last 5 positions query
    got = table(q, tokens, positions)  # (1, H, 5, K)
    for i in range(5):
        qi = 8 + i
        for j in range(13):
            a, b = int(tokens[0, qi]) - 4, int(tokens[0, j]) - 4
            row = a - b + 29 if 0 <= a < 30 and 0 <= b < 30 else 59
            steps = min(max((qi - 1) // 4 - (j - 1) // 4, 0), 2)
            want = q[0, :, i] @ table.pitch_emb[:, row].T + q[0, :, i] @ table.time_emb[:, steps].T
            # two sums of Dh = 16 products each, |q·P| + |q·E| ≤ 8 here
            torch.testing.assert_close(
                got[0, :, i, j], want.diagonal(), atol=rounding_bound(16, 8, sums=2), rtol=0
            )
