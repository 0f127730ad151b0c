"""Token data on disk → training batches.

`open_data(dir)` gives a `TokenData` (memory-mapped pieces of a prepared directory).
`WindowBatches` draws random training windows of L+1 tokens, as a pure function of
(seed, step, rank), with the paper's augmentation applied on the fly. `eval_windows` cuts
pieces into fixed windows for validation and evaluation.

Short pieces are PADDED, not packed: a window never spans two pieces, and positions after a
piece's EOS hold `pad_id` (the loss ignores them with ignore_index=pad_id).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import DataError
from .presets import load_tokenizer
from .shards import DATA_FORMAT, MANIFEST, SPLITS, TOKENIZER
from .tokenizer import Tokenizer

TRANSPOSE_MAX = 3  # semitones each way (the paper: ±3)
STRETCH_FACTORS = (0.95, 0.975, 1.0, 1.025, 1.05)  # the paper's time stretches


class TokenData:
    """A prepared data directory. Pickles cheaply (arrays are re-opened in each process).

    Attributes:
        directory: the data directory.
        tokenizer: the tokenizer the data was made with.
        manifest: the parsed manifest.json.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.manifest = _read_manifest(self.directory)
        self.tokenizer: Tokenizer = load_tokenizer(self.directory / TOKENIZER)
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_arrays"] = {}  # memmaps would pickle as copies of the whole split
        return state

    def _split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """(tokens (N,), offsets (P + 1,)) of a split, memory-mapped."""
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
        if split not in self._arrays:
            info = self.manifest["splits"][split]
            tokens = _load(self.directory / info["tokens_file"])
            offsets = np.asarray(_load(self.directory / info["offsets_file"]), dtype=np.int64)
            if len(offsets) != info["pieces"] + 1 or offsets[-1] != len(tokens):
                raise DataError(f"{self.directory}: {split} shard does not match its offsets")
            self._arrays[split] = tokens, offsets
        return self._arrays[split]

    def pieces(self, split: str) -> list[np.ndarray]:
        """Each piece of the split as a read-only (n,) int array: [BOS] events [EOS]."""
        tokens, offsets = self._split(split)
        return [tokens[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]

    def num_tokens(self, split: str) -> int:
        return int(self.manifest["splits"][split]["tokens"]) if split in SPLITS else 0

    def note_length_quantile(self, split: str = "train", q: float = 99.9) -> float | None:
        """The q-th percentile of note lengths (seconds) in a split, as the tokenizer decodes
        them (None when the split has no notes): the sampler's default longest note."""
        lengths = [self.tokenizer.note_seconds(p) for p in self.pieces(split)]
        lengths = [x for x in lengths if len(x)]
        return float(np.percentile(np.concatenate(lengths), q)) if lengths else None

    def num_pieces(self, split: str) -> int:
        return int(self.manifest["splits"][split]["pieces"]) if split in SPLITS else 0

    def __repr__(self) -> str:
        counts = ", ".join(f"{s}={self.num_tokens(s)}" for s in SPLITS)
        return f"TokenData({str(self.directory)!r}, preset={self.tokenizer.preset!r}, {counts})"


def _load(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except ValueError:  # numpy cannot memory-map an empty array
        return np.load(path)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from None


def _read_manifest(directory: Path) -> dict[str, Any]:
    if not directory.is_dir():
        raise DataError(f"data directory {directory} does not exist")
    path = directory / MANIFEST
    if not path.is_file():
        raise DataError(
            f"{directory} is not a data directory (no {MANIFEST}); "
            "run `music-transformer prepare` first"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}") from None
    if manifest.get("format") != DATA_FORMAT or set(manifest.get("splits", {})) != set(SPLITS):
        raise DataError(f"{path} is not a music-transformer data manifest")
    return manifest


def open_data(data_dir: str | Path) -> TokenData:
    """Open a directory written by `prepare`. Raises DataError if it is not one."""
    return TokenData(data_dir)


class WindowBatches(torch.utils.data.Dataset):
    """Random training windows; item `step` is the batch of training step `step`.

    `batches[step]` is a pure function of (seed, step, rank): resuming at step s asks for
    step s again, and each DDP rank draws different windows. Use it directly, or as
    `DataLoader(batches, batch_size=None, sampler=range(s0, s1), num_workers=k)`.

    Each row: a piece chosen with probability ∝ its length (so every token is about equally
    likely), a uniformly random start in it, L+1 tokens, `pad_id` after the end. For presets
    with a fixed frame (jsb: four voices per step) a window starts at BOS or at the last token
    of a step, `grain` tokens apart (jsb: a beat of four steps), as `eval_windows` of a length
    that is a multiple of the grain do: so the token at window position i ≥ 1 is always voice
    (i − 1) mod frame, at the same place in the beat as in a window from BOS — voice labels
    need no offset, and positions tell the beat.
    With `augment`, each row is transposed by a random shift in −3..+3 among those that keep
    its pitches in range, and (performance preset) time-stretched by one of 0.95 … 1.05.

    Args:
        data: the opened data directory.
        split: which split to draw from.
        seq_len: L; rows hold L+1 tokens (inputs and shifted targets).
        batch_size: B rows per item.
        seed: base seed.
        augment: apply transposition and time stretch.
        rank, world_size: this process's DDP rank and the number of ranks.
    """

    def __init__(
        self,
        data: TokenData,
        split: str = "train",
        seq_len: int = 1024,
        batch_size: int = 8,
        seed: int = 0,
        augment: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if seq_len < 1 or batch_size < 1:
            raise ValueError(f"seq_len and batch_size must be ≥ 1 (got {seq_len}, {batch_size})")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.data, self.split = data, split
        self.seq_len, self.batch_size = seq_len, batch_size
        self.seed, self.augment, self.rank, self.world_size = seed, augment, rank, world_size
        _, offsets = data._split(split)
        self._lengths = np.diff(offsets)  # (P,)
        if len(self._lengths) == 0:
            raise DataError(f"{data.directory}: the {split} split is empty")
        self._ends = np.cumsum(self._lengths)  # (P,) for choosing pieces ∝ length
        stretches = augment and data.tokenizer.stretches
        # Extra tokens read before stretching, so a shrunk window still fills L+1.
        self._margin = math.ceil(0.06 * (seq_len + 1)) + 8 if stretches else 0

    def __len__(self) -> int:
        return 2**31 - 1

    def __getitem__(self, step: int) -> torch.Tensor:
        """(B, L+1) int64 token windows of training step `step`."""
        rng = np.random.default_rng([self.seed, self.rank, int(step)])
        tokens, offsets = self.data._split(self.split)
        rows = np.full((self.batch_size, self.seq_len + 1), self.data.tokenizer.pad_id)
        for b in range(self.batch_size):
            piece = int(np.searchsorted(self._ends, rng.integers(self._ends[-1]), side="right"))
            length = int(self._lengths[piece])
            want = self.seq_len + 1 + self._margin
            start = int(rng.integers(max(1, length - want + 1)))
            grain = max(self.data.tokenizer.frame, self.data.tokenizer.grain)
            if grain > 1 and start > 0:  # BOS, then steps of `frame` tokens: start on BOS
                start = (start - 1) // grain * grain  # or a step's last token (context)
            a = int(offsets[piece]) + start
            window = np.asarray(tokens[a : a + min(want, length - start)], dtype=np.int64)
            if self.augment:
                window = self._augment(window, rng)
            window = window[: self.seq_len + 1]
            rows[b, : len(window)] = window
        return torch.from_numpy(rows)  # (B, L+1)

    def _augment(self, window: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        tokenizer = self.data.tokenizer
        shifts = tokenizer.transpositions(window, TRANSPOSE_MAX)
        factor = STRETCH_FACTORS[int(rng.integers(len(STRETCH_FACTORS)))]
        shift = shifts[int(rng.integers(len(shifts)))]
        moved = tokenizer.transpose(window, shift)
        window = window if moved is None else moved
        return tokenizer.stretch(window, factor) if self._margin else window


def eval_windows(pieces: Sequence[np.ndarray | torch.Tensor], context: int) -> list[np.ndarray]:
    """Fixed windows for evaluation — the one cutter shared by training's validation and
    `evaluate`: each piece cut at 0, L, 2L, … (L = `context`) into windows of up to L+1
    tokens, consecutive windows sharing one token, so every token after a piece's first is
    a prediction target exactly once. Windows never span pieces; one-token rests are dropped.

    Returns:
        (n,) int64 arrays, 2 ≤ n ≤ L+1, in piece order.
    """
    if context < 1:
        raise ValueError(f"evaluation windows need a context ≥ 1, not {context}")
    windows = []
    for piece in pieces:
        piece = np.asarray(piece, dtype=np.int64)
        for start in range(0, max(len(piece) - 1, 0), context):
            windows.append(piece[start : start + context + 1])
    return windows
