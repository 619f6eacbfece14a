"""GAN-INT-CLS and its GAN / GAN-CLS / GAN-INT ablations: the ``baseline`` section."""

from __future__ import annotations

from harness.families.base import Family


class GanIntClsFamily(Family):
    name = "gan_int_cls"

    def section(self, cfg):
        return cfg.baseline

    def variant(self, cfg) -> str:
        return cfg.baseline.variant

    def build(self, cfg, device, stage1_state=None):
        from baselines.gan_int_cls import GanIntClsModel

        return GanIntClsModel(cfg.baseline, cfg.optim, seed=cfg.train.seed, device=device,
                             autocast_bf16=cfg.train.autocast_bf16,
                             channels_last=cfg.train.channels_last)
