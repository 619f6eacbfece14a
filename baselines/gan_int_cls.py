"""GAN-INT-CLS (Reed et al., ICML 2016) and its variants GAN, GAN-CLS, GAN-INT (REFERENCE §4).

64×64. G: text FC 1024 -> 128 + LeakyReLU, concatenated with z, FC to 4×4×(8·gf) + BN, a
bottleneck residual unit, transposed convolutions 8gf -> 4gf (+ a residual unit) -> 2gf -> gf -> 3
(the TF Stage-I G with transposed convolutions). D: the TF Stage-I D image encoder, text head
FC -> BN1d -> LeakyReLU, tiled 4×4, 1×1 joint conv, 4×4 conv to one logit.
- CLS (matching-aware D): D = BCE(real, 1) + ½[BCE(wrong image with right text, 0) + BCE(fake, 0)];
  without it D = BCE(real, 1) + BCE(fake, 0).
- INT: G's batch gains B/2 extra conditions β·t_i + (1 − β)·t_{i−1} (β = 0.5), labelled real for
  G only.
The model object has StackGAN's interface (``baselines.common.OneStageModel``), so the same
trainer, sampler and evaluation serve it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from baselines.common import OneStageModel
from stackgan.config import OptimConfig
from stackgan.layers import BottleneckResidual, init_weights
from stackgan.losses import bce_fake, bce_real
from stackgan.model import step_seed
from stackgan.networks import ConditionalLogits, paper_image_encoder

VARIANTS = ("gan", "gan_cls", "gan_int", "gan_int_cls")


@dataclass
class GanIntClsConfig:
    variant: str = "gan_int_cls"
    z_dim: int = 100
    text_dim: int = 1024
    t_dim: int = 128  # the text projection
    gf_dim: int = 128
    df_dim: int = 64
    image_size: int = 64
    int_beta: float = 0.5

    @property
    def uses_cls(self) -> bool:
        return self.variant in ("gan_cls", "gan_int_cls")

    @property
    def uses_int(self) -> bool:
        return self.variant in ("gan_int", "gan_int_cls")

    def validate(self) -> list[str]:
        errors = []
        if self.variant not in VARIANTS:
            errors.append(f"variant {self.variant!r} is not one of {VARIANTS}")
        if self.image_size != 64:
            errors.append("GAN-INT-CLS is defined at 64×64")
        return errors


def _deconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False)


class Generator(nn.Module):
    def __init__(self, cfg: GanIntClsConfig):
        super().__init__()
        gf = cfg.gf_dim
        self.text = nn.Sequential(nn.Linear(cfg.text_dim, cfg.t_dim), nn.LeakyReLU(0.2, inplace=True))
        self.fc = nn.Sequential(nn.Linear(cfg.z_dim + cfg.t_dim, gf * 8 * 16, bias=False),
                                nn.BatchNorm1d(gf * 8 * 16))
        self.body = nn.Sequential(
            BottleneckResidual(nn.Identity(), gf * 2, gf * 8, leaky=False),
            BottleneckResidual(nn.Sequential(_deconv(gf * 8, gf * 4), nn.BatchNorm2d(gf * 4)),
                               gf, gf * 4, leaky=False),
            _deconv(gf * 4, gf * 2), nn.BatchNorm2d(gf * 2), nn.ReLU(inplace=True),
            _deconv(gf * 2, gf), nn.BatchNorm2d(gf), nn.ReLU(inplace=True),
            _deconv(gf, 3), nn.Tanh())
        init_weights(self)

    def forward(self, embedding: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = torch.cat([noise, self.text(embedding)], 1)
        return self.body(self.fc(x).view(x.shape[0], -1, 4, 4))


class Discriminator(nn.Module):
    def __init__(self, cfg: GanIntClsConfig):
        super().__init__()
        self.encode = paper_image_encoder(cfg.image_size, cfg.df_dim)
        self.text = nn.Sequential(nn.Linear(cfg.text_dim, cfg.t_dim), nn.BatchNorm1d(cfg.t_dim),
                                  nn.LeakyReLU(0.2, inplace=True))
        self.logits = ConditionalLogits(cfg.df_dim, cfg.t_dim, kernel=1)
        init_weights(self)

    def forward(self, images: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        return self.logits(self.encode(images), self.text(embedding))


def interpolated_conditions(embedding: torch.Tensor, beta: float) -> torch.Tensor:
    """B/2 extra conditions β·t_i + (1 − β)·t_{i−1} for i < B/2 (t_{−1} = the last row)."""
    half = embedding.shape[0] // 2
    return beta * embedding[:half] + (1 - beta) * embedding.roll(1, dims=0)[:half]


def discriminator_loss(real, fake, wrong=None) -> torch.Tensor:
    if wrong is None:
        return bce_real(real) + bce_fake(fake)
    return bce_real(real) + 0.5 * (bce_fake(wrong) + bce_fake(fake))


class GanIntClsModel(OneStageModel):
    def __init__(self, cfg: GanIntClsConfig, optim: OptimConfig | None = None, seed: int = 0,
                 device: str | torch.device = "cpu"):
        errors = cfg.validate()
        if errors:
            raise ValueError("; ".join(errors))
        self.cfg = cfg
        super().__init__(Generator(cfg), Discriminator(cfg), cfg.z_dim,
                         optim or OptimConfig(lr_decay_epochs=100), seed, device)

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        size = self.cfg.image_size
        real = batch["images"][size].to(self.device)
        emb = batch["embedding"].to(self.device)
        torch.manual_seed(step_seed(self.seed, step, self.micro_offset))
        b = emb.shape[0]
        fake = self.netG(emb, torch.randn(b, self.cfg.z_dim, device=self.device))

        self.optD.zero_grad(set_to_none=True)
        real_logits = self.netD(real, emb)
        fake_logits = self.netD(fake.detach(), emb)
        wrong_logits = None
        if self.cfg.uses_cls:
            wrong_logits = self.netD(batch["wrong_images"][size].to(self.device), emb)
        loss_d = discriminator_loss(real_logits, fake_logits, wrong_logits)
        grad_d = self.update(self.netD, self.optD, loss_d)

        self.optG.zero_grad(set_to_none=True)
        g_logits = self.netD(fake, emb)
        if self.cfg.uses_int:
            extra = interpolated_conditions(emb, self.cfg.int_beta)
            extra_fake = self.netG(extra, torch.randn(extra.shape[0], self.cfg.z_dim, device=self.device))
            g_logits = torch.cat([g_logits, self.netD(extra_fake, extra)])
        loss_g = bce_real(g_logits)
        grad_g = self.update(self.netG, self.optG, loss_g)
        stats = {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "kl": 0.0,
                 "d_real": torch.sigmoid(real_logits).mean().item(),
                 "d_fake": torch.sigmoid(fake_logits).mean().item(),
                 "d_wrong": torch.sigmoid(wrong_logits).mean().item() if wrong_logits is not None
                 else float("nan"), "grad_norm_d": grad_d, "grad_norm_g": grad_g,
                 **self.learning_rates()}
        if wrong_logits is None:
            del stats["d_wrong"]
        return stats

    @torch.no_grad()
    def generate(self, embedding: torch.Tensor, noise: torch.Tensor, *unused) -> dict[str, torch.Tensor]:
        return {"stage1": self.netG(embedding.to(self.device), noise.to(self.device))}


__all__ = ["GanIntClsConfig", "GanIntClsModel", "Generator", "Discriminator",
           "interpolated_conditions", "discriminator_loss"]
