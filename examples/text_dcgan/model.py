"""A conditional GAN of a user's own, as the harness runs it: a DCGAN whose generator and
discriminator see a 128-d projection of the caption embedding, concatenated (Mirza & Osindero
style conditioning); with ``matching_aware: true`` it is the textbook GAN-CLS (Reed et al. 2016's
matching-aware discriminator: the real image with its caption scores 1, the real image of another
class with that caption and the generated image score 0, half weight each), the yardstick
docs/captions.md trains beside our faithful GAN-INT-CLS. It implements harness/core/interface.py
through ``OneStageModel`` (optimisers, schedules, state, noise) and adds its networks,
``train_step`` and ``generate``. A config names it as
``family: examples/text_dcgan/model.py:TextDCGAN`` and gives its hyperparameters in ``custom:``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from baselines.common import OneStageModel
from harness.core import OptimConfig, step_seed
from stackgan.losses import bce_fake, bce_real


@dataclass
class TextDCGANConfig:
    z_dim: int = 100
    text_dim: int = 1024
    t_dim: int = 128
    gf_dim: int = 64
    df_dim: int = 64
    image_size: int = 64
    matching_aware: bool = False  # needs data.wrong_strategy other than none
    variant: str = "dcgan-concat"

    def validate(self) -> list[str]:
        return [] if self.image_size in (32, 64) else [f"image_size {self.image_size}: 32 or 64"]


class Generator(nn.Module):
    def __init__(self, c: TextDCGANConfig):
        super().__init__()
        g, n_up = c.gf_dim, 3 if c.image_size == 32 else 4
        self.text = nn.Sequential(nn.Linear(c.text_dim, c.t_dim), nn.LeakyReLU(0.2))
        chans = [g * 2 ** (n_up - 1 - k) for k in range(n_up)]
        layers = [nn.ConvTranspose2d(c.z_dim + c.t_dim, chans[0], 4, 1, 0, bias=False),
                  nn.BatchNorm2d(chans[0]), nn.ReLU(True)]
        for a, b in zip(chans, chans[1:], strict=False):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        self.net = nn.Sequential(*layers, nn.ConvTranspose2d(chans[-1], 3, 4, 2, 1), nn.Tanh())

    def forward(self, embedding, noise):
        return self.net(torch.cat([noise, self.text(embedding)], 1)[:, :, None, None])


class Discriminator(nn.Module):
    def __init__(self, c: TextDCGANConfig):
        super().__init__()
        d, n_down = c.df_dim, 3 if c.image_size == 32 else 4
        layers, cin = [], 3
        for k in range(n_down):
            layers += [nn.Conv2d(cin, d * 2 ** k, 4, 2, 1, bias=False)]
            layers += [nn.BatchNorm2d(d * 2 ** k)] if k else []
            layers += [nn.LeakyReLU(0.2, True)]
            cin = d * 2 ** k
        self.image = nn.Sequential(*layers)
        self.text = nn.Sequential(nn.Linear(c.text_dim, c.t_dim), nn.LeakyReLU(0.2))
        self.out = nn.Conv2d(cin + c.t_dim, 1, 4, 1, 0)

    def forward(self, images, embedding):
        h = self.image(images)
        t = self.text(embedding)[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])
        return self.out(torch.cat([h, t], 1)).view(-1)


class TextDCGAN(OneStageModel):
    Config = TextDCGANConfig

    def __init__(self, cfg: TextDCGANConfig, optim: OptimConfig, seed: int = 0, device="cpu"):
        self.cfg, self.image_size = cfg, cfg.image_size
        super().__init__(Generator(cfg), Discriminator(cfg), cfg.z_dim, optim, seed, device)

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        real = batch["images"][self.image_size].to(self.device)
        emb = batch["embedding"].to(self.device)
        torch.manual_seed(step_seed(self.seed, step, self.micro_offset))  # exact resumes
        fake = self.netG(emb, torch.randn(len(emb), self.cfg.z_dim, device=self.device))
        self.optD.zero_grad(set_to_none=True)
        real_logits, fake_logits = self.netD(real, emb), self.netD(fake.detach(), emb)
        if self.cfg.matching_aware:
            if "wrong_images" not in batch:
                raise ValueError("custom.matching_aware needs wrong images: set data.wrong_strategy "
                                 "(other_class), not none")
            wrong_logits = self.netD(batch["wrong_images"][self.image_size].to(self.device), emb)
            loss_d = bce_real(real_logits) + (bce_fake(wrong_logits) + bce_fake(fake_logits)) / 2
        else:
            loss_d = bce_real(real_logits) + bce_fake(fake_logits)
        grad_d = self.update(self.netD, self.optD, loss_d)
        self.optG.zero_grad(set_to_none=True)
        loss_g = bce_real(self.netD(fake, emb))
        grad_g = self.update(self.netG, self.optG, loss_g)
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(),
                "d_real": torch.sigmoid(real_logits).mean().item(),
                "d_fake": torch.sigmoid(fake_logits).mean().item(),
                "grad_norm_d": grad_d, "grad_norm_g": grad_g, **self.learning_rates()}

    @torch.no_grad()
    def generate(self, embedding, noise, *unused) -> dict[str, torch.Tensor]:
        return {"stage1": self.netG(embedding.to(self.device), noise.to(self.device))}
