"""Datasets over a prepared directory: pieces, random training windows, eval windows."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from midi_data import DataError, WindowBatches, eval_windows, open_data


@pytest.fixture(scope="module")
def data(bach_data_dir):
    return open_data(bach_data_dir)


def contains(piece: np.ndarray, row: np.ndarray) -> bool:
    """Whether `row` is a contiguous slice of `piece`."""
    n = len(row)
    windows = np.lib.stride_tricks.sliding_window_view(np.asarray(piece), n)
    return bool((windows == row).all(axis=1).any())


def test_pieces_are_framed_and_match_the_files(data, bach_midi_dir):
    tok = data.tokenizer
    for split in ("train", "valid"):
        pieces = data.pieces(split)
        assert len(pieces) == data.num_pieces(split) > 0
        assert sum(len(p) for p in pieces) == data.num_tokens(split)
        for p in pieces:
            assert p[0] == tok.bos_id and p[-1] == tok.eos_id
    manifest = json.loads((data.directory / "manifest.json").read_text())
    entry = next(e for e in manifest["files"] if e["split"] == "valid")
    piece = data.pieces("valid")[entry["piece"]]
    assert piece[1:-1].tolist() == tok.encode(bach_midi_dir / entry["path"])
    assert data.pieces("test") == [] and data.num_tokens("test") == 0


def test_open_data_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_data(tmp_path / "nope")
    with pytest.raises(DataError, match="run `music-transformer prepare` first"):
        open_data(tmp_path)
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(DataError, match="cannot read"):
        open_data(tmp_path)


def test_windows_are_a_pure_function_of_seed_step_rank(data):
    batches = WindowBatches(data, seq_len=64, batch_size=4, seed=3)
    x = batches[10]
    assert x.shape == (4, 65) and x.dtype == torch.int64
    assert torch.equal(x, batches[10])
    assert torch.equal(x, WindowBatches(data, seq_len=64, batch_size=4, seed=3)[10])  # resume
    assert not torch.equal(x, batches[11])
    assert not torch.equal(x, WindowBatches(data, seq_len=64, batch_size=4, seed=4)[10])
    rank1 = WindowBatches(data, seq_len=64, batch_size=4, seed=3, rank=1, world_size=2)
    assert not torch.equal(x, rank1[10])
    assert len(batches) >= 2**31 - 1


def test_unaugmented_windows_are_slices_of_pieces(data):
    pieces = data.pieces("train")
    batches = WindowBatches(data, seq_len=100, batch_size=8, seed=0, augment=False)
    for step in range(3):
        for row in batches[step].numpy():
            real = row[row != data.tokenizer.pad_id]
            assert any(contains(p, real) for p in pieces)


def test_short_pieces_are_padded(data):
    longest = max(len(p) for p in data.pieces("train"))
    batches = WindowBatches(data, seq_len=longest + 10, batch_size=6, augment=False)
    tok = data.tokenizer
    for row in batches[0].numpy():
        assert row[0] == tok.bos_id  # the whole piece fits, so it starts at its BOS
        end = int(np.nonzero(row == tok.eos_id)[0][0])
        assert (row[end + 1 :] == tok.pad_id).all() and end + 1 < len(row)


def test_augmented_windows_are_transposed_stretched_slices(data):
    """Stretching changes only TIME_SHIFT tokens and transposing only pitches, so an augmented
    row's other tokens, moved back by some k in −3..3, are a contiguous run of a piece's."""
    tok = data.tokenizer

    def events(ids):
        ids = np.asarray(ids)
        return ids[(tok.token_seconds[ids] == 0) & (ids != tok.pad_id)]

    pieces = [events(p) for p in data.pieces("train")]
    plain = WindowBatches(data, seq_len=200, batch_size=16, seed=5, augment=False)[0]
    aug = WindowBatches(data, seq_len=200, batch_size=16, seed=5, augment=True)[0]
    assert aug.shape == plain.shape and not torch.equal(plain, aug)
    shifts = set()
    for row in aug.numpy():
        ev = events(row)
        found = [
            k
            for k in range(-3, 4)
            if (back := tok.transpose(ev, -k)) is not None
            and any(contains(p, back) for p in pieces)
        ]
        assert found, "an augmented row is not a transposed slice of any piece"
        shifts.add(found[0])
    assert len(shifts) > 1  # several transpositions drawn


def test_dataloader_with_workers(data):
    batches = WindowBatches(data, seq_len=32, batch_size=2, seed=1)
    loader = torch.utils.data.DataLoader(
        batches, batch_size=None, sampler=range(5, 8), num_workers=2
    )
    for step, batch in zip(range(5, 8), loader):
        assert torch.equal(batch, batches[step])


def test_eval_windows_cover_every_token_once(data):
    seq_len = 50
    windows = eval_windows(data.pieces("valid"), seq_len)
    assert all(2 <= len(w) <= seq_len + 1 for w in windows)
    targets = [t for w in windows for t in w[1:].tolist()]
    want = [t for p in data.pieces("valid") for t in p[1:].tolist()]
    assert targets == want  # every token after BOS is a target exactly once, in order
    again = eval_windows(data.pieces("valid"), seq_len)
    assert all(np.array_equal(a, b) for a, b in zip(windows, again))
    assert eval_windows(data.pieces("test"), seq_len) == []
    with pytest.raises(ValueError, match="context"):
        eval_windows(data.pieces("valid"), 0)


def test_empty_split_and_bad_args(data):
    with pytest.raises(DataError, match="test split is empty"):
        WindowBatches(data, split="test", seq_len=8, batch_size=2)
    with pytest.raises(DataError, match="unknown split"):
        WindowBatches(data, split="training", seq_len=8, batch_size=2)
    with pytest.raises(ValueError, match="rank"):
        WindowBatches(data, seq_len=8, batch_size=2, rank=2, world_size=2)
