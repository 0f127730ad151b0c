"""Performance RNN (Oore et al. 2018; Magenta): the LSTM baseline with the Transformer interface.

Legend: B batch, T new tokens, L LSTM layers, N hidden units, E embedding width, V vocab.

`forward(tokens, cache=None, valid=None) -> (logits, state)` like MusicTransformer, so the
sampler, trainer and evaluator treat both alike. The state is an explicit value (`LSTMState`).
Left padding is handled here because torch's packed sequences only know right padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .config import LSTMConfig


@dataclass(frozen=True)
class LSTMState:
    """Hidden and cell state of every layer after the positions seen so far.

    Attributes:
        h: (L, B, N) hidden state.
        c: (L, B, N) cell state.
        length: positions consumed (padding included), like KVCache.length.
    """

    h: Tensor
    c: Tensor
    length: int

    @property
    def batch_size(self) -> int:
        return self.h.shape[1]

    def trim(self, window: int) -> LSTMState:
        """No-op: the state already summarizes the whole past at constant size."""
        return self

    def rows(self, index: Tensor) -> LSTMState:
        """The state of rows `index` ((B',) int64; a row may repeat) of this one."""
        return LSTMState(self.h.index_select(1, index), self.c.index_select(1, index), self.length)


class PerformanceRNN(nn.Module):
    """Embedding → stacked LSTM (dropout between layers) → dropout → logits."""

    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.d_embed)
        self.lstm = nn.LSTM(
            config.d_embed,
            config.hidden,
            num_layers=config.n_layers,
            dropout=config.dropout if config.n_layers > 1 else 0.0,
            batch_first=True,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.vocab_size)

    def forward(
        self,
        tokens: Tensor,
        cache: LSTMState | None = None,
        valid: Tensor | None = None,
        window: int | None = None,  # accepted for a uniform interface; an RNN has no window
    ) -> tuple[Tensor, LSTMState]:
        """Next-token logits for every position, continuing from `cache`.

        Args:
            tokens: (B, T) int64 token ids.
            cache: the state a previous call returned, or None for zeros.
            valid: optional (B, T) bool, False at LEFT-padding positions; the state of a row
                is left untouched over its padding, so each row equals that row alone.

        Returns:
            logits: (B, T, V) (garbage at padded positions).
            state: the state after these tokens.
        """
        b, t = tokens.shape
        if cache is not None and cache.batch_size != b:
            raise ValueError(f"LSTM state holds {cache.batch_size} rows but tokens have {b}")
        hc = None if cache is None else (cache.h, cache.c)
        x = self.embed(tokens)  # (B, T, E)
        if valid is None or bool(valid.all()):
            y, (h, c) = self.lstm(x, hc)  # (B, T, N)
        else:
            y, (h, c) = self._left_padded(x, hc, valid)
        logits = self.head(self.drop(y))  # (B, T, V)
        return logits, LSTMState(h, c, (0 if cache is None else cache.length) + t)

    def _left_padded(self, x: Tensor, hc, valid: Tensor):
        """Run rows with left padding as if the padding were absent: shift each row's real
        tokens to the front, run a packed sequence, and shift the outputs back."""
        t = x.shape[1]
        if (valid[:, 1:].long() < valid[:, :-1].long()).any():
            raise ValueError("valid must be False only at the start of each row (left padding)")
        n_real = valid.sum(1)  # (B,)
        n_pad = t - n_real  # (B,)
        steps = torch.arange(t, device=x.device)  # (T,)
        to_front = (steps[None, :] + n_pad[:, None]) % t  # (B, T): row b reads position t+pad
        xs = x.gather(1, to_front[..., None].expand_as(x))  # (B, T, E), real tokens first
        lengths = n_real.clamp(min=1).cpu()  # pack needs ≥ 1; empty rows are restored below
        packed = pack_padded_sequence(xs, lengths, batch_first=True, enforce_sorted=False)
        out, (h, c) = self.lstm(packed, hc)
        ys, _ = pad_packed_sequence(out, batch_first=True, total_length=t)  # (B, T, N)
        back = (steps[None, :] - n_pad[:, None]) % t  # (B, T): inverse permutation
        y = ys.gather(1, back[..., None].expand_as(ys))  # (B, T, N), padding first again
        empty = n_real == 0  # rows with no real token keep their state
        if bool(empty.any()):
            h0, c0 = hc if hc is not None else (torch.zeros_like(h), torch.zeros_like(c))
            h = torch.where(empty[None, :, None], h0.to(h.dtype), h)  # (L, B, N)
            c = torch.where(empty[None, :, None], c0.to(c.dtype), c)  # (L, B, N)
        return y, (h, c)
