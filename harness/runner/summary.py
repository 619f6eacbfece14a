"""Parameter counts and the FLOPs of one training step (torch.utils.flop_counter)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.config.schema import RunConfig
from stackgan.model import StackGANModel
from stackgan.networks import Stage1Generator


def synthetic_batch(cfg: RunConfig, batch_size: int | None = None) -> dict:
    from harness.runner.build import family_section, image_size

    b = batch_size or cfg.data.batch_size
    size = image_size(cfg)
    text_dim = family_section(cfg).text_dim
    gen = torch.Generator().manual_seed(0)
    batch = {"images": {size: torch.rand(b, 3, size, size, generator=gen) * 2 - 1},
             "wrong_images": {size: torch.rand(b, 3, size, size, generator=gen) * 2 - 1},
             "embedding": torch.randn(b, text_dim, generator=gen)}
    if cfg.family == "gawwn":
        corner = torch.rand(b, 2, generator=gen) * 0.4
        batch["box"] = torch.cat([corner, corner + 0.5], 1)
        batch["wrong_box"] = batch["box"].flip(0)
        batch["parts"] = torch.rand(b, cfg.gawwn.num_parts, 3, generator=gen)
        batch["wrong_parts"] = batch["parts"].flip(0)
    return batch


def model_for_summary(cfg: RunConfig, device: str = "cpu"):
    """The run's model with fresh weights on ``device`` (a Stage-II with a fresh Stage-I of the
    right sizes: counts and timings do not need trained weights)."""
    if cfg.family != "stackgan":
        from harness.runner.build import build_model

        return build_model(cfg, torch.device(device))
    stage1 = None
    if cfg.model.stage == 2:
        from dataclasses import replace

        stage1 = Stage1Generator(replace(cfg.model, stage=1))
    return StackGANModel(cfg.model, cfg.optim, seed=cfg.train.seed, device=device,
                         stage1_generator=stage1, wrong_in_batch=cfg.data.wrong_strategy == "in_batch",
                         autocast_bf16=cfg.train.autocast_bf16, channels_last=cfg.train.channels_last)


def count(module: torch.nn.Module) -> dict[str, int]:
    return {"total": sum(p.numel() for p in module.parameters()),
            "trainable": sum(p.numel() for p in module.parameters() if p.requires_grad)}


def train_step_flops(model: StackGANModel, batch: dict) -> int:
    with FlopCounterMode(display=False) as counter:
        model.train_step(batch, 0)
    return counter.get_total_flops()


def summarize(cfg: RunConfig, with_flops: bool = True) -> dict:
    model = model_for_summary(cfg)
    nets = {"generator": count(model.netG), "discriminator": count(model.netD)}
    if getattr(model, "stage1", None) is not None:
        nets["stage1_generator (frozen)"] = count(model.stage1)
        nets["generator"]["with_frozen_stage1"] = nets["generator"]["total"] + count(model.stage1)["total"]
    from harness.runner.build import image_size, variant_of

    stackgan = cfg.family == "stackgan"
    out = {"config": cfg.name, "family": cfg.family, "variant": variant_of(cfg),
           "stage": cfg.model.stage if stackgan else 1,
           "output_size": image_size(cfg), "batch_size": cfg.data.batch_size,
           "networks": nets}
    if with_flops:
        out["train_step_flops"] = train_step_flops(model, synthetic_batch(cfg))
    return out
