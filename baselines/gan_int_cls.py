"""GAN-INT-CLS (Reed et al., ICML 2016) and its variants GAN, GAN-CLS, GAN-INT, as the Lua code
of reedscot/icml2016 trains them.

Two training scripts, chosen by ``baseline.script``:
- ``cls_int`` (main_cls_int.lua, CUB and Oxford-102): the generic script of all four variants.
- ``cls`` (main_cls.lua, COCO): GAN-CLS only.

64×64. G: text Linear 1024 -> t_dim + LeakyReLU, concatenated with z, a 4×4 transposed conv
to 8·gf channels with per-channel BN, a bottleneck residual unit, transposed convs
8gf -> 4gf (+ a residual unit) -> 2gf -> gf -> 3, tanh. D: the TF Stage-I image encoder
(``cls_int``: without the activation after the 4·df BN, as in the Lua code), text Linear ->
BN (``cls_int`` only) -> LeakyReLU tiled 4×4, a 1×1 joint conv, a 4×4 conv to one logit.
Conv biases: none (the Lua code zeroes every conv bias before each update). Linear layers keep
Torch7's default init, which PyTorch shares. Differences left (docs/fidelity.md rows 9–12): the
epoch is a permutation of the images (Lua: a uniform class, then an image, with replacement),
8-bit images after the resize, the LR halves after 100 epochs (Lua: at the start of epoch 100,
counted from 1) and the seed is fixed.

Losses (BCE on logits):
- D = BCE(real, 1) + w·BCE(wrong image with right text, 0) + (1 − w)·BCE(fake, 0), w = 0.5 with
  CLS and 0 without it (then D = BCE(real, 1) + BCE(fake, 0)).
- G, ``cls_int``: one pass of G and D over 1.5·B conditions with fresh noise: the batch's B
  conditions and B/2 interpolations (t_i + t_{i+B/2})/2, all labelled real, weighted 1 and
  ``int_weight`` (0 without INT: the script still runs the 1.5·B pass, so BN sees it and the
  mean divides by 1.5·B). ``cls``: one pass over the B conditions with fresh noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from baselines.common import OneStageModel
from harness.core import OptimConfig, step_seed
from stackgan.layers import BottleneckResidual, init_weights
from stackgan.losses import bce_fake, bce_real
from stackgan.networks import ConditionalLogits, paper_image_encoder

VARIANTS = ("gan", "gan_cls", "gan_int", "gan_int_cls")
SCRIPTS = ("cls_int", "cls")
# The G update's noise: a stream of its own, apart from the D step's.
G_NOISE_STREAM = 1 << 40


@dataclass
class GanIntClsConfig:
    variant: str = "gan_int_cls"
    script: str = "cls_int"  # cls_int: main_cls_int.lua (CUB, Oxford); cls: main_cls.lua (COCO)
    z_dim: int = 100
    text_dim: int = 1024
    t_dim: int = 128  # the text projection (nt)
    gf_dim: int = 128
    df_dim: int = 64
    image_size: int = 64
    cls_weight: float = 0.5  # weight of the wrong pair in D's loss (CLS variants)
    int_weight: float = 1.0  # weight of the interpolated conditions in G's loss (INT variants)

    @property
    def uses_cls(self) -> bool:
        return self.variant in ("gan_cls", "gan_int_cls")

    @property
    def uses_int(self) -> bool:
        return self.variant in ("gan_int", "gan_int_cls")

    def validate(self) -> list[str]:
        errors = []
        if self.variant not in VARIANTS:
            errors.append(f"baseline.variant {self.variant!r} is not one of {VARIANTS}")
        if self.script not in SCRIPTS:
            errors.append(f"baseline.script {self.script!r} is not one of {SCRIPTS}")
        elif self.script == "cls" and self.uses_int:
            errors.append("baseline.script cls (main_cls.lua) has no INT step; use script cls_int")
        if self.image_size not in (32, 64):
            # 64 is the published model; 32 drops one upsampling (the claims scale halves sizes).
            errors.append("baseline.image_size: GAN-INT-CLS is defined at 64×64 (32 for scaled-down runs)")
        if not 0 <= self.cls_weight < 1:
            errors.append("baseline.cls_weight must be in [0, 1)")
        return errors


def _deconv(cin: int, cout: int) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False)


class Generator(nn.Module):
    def __init__(self, cfg: GanIntClsConfig):
        super().__init__()
        gf = cfg.gf_dim
        self.text = nn.Sequential(nn.Linear(cfg.text_dim, cfg.t_dim), nn.LeakyReLU(0.2, inplace=True))
        # SpatialFullConvolution(nz + nt, 8·ngf, 4, 4) on the 1×1 input, then per-channel BN.
        self.project = nn.Sequential(nn.ConvTranspose2d(cfg.z_dim + cfg.t_dim, gf * 8, 4, 1, 0, bias=False),
                                     nn.BatchNorm2d(gf * 8))
        # 4 -> 8 (+ residual) -> 16 -> 32 -> 64: 8gf, 4gf, 2gf, gf, 3 (one step fewer at 32).
        chans = [gf * 4, gf * 2, gf][: int(math.log2(cfg.image_size // 8))]
        ups: list[nn.Module] = []
        for cin, cout in zip(chans, chans[1:], strict=False):
            ups += [_deconv(cin, cout), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(
            BottleneckResidual(nn.Identity(), gf * 2, gf * 8, leaky=False),
            BottleneckResidual(nn.Sequential(_deconv(gf * 8, gf * 4), nn.BatchNorm2d(gf * 4)),
                               gf, gf * 4, leaky=False),
            *ups, _deconv(chans[-1], 3), nn.Tanh())
        init_weights(self, linears=False)

    def forward(self, embedding: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        x = torch.cat([noise, self.text(embedding)], 1)
        return self.body(self.project(x[:, :, None, None]))


class Discriminator(nn.Module):
    def __init__(self, cfg: GanIntClsConfig):
        super().__init__()
        # main_cls_int.lua leaves out the activation after the 4·df BN; main_cls.lua has it.
        self.encode = paper_image_encoder(cfg.image_size, cfg.df_dim, act_after_4df=cfg.script == "cls")
        text: list[nn.Module] = [nn.Linear(cfg.text_dim, cfg.t_dim)]
        if cfg.script == "cls_int":  # main_cls.lua's text head has no BN
            text.append(nn.BatchNorm1d(cfg.t_dim))
        self.text = nn.Sequential(*text, nn.LeakyReLU(0.2, inplace=True))
        self.logits = ConditionalLogits(cfg.df_dim, cfg.t_dim, kernel=1, out_bias=False)
        init_weights(self, linears=False)

    def forward(self, images: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        return self.logits(self.encode(images), self.text(embedding))


def interpolated_conditions(embedding: torch.Tensor) -> torch.Tensor:
    """The B/2 interpolations of main_cls_int.lua (interp_type 1): (t_i + t_{i+B/2}) / 2."""
    half = embedding.shape[0] // 2
    return (embedding[:half] + embedding[half:2 * half]) * 0.5


def discriminator_loss(real, fake, wrong=None, cls_weight: float = 0.5) -> torch.Tensor:
    if wrong is None:
        return bce_real(real) + bce_fake(fake)
    return bce_real(real) + cls_weight * bce_fake(wrong) + (1 - cls_weight) * bce_fake(fake)


def generator_loss(logits: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """BCE(·, 1) averaged over every entry, each weighted (Torch's BCECriterion(weights) with
    sizeAverage divides the weighted sum by the number of entries)."""
    losses = F.softplus(-logits)
    return losses.mean() if weights is None else (weights * losses).sum() / logits.numel()


class GanIntClsModel(OneStageModel):
    def __init__(self, cfg: GanIntClsConfig, optim: OptimConfig | None = None, seed: int = 0,
                 device: str | torch.device = "cpu", autocast_bf16: bool = False,
                 channels_last: bool = False):
        errors = cfg.validate()
        if errors:
            raise ValueError("; ".join(errors))
        self.cfg = cfg
        super().__init__(Generator(cfg), Discriminator(cfg), cfg.z_dim,
                         optim or OptimConfig(lr_decay_epochs=100), seed, device,
                         autocast_bf16=autocast_bf16, channels_last=channels_last)

    def _g_conditions(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.cfg.script == "cls":
            return emb, None
        extra = interpolated_conditions(emb)
        weight = self.cfg.int_weight if self.cfg.uses_int else 0.0
        weights = torch.cat([torch.ones(len(emb)), torch.full((len(extra),), weight)]).to(emb.device)
        return torch.cat([emb, extra]), weights

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        size = self.cfg.image_size
        real = self._images(batch["images"][size])
        emb = batch["embedding"].to(self.device)
        torch.manual_seed(step_seed(self.seed, step, self.micro_offset))
        with self._autocast():
            fake = self.netG(emb, torch.randn(emb.shape[0], self.cfg.z_dim, device=self.device))

        self.optD.zero_grad(set_to_none=True)
        with self._autocast():
            real_logits = self.netD(real, emb).float()
            wrong_logits = None
            if self.cfg.uses_cls:
                wrong_logits = self.netD(self._images(batch["wrong_images"][size]), emb).float()
            fake_logits = self.netD(fake.detach(), emb).float()
        loss_d = discriminator_loss(real_logits, fake_logits, wrong_logits, self.cfg.cls_weight)
        grad_d = self.update(self.netD, self.optD, loss_d)

        # Both scripts draw new noise for the G update.
        self.optG.zero_grad(set_to_none=True)
        torch.manual_seed(step_seed(self.seed, step, G_NOISE_STREAM + self.micro_offset))
        cond, weights = self._g_conditions(emb)
        with self._autocast():
            g_fake = self.netG(cond, torch.randn(cond.shape[0], self.cfg.z_dim, device=self.device))
            g_logits = self.netD(g_fake, cond).float()
        loss_g = generator_loss(g_logits, weights)
        grad_g = self.update(self.netG, self.optG, loss_g)
        stats = {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "kl": 0.0,
                 "d_real": torch.sigmoid(real_logits).mean().item(),
                 "d_fake": torch.sigmoid(fake_logits).mean().item(),
                 "grad_norm_d": grad_d, "grad_norm_g": grad_g, **self.learning_rates()}
        if wrong_logits is not None:
            stats["d_wrong"] = torch.sigmoid(wrong_logits).mean().item()
        return stats

    @torch.no_grad()
    def generate(self, embedding: torch.Tensor, noise: torch.Tensor, *unused) -> dict[str, torch.Tensor]:
        return {"stage1": self.netG(embedding.to(self.device), noise.to(self.device))}


__all__ = ["GanIntClsConfig", "GanIntClsModel", "Generator", "Discriminator",
           "interpolated_conditions", "discriminator_loss", "generator_loss"]
