"""TokenPicker: draws the next token of every row from (B, V) logits — greedy, or softmax
sampling after temperature and the logit filters — with one random stream per row."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .filters import apply_filters

# Temperatures whose division keeps every realistic logit (|x| < 1e8) inside float32's range
SAFE_TEMPERATURES = (1e-30, 1e30)
# Entropy-adaptive temperature: the multiples of the temperature tried, coolest first.
WARMER = (1.0, 1.19, 1.41, 1.68, 2.0)


class TokenPicker:
    """Draws one token per row from (B, V) logits: greedy, or filtered softmax sampling.

    Row i draws from its own generator seeded with `seed + i`, so a row's samples do not
    depend on how many other rows share the batch. With `seed` None, torch's global RNG.
    Inverse-CDF sampling by hand because torch.multinomial takes one generator for the whole
    batch, which would tie every row's draws to its neighbours.
    """

    def __init__(
        self,
        batch: int,
        device: torch.device,
        temperature: float,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        suppress_ids: Sequence[int] = (),
        *,
        min_p: float | None = None,
        entropy_floor: float | None = None,
    ) -> None:
        self.temperature, self.top_k, self.top_p = temperature, top_k, top_p
        self.min_p, self.entropy_floor = min_p, entropy_floor
        self.suppress = (
            torch.as_tensor(sorted(set(suppress_ids)), dtype=torch.long, device=device)
            if suppress_ids
            else None
        )
        self.device = device
        self.generators = None
        if seed is not None and temperature > 0:
            self.generators = [
                torch.Generator(device=device).manual_seed(int(seed) + i) for i in range(batch)
            ]

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        """logits (B, V) → tokens (B,) int64."""
        logits = logits.float()
        if self.suppress is not None:
            logits = logits.index_fill(-1, self.suppress, float("-inf"))
        if self.temperature == 0:
            return logits.argmax(dim=-1)
        logits = apply_filters(
            self.scale(logits), top_k=self.top_k, top_p=self.top_p, min_p=self.min_p
        )
        probs = torch.softmax(logits, dim=-1)  # (B, V)
        if self.generators is None:
            u = torch.rand(probs.size(0), device=self.device)  # (B,)
        else:
            u = torch.stack(
                [torch.rand((), generator=g, device=self.device) for g in self.generators]
            )  # (B,)
        # Inverse CDF: the first token whose cumulative mass exceeds u. `right=True` never
        # picks a zero-probability (filtered) token, and u < 1 keeps the index in range.
        cdf = probs.cumsum(dim=-1)  # (B, V)
        target = (u * cdf[:, -1]).unsqueeze(1)  # (B, 1)
        return torch.searchsorted(cdf, target, right=True).squeeze(1).clamp_max(probs.size(1) - 1)

    def scale(self, logits: torch.Tensor) -> torch.Tensor:
        """logits (B, V) / temperature. Where that leaves float32's range (a temperature
        below ~1e-37 divides a logit to ±inf; above ~3e38 the temperature itself is inf),
        the row takes the limit instead: a tiny temperature is greedy (all mass on the most
        likely tokens), a huge one uniform over the tokens allowed."""
        scaled = logits / self.temperatures(logits)
        if SAFE_TEMPERATURES[0] <= self.temperature <= SAFE_TEMPERATURES[1]:
            return scaled  # logits below 1e8 stay finite: no check (and no sync) per step
        allowed = torch.isfinite(logits)  # (B, V): -inf marks a token masked out
        broken = (scaled.isnan() | (scaled.isinf() & allowed)).any(-1, keepdim=True)  # (B, 1)
        if not bool(broken.any()):
            return scaled
        if self.temperature < 1:
            allowed &= logits == logits.max(-1, keepdim=True).values
        limit = torch.zeros_like(logits).masked_fill(~allowed, float("-inf"))  # (B, V)
        return torch.where(broken, limit, scaled)

    def temperatures(self, logits: torch.Tensor) -> torch.Tensor | float:
        """The temperature of each row: `temperature`, or with `entropy_floor` the first of
        temperature × WARMER whose next-token entropy reaches the floor (the last when none
        does) — a choice collapsed onto one or two tokens is opened up, up to twice as warm.
        logits (B, V) → (B, 1), or the plain float without a floor."""
        if self.entropy_floor is None:
            return self.temperature
        steps = self.temperature * torch.tensor(WARMER, device=logits.device)  # (K,)
        scaled = logits[:, None, :] / steps[None, :, None]  # (B, K, V)
        logp = torch.log_softmax(scaled, dim=-1)
        entropy = -(logp.exp() * logp.nan_to_num(neginf=0.0)).sum(-1)  # (B, K) nats
        enough = entropy >= self.entropy_floor
        enough[:, -1] = True
        first = enough.float().argmax(dim=1)  # (B,) the first that reaches the floor
        return steps[first].unsqueeze(1)  # (B, 1)
