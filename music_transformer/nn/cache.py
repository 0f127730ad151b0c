"""The Transformer's KV cache: an explicit value returned by and passed back to `forward`.

Legend: B batch, H heads, S cached positions, T new positions, Dh head dim.

A `KVCache` is a window [start, end) into a growable store of per-layer keys and values.
Appending writes into the store's free tail when this cache is the newest one made from the
store (amortized O(T) per call, no copy of the past); otherwise — the store is full, or an older
cache is being continued a second time (branching) — it copies into a fresh store. So a cache
value never changes once returned, and any cache can be continued any number of times.
`trim(W)` only moves `start`: with relative positions the next logits equal a fresh forward over
those W tokens, with no recomputation.

Hand-written because library caches (Hugging Face's DynamicCache) are mutable module-side
state that grows by concatenation; this one is a value (batch generation stays re-entrant)
with amortized in-place appends and O(1) sliding-window trims.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

MIN_CAPACITY = 64  # smallest store allocated for appends; stores grow ×2 (amortized O(1))


@dataclass
class _Store:
    keys: list[Tensor]  # per layer (B, H, capacity, Dh)
    values: list[Tensor]  # per layer (B, H, capacity, Dh)
    fill: int  # positions [0, fill) hold data; the newest cache ends at `fill`

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]


class KVCache:
    """Keys and values of every layer for the positions seen so far (and their padding).

    Attributes:
        valid: (B, S) bool, False at left-padding positions, or None when nothing is padded.
        seen: (B,) int64, real (non-padding) tokens each row has consumed in total, trimmed or
            not — the absolute position of the row's next token (used by position="absolute").
        tokens, positions: (B, S) int64 token id and position of every cached position, kept
            only for models whose first layer needs them (relative pitch and time), else None.
    """

    def __init__(
        self,
        store: _Store,
        start: int,
        end: int,
        valid: Tensor | None,
        seen: Tensor,
        tokens: Tensor | None = None,
        positions: Tensor | None = None,
    ):
        self._store, self._start, self._end = store, start, end
        self.valid, self.seen = valid, seen
        self.tokens, self.positions = tokens, positions

    @property
    def length(self) -> int:
        """Number of cached positions S."""
        return self._end - self._start

    @property
    def batch_size(self) -> int:
        return self.seen.shape[0]

    @property
    def n_layers(self) -> int:
        return len(self._store.keys)

    def layer(self, i: int) -> tuple[Tensor, Tensor]:
        """Keys and values of layer i, each (B, H, S, Dh) (views, do not modify)."""
        s = self._store
        return s.keys[i][:, :, self._start : self._end], s.values[i][:, :, self._start : self._end]

    def trim(self, window: int) -> KVCache:
        """Keep only the last `window` positions (a sliding window); O(1), no copy."""
        if window < 0:
            raise ValueError(f"cache trim window must be ≥ 0, not {window}")
        if window >= self.length:
            return self
        start = self._end - window

        def keep(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[:, self.length - window :]

        return KVCache(
            self._store, start, self._end, keep(self.valid), self.seen,
            keep(self.tokens), keep(self.positions),
        )  # fmt: skip

    def rows(self, index: Tensor) -> KVCache:
        """A cache holding rows `index` ((B',) int64; a row may repeat) of this one, copied."""

        def pick(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.index_select(0, index)

        s = self._store
        store = _Store([pick(k) for k in s.keys], [pick(v) for v in s.values], s.fill)
        return KVCache(
            store, self._start, self._end, pick(self.valid), pick(self.seen),
            pick(self.tokens), pick(self.positions),
        )  # fmt: skip

    def first(self, k: int) -> KVCache:
        """Each row's first k real (non-padding) positions, right-aligned (a row with fewer
        is left-padded): the "attention sinks" a sliding window may keep. A copy."""
        start = (~_all_valid(self)).sum(1)  # (B,) padding columns before each row's first
        count = torch.clamp(self.length - start, max=k)  # (B,)
        return self._columns(start[:, None] + _shifts(k, k - count), k - count)

    def _columns(self, cols: Tensor, pad: Tensor) -> KVCache:
        """A copy of columns `cols` (B, k) of each row, the first `pad` (B,) of them masked."""
        k = cols.shape[1]
        cols = cols.clamp(min=0, max=max(self.length - 1, 0))

        def take(t: Tensor | None, dim: int) -> Tensor | None:
            if t is None:
                return None
            index = cols.view(cols.shape[0], *([1] * (dim - 1)), k, *([1] * (t.dim() - dim - 1)))
            return t.gather(dim, index.expand(*t.shape[:dim], k, *t.shape[dim + 1 :]))

        keys = [take(self.layer(i)[0], 2) for i in range(self.n_layers)]  # (B, H, k, Dh)
        values = [take(self.layer(i)[1], 2) for i in range(self.n_layers)]
        real = torch.arange(k, device=cols.device)[None, :] >= pad[:, None]  # (B, k)
        if self.valid is not None:
            real &= take(self.valid, 1)
        valid = None if bool(real.all()) else real
        store = _Store(keys, values, fill=k)  # type: ignore[arg-type]
        return KVCache(store, 0, k, valid, self.seen, take(self.tokens, 1), take(self.positions, 1))

    def slide(self, window: int, hop: int, sinks: KVCache) -> KVCache:
        """A sliding window that keeps each row's first positions ("attention sinks"): every
        row holding `window` positions becomes its `sinks` (from `first`) followed by its last
        `window - hop - sinks.length` positions; the other rows stay as they are. So a row's
        context depends only on its own history — when it slides, by how much — never on
        the other rows' lengths, and a slide (a copy, O(window)) is needed once per `hop`
        tokens of a row. Each row's real positions are a suffix of its columns (left padding);
        the result is right-aligned and left-padded the same way. The sinks sit right before
        the recent positions, at distances window - k … from the newest query: their true
        distances are larger, and clipped to the same farthest relative embedding once the
        window spans the model's table (as with the bundled models)."""
        k, width = sinks.length, self.length
        keep = window - hop - k  # recent positions a sliding row keeps
        if keep < 1:
            raise ValueError(f"window {window} leaves no room past {k} sinks and a hop of {hop}")
        count = _all_valid(self).sum(1)  # (B,) each row's real positions
        own = _all_valid(sinks).sum(1)  # (B,) each row's sinks
        full = count >= window
        length = torch.where(full, own + keep, count)  # (B,) each row's new context
        out = int(length.max())
        # (B, out) column of each new position in [sinks | this cache] (k + S columns),
        # right-aligned: a full row takes its last `own` sinks then its last `keep` columns
        j = torch.arange(out, device=count.device)[None, :] - (out - length)[:, None]
        from_sinks = full[:, None] & (j < own[:, None])
        cols = torch.where(from_sinks, k - own[:, None] + j, k + width - length[:, None] + j)
        cols = cols.clamp(min=0, max=k + width - 1)
        real = j >= 0

        def take(a: Tensor | None, b: Tensor | None, dim: int, room: int) -> Tensor | None:
            if a is None or b is None:
                return None
            both = torch.cat([a, b], dim=dim)
            shape = [cols.shape[0]] + [1] * (both.dim() - 1)
            shape[dim] = out
            index = cols.view(shape).expand(*both.shape[:dim], out, *both.shape[dim + 1 :])
            picked = both.gather(dim, index)
            if not room:
                return picked
            buf = picked.new_empty(*picked.shape[:dim], out + room, *picked.shape[dim + 1 :])
            buf.narrow(dim, 0, out).copy_(picked)  # room to append in place until the next slide
            return buf

        keys, values = [], []
        for i in range(self.n_layers):
            for kept, old, new in zip((keys, values), sinks.layer(i), self.layer(i)):
                kept.append(take(old, new, 2, MIN_CAPACITY))
        extra = [
            take(a, b, 1, 0)
            for a, b in ((sinks.tokens, self.tokens), (sinks.positions, self.positions))
        ]
        valid = None if bool(real.all()) else real
        store = _Store(keys, values, fill=out)  # type: ignore[arg-type]
        return KVCache(store, 0, out, valid, self.seen, *extra)

    def replace_rows(self, rows: Tensor, donor: KVCache) -> KVCache:
        """This cache with rows `rows` (K,) replaced by the K rows of `donor` (a backtracked
        row re-fed from its snapshot). Both are right-aligned — every row's newest position
        stays in the last column, so relative distances hold — and the result, max(S, S')
        wide, is left-padded with masked positions. A copy: neither input changes."""
        width = max(self.length, donor.length)
        keys, values = [], []
        for i in range(self.n_layers):
            for out, mine, theirs in zip((keys, values), self.layer(i), donor.layer(i)):
                merged = _widen(mine, width, 2, 0.0)  # (B, H, S, Dh)
                merged[rows] = _widen(theirs, width, 2, 0.0).to(merged.dtype)
                out.append(merged)
        valid = None
        if self.valid is not None or donor.valid is not None or self.length != donor.length:
            valid = _widen(_all_valid(self), width, 1, False)  # (B, S)
            valid[rows] = _widen(_all_valid(donor), width, 1, False)
        seen = self.seen.clone()
        seen[rows] = donor.seen
        extra = []
        for mine, theirs in ((self.tokens, donor.tokens), (self.positions, donor.positions)):
            if mine is not None and theirs is not None:
                mine = _widen(mine, width, 1, 0)
                mine[rows] = _widen(theirs, width, 1, 0)
            extra.append(mine)
        return KVCache(_Store(keys, values, fill=width), 0, width, valid, seen, *extra)

    def __repr__(self) -> str:
        return f"KVCache(batch={self.batch_size}, length={self.length}, layers={self.n_layers})"


class CacheWriter:
    """Collects one forward call's new keys/values, layer by layer, into the next KVCache."""

    def __init__(self, cache: KVCache | None, n_layers: int, t_new: int):
        self.cache, self.t_new = cache, t_new
        self.keys: list[Tensor | None] = [None] * n_layers
        self.values: list[Tensor | None] = [None] * n_layers
        self.store: _Store | None = None  # the store being written in place, if any
        self.start = 0

    def append(self, i: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add layer i's new keys/values, each (B, H, T, Dh); return past + new (B, H, S+T, Dh)."""
        if self.cache is None or self.cache.length == 0:
            self.keys[i], self.values[i] = k, v
            return k, v
        if i == 0:
            self.store, self.start = self._choose_store(k)
        past = self.cache.length
        if self.store is None:  # autograd must see a functional op: concatenate
            pk, pv = self.cache.layer(i)
            k, v = torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2)  # (B, H, S+T, Dh)
            self.keys[i], self.values[i] = k, v
            return k, v
        end = self.start + past + self.t_new
        keys, values = self.store.keys[i], self.store.values[i]
        keys[:, :, end - self.t_new : end] = k
        values[:, :, end - self.t_new : end] = v
        return keys[:, :, self.start : end], values[:, :, self.start : end]

    def _choose_store(self, k: Tensor) -> tuple[_Store | None, int]:
        """Store to write into and where the window starts in it (None: concatenate)."""
        cache = self.cache
        if torch.is_grad_enabled() and k.requires_grad:
            return None, 0
        old = cache._store
        fits = cache._end + self.t_new <= old.capacity
        same = old.keys[0].dtype == k.dtype and old.keys[0].device == k.device
        if old.fill == cache._end and fits and same:
            return old, cache._start  # we hold the newest cache: append in place
        need = cache.length + self.t_new
        capacity = max(MIN_CAPACITY, 2 * need)
        keys, values = [], []
        for i in range(cache.n_layers):
            for out, past in zip((keys, values), cache.layer(i)):
                b, h, _, dh = past.shape
                buf = torch.empty(b, h, capacity, dh, dtype=k.dtype, device=k.device)
                buf[:, :, : cache.length] = past  # (B, H, S, Dh), converts dtype if needed
                out.append(buf)
        return _Store(keys, values, fill=0), 0

    def finish(
        self,
        new_valid: Tensor | None,
        new_seen: Tensor,
        tokens: Tensor | None = None,
        positions: Tensor | None = None,
    ) -> KVCache:
        """The cache after this call. `new_valid`: (B, S+T) bool or None; `tokens` and
        `positions`: (B, S+T) int64, kept when given."""
        total = (0 if self.cache is None else self.cache.length) + self.t_new
        if self.store is not None:
            end = self.start + total
            self.store.fill = end
            return KVCache(self.store, self.start, end, new_valid, new_seen, tokens, positions)
        store = _Store(list(self.keys), list(self.values), fill=total)  # type: ignore[arg-type]
        return KVCache(store, 0, total, new_valid, new_seen, tokens, positions)


def _widen(t: Tensor, width: int, dim: int, fill: float | bool) -> Tensor:
    """A copy of `t` left-padded with `fill` along `dim` to `width` positions."""
    shape = list(t.shape)
    pad = width - shape[dim]
    shape[dim] = width
    out = torch.full(shape, fill, dtype=t.dtype, device=t.device)
    out.narrow(dim, pad, t.shape[dim]).copy_(t)
    return out


def _all_valid(cache: KVCache) -> Tensor:
    """(B, S) bool: the cache's padding mask, all True when it has none."""
    if cache.valid is not None:
        return cache.valid
    return torch.ones(cache.batch_size, cache.length, dtype=torch.bool, device=cache.seen.device)


def _shifts(k: int, pad: Tensor) -> Tensor:
    """(B, k) column offsets 0 … k-1 moved right by `pad` (B,): right-aligned blocks."""
    return torch.arange(k, device=pad.device)[None, :] - pad[:, None]
