"""The Music Transformer: a decoder-only, pre-LayerNorm Transformer with relative self-attention.

Legend: B batch, T new tokens, S cached positions, D d_model, H heads, Dh head dim, V vocab.

`forward(tokens, cache=None, valid=None) -> (logits, cache)`; the cache is an explicit value
(`cache.KVCache`), so several generations can run from one model at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .attention import chunked_relative_attention, relative_attention
from .attention_kernels import auto_chunk
from .cache import CacheWriter, KVCache
from .config import ModelConfig


@dataclass
class _Pass:
    """What every layer of one forward call shares."""

    writer: CacheWriter  # collects each layer's new keys/values into the next cache
    key_valid: Tensor | None  # (B, S+T) bool, False at padded keys; None when none is padded
    window: int | None  # attend only to the last W positions (None: all)
    key_tokens: Tensor | None = None  # (B, S+T) ids of every key (relative pitch and time)
    key_positions: Tensor | None = None  # (B, S+T) their positions


class SelfAttention(nn.Module):
    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.layer = layer  # index of this block: where its keys/values go in the cache
        self.n_heads, self.head_dim = config.n_heads, config.head_dim
        self.chunk = config.attn_chunk
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.rel_emb: nn.Parameter | None = None
        if config.position == "relative":
            r, dh = config.max_rel_dist, config.head_dim
            shape = (r, dh) if config.rel_shared_heads else (config.n_heads, r, dh)
            self.rel_emb = nn.Parameter(torch.randn(*shape) * dh**-0.5)
        self.pitch_time: PitchTime | None = None
        if config.rel_pitch_time and layer == 0:
            self.pitch_time = PitchTime(config)

    def forward(self, x: Tensor, p: _Pass) -> Tensor:
        """x: (B, T, D). Returns (B, T, D)."""
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.n_heads, self.head_dim)  # (B, T, 3, H, Dh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, H, T, Dh)
        k, v = p.writer.append(self.layer, k, v)  # (B, H, S+T, Dh)
        mask = {"key_valid": p.key_valid, "window": p.window}
        extra_fn = None
        if self.pitch_time is not None:  # O(T·(S+T)) extra logits, made chunk by chunk

            def extra_fn(q_chunk: Tensor, kv_end: int) -> Tensor:  # (B, H, C, kv_end)
                keys = (p.key_tokens[:, :kv_end], p.key_positions[:, :kv_end])
                return self.pitch_time(q_chunk * self.head_dim**-0.5, *keys)

        chunk = self.chunk or auto_chunk(b, self.n_heads, k.shape[2])
        if t > chunk:
            y = chunked_relative_attention(q, k, v, self.rel_emb, chunk, extra_fn=extra_fn, **mask)
        else:
            extra = extra_fn(q, k.shape[2]) if extra_fn is not None else None
            y = relative_attention(q, k, v, self.rel_emb, extra=extra, **mask)
        y = y.transpose(1, 2).reshape(b, t, d)  # (B, T, D)
        return self.proj(y)


class PitchTime(nn.Module):
    """Relative pitch and relative time-step logits of the first layer (the paper's JSB
    Table 2, last row): q_i · (P[pitch_i − pitch_j] + E[step_i − step_j]) for every
    query/key pair, with one pitch row for pairs where either token is not a pitch, and time
    distances clipped to rel_pitch_time − 1 steps. A token's step is (position − 1) // frame."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        h, dh = config.n_heads, config.head_dim
        self.first, self.count, self.frame = config.pitch_token0, config.pitch_tokens, config.frame
        # rows: intervals −(count−1) … count−1, then "no pitch"
        self.pitch_emb = nn.Parameter(torch.randn(h, 2 * self.count, dh) * dh**-0.5)
        self.time_emb = nn.Parameter(torch.randn(h, config.rel_pitch_time, dh) * dh**-0.5)

    def forward(self, q_scaled: Tensor, tokens: Tensor, positions: Tensor) -> Tensor:
        """q_scaled: (B, H, T, Dh) queries × 1/√Dh, the last T of the keys; tokens and
        positions: (B, S+T) of the keys. Returns (B, H, T, S+T) logits."""
        b, h, t, _ = q_scaled.shape
        index = tokens - self.first  # (B, K) pitch index, valid in [0, count)
        is_pitch = (index >= 0) & (index < self.count)
        interval = index[:, -t:, None] - index[:, None, :] + (self.count - 1)  # (B, T, K)
        both = is_pitch[:, -t:, None] & is_pitch[:, None, :]
        pitch_row = torch.where(both, interval, 2 * self.count - 1)  # (B, T, K)
        step = torch.div(positions - 1, self.frame, rounding_mode="floor")  # (B, K)
        apart = step[:, -t:, None] - step[:, None, :]  # (B, T, K), < 0 only for future keys
        time_row = apart.clamp(0, self.time_emb.shape[1] - 1)
        by_pitch = q_scaled @ self.pitch_emb.transpose(-1, -2).to(q_scaled.dtype)  # (B,H,T,2P)
        by_time = q_scaled @ self.time_emb.transpose(-1, -2).to(q_scaled.dtype)  # (B,H,T,R_t)
        k = tokens.shape[1]
        return by_pitch.gather(-1, pitch_row[:, None].expand(b, h, t, k)) + by_time.gather(
            -1, time_row[:, None].expand(b, h, t, k)
        )  # (B, H, T, K)


class Block(nn.Module):
    """Pre-LN decoder block: x + drop(attn(ln(x))), then x + drop(ff(ln(x)))."""

    def __init__(self, config: ModelConfig, layer: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(config.d_model)
        self.attn = SelfAttention(config, layer)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.ff = nn.Sequential(
            nn.Linear(config.d_model, config.d_ff),
            nn.ReLU(),  # as in the paper (tensor2tensor's default)
            nn.Linear(config.d_ff, config.d_model),
        )
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, p: _Pass) -> Tensor:
        x = x + self.drop(self.attn(self.ln1(x), p))
        return x + self.drop(self.ff(self.ln2(x)))


class MusicTransformer(nn.Module):
    """Decoder-only Transformer over token ids; relative (default) or absolute positions."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.token_dims)
        # voice labels: one row per voice of a time step (`frame` tokens), learned
        self.voice_emb = None
        if config.voice_dims:
            self.voice_emb = nn.Embedding(config.frame, config.voice_dims)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self._init_weights()
        if config.tie_embeddings:
            self.head.weight = self.embed.weight

    def _init_weights(self) -> None:
        std = 0.02
        for name, p in self.named_parameters():
            if name.endswith(("rel_emb", "pitch_emb", "time_emb")) or p.dim() < 2:
                continue  # tables keep their own init; LayerNorm and biases keep torch's
            # residual-branch outputs are scaled down with depth (GPT-2) so the sum stays O(1)
            deep = name.endswith(("proj.weight", "ff.2.weight"))
            nn.init.normal_(p, 0.0, std / math.sqrt(2 * self.config.n_layers) if deep else std)
        for name, p in self.named_parameters():
            if p.dim() == 1 and name.endswith("bias"):
                nn.init.zeros_(p)
        # Untied: embeddings are scaled by √D in forward, so rows of norm ~1 give unit-variance
        # inputs. Tied: small rows (GPT-2's 0.02), else LN(x)·Eᵀ starts out predicting each
        # position's own input token with a ~√D logit margin (initial loss ~15 nats). Scaling
        # the output down instead made the logits too flat to train: 3.6 vs 1.9 nats after 200
        # steps on the Bach chorales (untied: 1.7).
        std = 0.02 if self.config.tie_embeddings else self.config.d_model**-0.5
        nn.init.normal_(self.embed.weight, 0.0, std)
        if self.voice_emb is not None:  # unit-variance channels, like the sinusoids beside it
            nn.init.normal_(self.voice_emb.weight, 0.0, 1.0)

    def forward(
        self,
        tokens: Tensor,
        cache: KVCache | None = None,
        valid: Tensor | None = None,
        window: int | None = None,
    ) -> tuple[Tensor, KVCache]:
        """Next-token logits for every position, continuing from `cache`.

        Args:
            tokens: (B, T) int64 token ids, T ≥ 1.
            cache: what a previous call returned (the context), or None to start fresh.
            valid: optional (B, T) bool, False at left-padding positions of rows shorter than
                others. Padded positions are never attended to; each row's logits equal that
                row alone, unpadded. The returned cache remembers the padding.
            window: optional W: every layer attends only to the last W positions (sliding-
                window attention). Equals decoding token by token with the cache trimmed to
                W-1 before each step — how the sampler runs past its window — in one pass.

        Returns:
            logits: (B, T, V), in the autocast dtype under autocast, else fp32.
            cache: the context including these tokens; `cache.trim(W)` keeps the last W.
        """
        b, t = tokens.shape
        if cache is not None and cache.batch_size != b:
            raise ValueError(f"cache holds {cache.batch_size} rows but tokens have {b}")
        if valid is not None and valid.shape != tokens.shape:
            raise ValueError(f"valid has shape {tuple(valid.shape)}, tokens {tuple(tokens.shape)}")
        key_valid = _merge_valid(cache, valid, b, t, tokens.device)  # (B, S+T) or None
        seen = cache.seen if cache is not None else tokens.new_zeros(b)
        n_new = valid.sum(1) if valid is not None else t

        positions = _positions(seen, valid, b, t)  # (B, T)
        x = self.drop(self._inputs(tokens, positions))  # (B, T, D)
        p = _Pass(CacheWriter(cache, len(self.blocks), t), key_valid, window)
        if self.config.rel_pitch_time:  # the first layer needs every key's token and position
            p.key_tokens, p.key_positions = tokens, positions
            if cache is not None and cache.length:
                p.key_tokens = torch.cat([cache.tokens, tokens], dim=1)  # (B, S+T)
                p.key_positions = torch.cat([cache.positions, positions], dim=1)
        for block in self.blocks:
            if self.config.grad_checkpoint and torch.is_grad_enabled() and self.training:
                x = checkpoint(block, x, p, use_reentrant=False)
            else:
                x = block(x, p)
        logits = self.head(self.norm(x))  # (B, T, V)
        return logits, p.writer.finish(key_valid, seen + n_new, p.key_tokens, p.key_positions)

    def _inputs(self, tokens: Tensor, positions: Tensor) -> Tensor:
        """(B, T) tokens and their positions → (B, T, D) block inputs: the scaled token
        embedding, then (concatenated) sinusoids of the position and the voice label; the
        absolute baseline adds its sinusoids instead when none are concatenated. Positions
        count from the first token fed (the sampler and the data feed windows that start one
        token before a time step, so for a grid preset the voice is (position − 1) mod
        frame)."""
        c = self.config
        x = self.embed(tokens) * math.sqrt(c.d_model)  # (B, T, token_dims)
        parts = [x]
        if c.concat_positions:
            parts.append(sinusoids(positions, c.concat_positions).to(x.dtype))
        if self.voice_emb is not None:
            parts.append(self.voice_emb((positions - 1) % c.frame).to(x.dtype))
        if len(parts) > 1:
            x = torch.cat(parts, dim=-1)  # (B, T, D)
        if c.position == "absolute" and not c.concat_positions:  # the paper's baseline adds
            x = x + sinusoids(positions, c.d_model).to(x.dtype)
        return x


def _merge_valid(cache: KVCache | None, valid: Tensor | None, b: int, t: int, device):
    """Key padding mask over cached + new positions, (B, S+T) bool, or None if none padded."""
    past = cache.valid if cache is not None else None
    if valid is not None and past is None and bool(valid.all()):
        valid = None
    if valid is None and past is None:
        return None
    s = cache.length if cache is not None else 0
    if past is None:
        past = torch.ones(b, s, dtype=torch.bool, device=device)
    if valid is None:
        valid = torch.ones(b, t, dtype=torch.bool, device=device)
    return torch.cat([past, valid.to(device=device, dtype=torch.bool)], dim=1)


def _positions(seen: Tensor, valid: Tensor | None, b: int, t: int) -> Tensor:
    """(B, T) absolute position of each new token, counted from its row's first real token."""
    if valid is None:
        return seen[:, None] + torch.arange(t, device=seen.device)  # (B, T)
    return (seen[:, None] + valid.long().cumsum(1) - 1).clamp(min=0)  # (B, T)


def sinusoids(positions: Tensor, d: int) -> Tensor:
    """(…,) int positions → (…, d) fp32 sinusoidal encodings (Vaswani et al. 2017), defined
    for every position, so the absolute baseline can run past its training length (badly)."""
    half = d // 2
    freq = torch.exp(
        torch.arange(half, device=positions.device, dtype=torch.float32)
        * (-math.log(10000.0) / max(half - 1, 1))
    )  # (d/2,)
    angle = positions.float()[..., None] * freq  # (…, d/2)
    enc = torch.cat([angle.sin(), angle.cos()], dim=-1)  # (…, 2·(d/2))
    return F.pad(enc, (0, d - 2 * half))  # (…, d)
