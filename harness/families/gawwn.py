"""GAWWN, conditioned on a bounding box or on keypoints: the ``gawwn`` section."""

from __future__ import annotations

import torch

from harness.families.base import Family


class GawwnFamily(Family):
    name = "gawwn"

    def section(self, cfg):
        return cfg.gawwn

    def config_errors(self, cfg) -> list[str]:
        errors = super().config_errors(cfg)
        if cfg.data.wrong_strategy not in ("shuffled_text", "other_class"):
            errors.append(f"data.wrong_strategy: GAWWN takes shuffled_text (the Lua code) or "
                          f"other_class, not {cfg.data.wrong_strategy!r}")
        return errors

    def variant(self, cfg) -> str:
        return cfg.gawwn.conditioning

    def conditions(self, cfg) -> tuple[str, ...]:
        return ("box",) if cfg.gawwn.conditioning == "bbox" else ("parts",)

    def build(self, cfg, device, stage1_state=None):
        from baselines.gawwn import GawwnModel

        return GawwnModel(cfg.gawwn, cfg.optim, seed=cfg.train.seed, device=device,
                          wrong_pairs=cfg.data.wrong_strategy, autocast_bf16=cfg.train.autocast_bf16,
                          channels_last=cfg.train.channels_last)

    def synthetic_conditions(self, cfg, batch: int, generator: torch.Generator) -> dict:
        corner = torch.rand(batch, 2, generator=generator) * 0.4
        box = torch.cat([corner, corner + 0.5], 1)
        parts = torch.rand(batch, cfg.gawwn.num_parts, 3, generator=generator)
        return {"box": box, "wrong_box": box.flip(0), "parts": parts, "wrong_parts": parts.flip(0)}
