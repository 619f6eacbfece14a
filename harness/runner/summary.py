"""Parameter counts and the FLOPs of one training step (torch.utils.flop_counter)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.config.schema import RunConfig
from harness.families import family_of


def synthetic_batch(cfg: RunConfig, batch_size: int | None = None) -> dict:
    family = family_of(cfg)
    b = batch_size or cfg.data.batch_size
    size = family.image_size(cfg)
    gen = torch.Generator().manual_seed(0)
    batch = {"images": {size: torch.rand(b, 3, size, size, generator=gen) * 2 - 1},
             "wrong_images": {size: torch.rand(b, 3, size, size, generator=gen) * 2 - 1},
             "embedding": torch.randn(b, family.text_dim(cfg), generator=gen)}
    batch.update(family.synthetic_conditions(cfg, b, gen))
    return batch


def model_for_summary(cfg: RunConfig, device: str = "cpu"):
    """The run's model with fresh weights on ``device`` (a Stage-II with a fresh Stage-I of the
    right sizes: counts and timings do not need trained weights)."""
    return family_of(cfg).build_untrained(cfg, torch.device(device))


def count(module: torch.nn.Module) -> dict[str, int]:
    return {"total": sum(p.numel() for p in module.parameters()),
            "trainable": sum(p.numel() for p in module.parameters() if p.requires_grad)}


def train_step_flops(model, batch: dict) -> int:
    with FlopCounterMode(display=False) as counter:
        model.train_step(batch, 0)
    return counter.get_total_flops()


def summarize(cfg: RunConfig, with_flops: bool = True) -> dict:
    family, model = family_of(cfg), model_for_summary(cfg)
    networks = model.networks()
    nets = {"generator": count(networks["netG"]), "discriminator": count(networks["netD"])}
    if getattr(model, "stage1", None) is not None:
        nets["stage1_generator (frozen)"] = count(model.stage1)
        nets["generator"]["with_frozen_stage1"] = nets["generator"]["total"] + count(model.stage1)["total"]
    out = {"config": cfg.name, "family": cfg.family, "variant": family.variant(cfg),
           "stage": family.stage(cfg), "output_size": family.image_size(cfg),
           "batch_size": cfg.data.batch_size, "networks": nets}
    if with_flops:
        out["train_step_flops"] = train_step_flops(model, synthetic_batch(cfg))
    return out
