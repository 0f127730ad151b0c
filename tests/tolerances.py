"""How far apart two computations of the same numbers may be, from the arithmetic alone.

Each fp32 operation rounds to a relative error of at most u = 2^-24 (bf16: 2^-8). A sum of n
terms is then off by at most n·u·Σ|terms| (the classic bound for recursive summation; any
order or blocking of the additions obeys it), and in practice, its rounding errors being of
random sign, by about √n·u·Σ|terms|. Two computations of one value that group their sums
differently — a cached step against a full forward, query chunks against one pass, a banded
mask against a full one, or the same code on AVX2 and AVX-512 kernels of another vector width
— each carry that error, so they differ by up to twice it. A tolerance sized so is a property
of the sizes involved, not of the machine a test was written on.

    atol = rounding_bound(64, 8, sums=13)   # logits |z| ≤ 8 after 13 chained sums of ≤ 64 terms
"""

from __future__ import annotations

import math

FP32 = 2.0**-24  # unit roundoff of float32 (24-bit significand)
BF16 = 2.0**-8  # bfloat16 (8-bit significand), products accumulated in fp32


def rounding_bound(
    terms: int, scale: float, *, sums: int = 1, u: float = FP32, worst: bool = True
) -> float:
    """Distance two computations of one value may have when each of `sums` chained sums of
    at most `terms` terms (their magnitudes adding up to at most `scale`) is added in another
    order: 2·sums·terms·u·scale in the worst case; with `worst=False` the random-sign
    estimate 2·sums·√terms·u·scale, for a mean over many values whose errors average out."""
    per_sum = terms if worst else math.sqrt(terms)
    return 2 * sums * per_sum * u * scale


def bf16_bound(scale: float, *, sums: int) -> float:
    """Distance of a bf16-autocast result from fp32: each of `sums` chained matmuls rounds
    both factors of its products to bf16 (relative error ≤ 2u each product, accumulated in
    fp32, so ≤ 2u·scale per sum), and the errors of successive sums, of random sign, add
    as √sums: 2·√sums·2u·scale with u = 2^-8."""
    return 2 * math.sqrt(sums) * 2 * BF16 * scale
