"""One batch of images from per-image noise seeds: the loop the sampler, the validation and the
diagnosis scripts share, so that an image depends on its own seed and not on its batch."""

from __future__ import annotations

import torch


@torch.no_grad()
def generate_batch(model, embeddings: torch.Tensor, seeds: list[int],
                   conditions: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """``model.generate`` for ``embeddings`` (one row per image), each image's noise drawn by
    ``model.sample_noise(1, ·)`` from a generator seeded with its entry of ``seeds``."""
    if len(seeds) != len(embeddings):
        raise ValueError(f"{len(seeds)} seeds for {len(embeddings)} embeddings")
    noises = [model.sample_noise(1, torch.Generator().manual_seed(seed)) for seed in seeds]
    streams = [torch.cat([noise[name] for noise in noises]) for name in noises[0]]
    return model.generate(embeddings, *streams, **(conditions or {}))
