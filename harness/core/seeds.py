"""Seeds derived from (run seed, step, micro-batch).

Randomness inside a step is drawn after seeding torch from these: a step's result does not depend
on what ran before it, which makes resumed runs bit-identical without replaying RNG history and
lets N micro-batches in one process reproduce N data-parallel ranks. The sampler and the
validation seed each image's noise the same way, from (seed, image index, copy).
"""

from __future__ import annotations


def step_seed(seed: int, step: int, micro: int) -> int:
    """A 63-bit seed for one micro-batch of one step (splitmix64 of the three)."""
    x = (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9 + micro * 0x94D049BB133111EB)
    x &= (1 << 64) - 1
    x ^= x >> 31
    x = (x * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    x ^= x >> 27
    return x & ((1 << 63) - 1)
