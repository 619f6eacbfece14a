"""GAWWN (Reed et al., NIPS 2016, "Learning What and Where to Draw"), the bounding-box-conditioned
version at 128×128 that the StackGAN paper compares with on CUB (REFERENCE §1, Table 1).

The text embedding (1024 -> t_dim, LeakyReLU) says *what* to draw, a bounding box *where*.
Both networks meet the box on an M×M grid (M = 16):

- G, global pathway: [z, t] -> FC -> 4×4 -> upsampling to M×M.
  G, local pathway: t replicated over the M×M grid, zero outside the box, 3×3 convolutions,
  masked to the box again. The two are concatenated and upsampled M -> 128.
- D: the image is downsampled to M×M features. Local pathway: the features concatenated with
  the replicated text, a 1×1 convolution, masked to the box, downsampled to 4×4. Global pathway:
  the features downsampled to 4×4, concatenated with the replicated text, a 1×1 convolution. The
  two are concatenated and a 4×4 convolution gives the logit.
- Loss: the matching-aware (GAN-CLS) discriminator, as in GAWWN: real image with its box and
  text -> 1; a real image of another class with its own box and this text -> 0; the fake -> 0.

Where this differs from the Torch original (reedscot/nips2016), and why:
- The box enters through an exact box-coverage mask on the M×M grid. The original warps the
  replicated text into the box with a spatial transformer; warping a spatially constant map into
  a box gives that constant inside the box and zero outside, which is this mask (with area
  weights at the box edges instead of bilinear ones). In D, the original crops the box region
  out of the feature map with a spatial transformer and resizes it; here the features outside
  the box are zeroed in place, which keeps the box's position visible to the local pathway.
- Upsampling is nearest ×2 + 3×3 convolution (StackGAN's blocks) instead of transposed
  convolutions, and widths follow ``gf_dim``/``df_dim`` like the other models here.
- Keypoint conditioning (GAWWN's other version) is not implemented: Table 1 uses boxes.
- Boxes follow each image's random crop and flip; the whole image is used (no StackGAN box crop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from baselines.common import OneStageModel
from baselines.gan_int_cls import discriminator_loss
from stackgan.config import OptimConfig
from stackgan.layers import conv1x1, conv3x3, down4x4, init_weights, lrelu, up_block
from stackgan.losses import bce_real
from stackgan.model import step_seed


@dataclass
class GawwnConfig:
    z_dim: int = 100
    text_dim: int = 1024
    t_dim: int = 128
    gf_dim: int = 128
    df_dim: int = 64
    image_size: int = 128
    grid_size: int = 16  # M: the grid on which text meets the box
    # Fractions (x0, y0, x1, y1) of the image: the box for captions that come without one
    # (free text); test captions use their image's box.
    default_box: list[float] = field(default_factory=lambda: [0.15, 0.2, 0.85, 0.85])

    def validate(self) -> list[str]:
        errors = []
        for name in ("image_size", "grid_size"):
            v = getattr(self, name)
            if v < 4 or v & (v - 1):
                errors.append(f"gawwn.{name}: {v} is not a power of two >= 4")
        if self.grid_size < 8 or self.grid_size >= self.image_size:
            errors.append("gawwn.grid_size must be >= 8 and below gawwn.image_size")
        if self.gf_dim < 4 or self.gf_dim % 4:
            errors.append("gawwn.gf_dim must be a multiple of 4 and >= 4")
        box = self.default_box
        if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
            errors.append(f"gawwn.default_box: {list(box)} is not [x0, y0, x1, y1] with "
                          "0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
        return errors


def box_mask(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """(B, 1, size, size): the share of each grid cell that lies inside each box. ``boxes`` are
    (B, 4) fractions (x0, y0, x1, y1) of the image."""
    edges = torch.arange(size + 1, dtype=boxes.dtype, device=boxes.device) / size
    lo, hi = edges[:-1], edges[1:]

    def coverage(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((torch.minimum(b[:, None], hi) - torch.maximum(a[:, None], lo)).clamp(min=0)
                * size)

    cover_x = coverage(boxes[:, 0], boxes[:, 2])
    cover_y = coverage(boxes[:, 1], boxes[:, 3])
    return (cover_y[:, :, None] * cover_x[:, None, :]).unsqueeze(1)


def _replicate(t: torch.Tensor, size: int) -> torch.Tensor:
    return t[:, :, None, None].expand(-1, -1, size, size)


def _steps(large: int, small: int) -> int:
    return int(math.log2(large // small))


class Generator(nn.Module):
    def __init__(self, cfg: GawwnConfig):
        super().__init__()
        gf, m = cfg.gf_dim, cfg.grid_size
        self.grid = m
        self.text = nn.Sequential(nn.Linear(cfg.text_dim, cfg.t_dim), nn.LeakyReLU(0.2, inplace=True))
        self.fc = nn.Sequential(nn.Linear(cfg.z_dim + cfg.t_dim, gf * 8 * 16, bias=False),
                                nn.BatchNorm1d(gf * 8 * 16), nn.ReLU(inplace=True))
        n_global = _steps(m, 4)
        chans = [max(gf * 8 // 2 ** k, gf * 2) for k in range(n_global + 1)]
        self.global_path = nn.Sequential(*[up_block(chans[k], chans[k + 1]) for k in range(n_global)])
        self.local_path = nn.Sequential(
            conv3x3(cfg.t_dim, gf * 2), nn.BatchNorm2d(gf * 2), nn.ReLU(inplace=True),
            conv3x3(gf * 2, gf * 2), nn.BatchNorm2d(gf * 2), nn.ReLU(inplace=True))
        n_up = _steps(cfg.image_size, m)
        up = [chans[-1] + gf * 2] + [max(gf * 2 // 2 ** k, 4) for k in range(n_up)]
        self.joint = nn.Sequential(*[up_block(up[k], up[k + 1]) for k in range(n_up)],
                                   conv3x3(up[-1], 3), nn.Tanh())
        init_weights(self)

    def forward(self, embedding: torch.Tensor, noise: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        t = self.text(embedding)
        h = self.fc(torch.cat([noise, t], 1)).view(noise.shape[0], -1, 4, 4)
        mask = box_mask(boxes, self.grid)
        local = self.local_path(_replicate(t, self.grid) * mask) * mask
        return self.joint(torch.cat([self.global_path(h), local], 1))


class Discriminator(nn.Module):
    def __init__(self, cfg: GawwnConfig):
        super().__init__()
        df, m, t = cfg.df_dim, cfg.grid_size, cfg.t_dim
        self.grid = m
        n_down = _steps(cfg.image_size, m)
        chans = [df * 2 ** k for k in range(n_down)]
        layers: list[nn.Module] = [down4x4(3, chans[0]), lrelu()]
        for k in range(1, n_down):
            layers += [down4x4(chans[k - 1], chans[k]), nn.BatchNorm2d(chans[k]), lrelu()]
        self.encode = nn.Sequential(*layers)
        feat = chans[-1]
        self.text = nn.Sequential(nn.Linear(cfg.text_dim, t), nn.BatchNorm1d(t),
                                  nn.LeakyReLU(0.2, inplace=True))

        def to_4x4(cin: int) -> nn.Sequential:
            n = _steps(m, 4)
            cs = [cin] + [df * 8] * n
            mods: list[nn.Module] = []
            for k in range(n):
                mods += [down4x4(cs[k], cs[k + 1]), nn.BatchNorm2d(cs[k + 1]), lrelu()]
            return nn.Sequential(*mods)

        self.local_in = nn.Sequential(conv1x1(feat + t, feat), nn.BatchNorm2d(feat), lrelu())
        self.local_down = to_4x4(feat)
        self.global_down = to_4x4(feat)
        self.global_join = nn.Sequential(conv1x1(df * 8 + t, df * 8), nn.BatchNorm2d(df * 8), lrelu())
        self.logit = nn.Conv2d(df * 16, 1, 4, 1, 0)
        init_weights(self)

    def forward(self, images: torch.Tensor, embedding: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        feats = self.encode(images)
        t = self.text(embedding)
        mask = box_mask(boxes, self.grid)
        local = self.local_in(torch.cat([feats, _replicate(t, self.grid)], 1)) * mask
        local = self.local_down(local)
        glob = self.global_down(feats)
        glob = self.global_join(torch.cat([glob, _replicate(t, 4)], 1))
        return self.logit(torch.cat([local, glob], 1)).view(-1)


class GawwnModel(OneStageModel):
    needs_boxes = True

    def __init__(self, cfg: GawwnConfig, optim: OptimConfig | None = None, seed: int = 0,
                 device: str | torch.device = "cpu"):
        errors = cfg.validate()
        if errors:
            raise ValueError("; ".join(errors))
        self.cfg = cfg
        super().__init__(Generator(cfg), Discriminator(cfg), cfg.z_dim, optim or OptimConfig(),
                         seed, device)

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        size = self.cfg.image_size
        real = batch["images"][size].to(self.device)
        emb = batch["embedding"].to(self.device)
        boxes = batch["box"].to(self.device)
        torch.manual_seed(step_seed(self.seed, step, self.micro_offset))
        fake = self.netG(emb, torch.randn(emb.shape[0], self.cfg.z_dim, device=self.device), boxes)

        self.optD.zero_grad(set_to_none=True)
        real_logits = self.netD(real, emb, boxes)
        fake_logits = self.netD(fake.detach(), emb, boxes)
        wrong_logits = self.netD(batch["wrong_images"][size].to(self.device), emb,
                                 batch["wrong_box"].to(self.device))
        loss_d = discriminator_loss(real_logits, fake_logits, wrong_logits)
        grad_d = self.update(self.netD, self.optD, loss_d)

        self.optG.zero_grad(set_to_none=True)
        g_logits = self.netD(fake, emb, boxes)
        loss_g = bce_real(g_logits)
        grad_g = self.update(self.netG, self.optG, loss_g)
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "kl": 0.0,
                "d_real": torch.sigmoid(real_logits).mean().item(),
                "d_fake": torch.sigmoid(fake_logits).mean().item(),
                "d_wrong": torch.sigmoid(wrong_logits).mean().item(),
                "grad_norm_d": grad_d, "grad_norm_g": grad_g, **self.learning_rates()}

    def default_boxes(self, batch: int) -> torch.Tensor:
        return torch.tensor([list(self.cfg.default_box)], dtype=torch.float32).expand(batch, 4)

    @torch.no_grad()
    def generate(self, embedding: torch.Tensor, noise: torch.Tensor, *unused,
                 boxes: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if boxes is None:
            boxes = self.default_boxes(embedding.shape[0])
        return {"stage1": self.netG(embedding.to(self.device), noise.to(self.device),
                                    boxes.to(self.device))}


__all__ = ["GawwnConfig", "GawwnModel", "Generator", "Discriminator", "box_mask"]
