"""The Performance RNN baseline: same interface as the Transformer, step-by-step = full."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_model, save_model

from music_transformer.calibration import bf16_error
from music_transformer.nn import build_model
from music_transformer.nn.config import make_config
from music_transformer.nn.lstm import PerformanceRNN
from tests.helpers import forward_in_pieces, left_padded
from tests.tolerances import rounding_bound

V = 30
# The tiny LSTM (2 layers, hidden 64, |gate inputs| summing to ≤ 1, logits ≤ 0.3): per step
# and layer, gates sum ≤ 128 terms and the output projection 64. An error in the cell state
# decays by the forget gate (≈ 0.5) each step, so the errors of all earlier steps add up to
# at most twice one step's: 2 layers × 2 sums × 2 + the output = 9 sums of ≤ 128 terms.
ATOL = rounding_bound(128, 1, sums=9)  # 1.4e-4


def _model(seed=0, **overrides):
    torch.manual_seed(seed)
    return build_model(make_config("lstm", "tiny", V, **overrides)).eval()


def _tokens(b, t, seed=1):
    return torch.randint(0, V, (b, t), generator=torch.Generator().manual_seed(seed))


def test_built_from_its_config():
    model = _model(n_layers=3, hidden=48)
    assert isinstance(model, PerformanceRNN)
    assert model.lstm.num_layers == 3 and model.lstm.hidden_size == 48
    assert model.config.arch == "lstm"


@torch.no_grad()
def test_step_by_step_and_chunks_equal_full_sequence():
    model, x = _model(), _tokens(3, 25)
    full, state = model(x)
    assert full.shape == (3, 25, V) and state.length == 25
    steps, st = forward_in_pieces(model, x, [(i, i + 1) for i in range(25)])
    torch.testing.assert_close(steps, full, atol=ATOL, rtol=0)
    torch.testing.assert_close(st.h, state.h, atol=ATOL, rtol=0)
    chunks, _ = forward_in_pieces(model, x, [(0, 4), (4, 5), (5, 25)])
    torch.testing.assert_close(chunks, full, atol=ATOL, rtol=0)


@torch.no_grad()
def test_trim_is_a_no_op():
    model, x = _model(), _tokens(2, 10)
    _, state = model(x)
    assert state.trim(3) is state


@torch.no_grad()
def test_left_padded_rows_equal_their_unpadded_singles():
    model = _model()
    lengths = [11, 4, 7, 0]  # the last row is all padding: its state must stay zero
    t = max(lengths)
    rows = [_tokens(1, n, seed=10 + i) for i, n in enumerate(lengths)]
    tokens, valid = left_padded(rows)
    logits, state = model(tokens, valid=valid)
    more = _tokens(4, 3, seed=7)
    cont, _ = model(more, cache=state)
    for i, (row, n) in enumerate(zip(rows, lengths)):
        if n == 0:
            assert state.h[:, i].abs().max() == 0
            alone_cont, _ = model(more[i : i + 1])
        else:
            alone, alone_state = model(row)
            torch.testing.assert_close(logits[i, t - n :], alone[0], atol=ATOL, rtol=0)
            alone_cont, _ = model(more[i : i + 1], cache=alone_state)
        torch.testing.assert_close(cont[i], alone_cont[0], atol=ATOL, rtol=0)


def test_right_padding_is_an_error():
    model = _model()
    valid = torch.tensor([[True, True, False]])
    with pytest.raises(ValueError, match="left padding"):
        model(_tokens(1, 3), valid=valid)


def test_state_dict_round_trips_through_safetensors(tmp_path):
    model, other, x = _model(seed=0), _model(seed=1), _tokens(2, 9)
    save_model(model, str(tmp_path / "m.safetensors"))
    assert not torch.allclose(model(x)[0], other(x)[0])
    load_model(other, str(tmp_path / "m.safetensors"))
    torch.testing.assert_close(other(x)[0], model(x)[0], atol=0, rtol=0)  # same weights, ops


def test_bf16_autocast_and_dropout_in_train_mode_only():
    model, x = _model(dropout=0.3), _tokens(2, 12)
    why = bf16_error(torch.device("cpu"), model.config)
    if why:  # `--precision bf16` says so in one line (test_calibration)
        pytest.skip(f"needs a CPU with AVX-512: oneDNN has no bf16 LSTM kernel here ({why})")
    with torch.no_grad():
        assert torch.equal(model(x)[0], model(x)[0])
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, _ = model(x)
    loss = torch.nn.functional.cross_entropy(logits.float().view(-1, V), x.view(-1))
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    with torch.no_grad():
        assert not torch.equal(model(x)[0], model(x)[0])
