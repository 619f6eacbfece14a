"""Stage-I and Stage-II generators and discriminators in the ``paper`` (TensorFlow) and
``pytorch`` (StackGAN-Pytorch) variants. Every width comes from ModelConfig, and
the number of up/down-sampling steps from the image sizes, so tiny CI networks run the same code.

Discriminators return logits, as the TF code's do (the official PyTorch code ends in a sigmoid
and uses BCELoss; the logits form computes the same loss stably: docs/fidelity.md, StackGAN-Pytorch
variant). BatchNorm is PyTorch's: the TF code updates its moving variance with the biased batch
variance (row 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from stackgan.ca import ConditioningAugmentation
from stackgan.config import ModelConfig
from stackgan.layers import (
    BottleneckResidual,
    ResBlock,
    conv1x1,
    conv3x3,
    down4x4,
    init_weights,
    lrelu,
    up_block,
)


def _steps(size: int, base: int = 4) -> int:
    return int(math.log2(size // base))


# ----------------------------------------------------------------------------- Stage-I G
class Stage1Generator(nn.Module):
    """cond: text embedding -> CA -> with z -> 4×4 -> upsampling to ``stage1_size``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.ca = ConditioningAugmentation(cfg.text_dim, cfg.ca_dim, cfg.variant, cfg.use_ca)
        n_up = _steps(cfg.stage1_size)
        if cfg.variant == "pytorch":
            ngf = cfg.gf_dim * 8
            self.fc = nn.Sequential(nn.Linear(cfg.z_dim + cfg.ca_dim, ngf * 16, bias=False),
                                    nn.BatchNorm1d(ngf * 16), nn.ReLU(inplace=True))
            chans = [ngf // 2 ** k for k in range(n_up + 1)]
            self.body = nn.Sequential(*[up_block(chans[k], chans[k + 1]) for k in range(n_up)])
            last = chans[-1]
        else:
            gf = cfg.gf_dim
            # TF's FC has a bias; the BN after it cancels it (docs/fidelity.md row 2).
            self.fc = nn.Sequential(nn.Linear(cfg.ca_dim + cfg.z_dim, gf * 8 * 16, bias=False),
                                    nn.BatchNorm1d(gf * 8 * 16))
            node1 = BottleneckResidual(nn.Identity(), gf * 2, gf * 8, leaky=False)
            node2 = BottleneckResidual(
                nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv3x3(gf * 8, gf * 4),
                              nn.BatchNorm2d(gf * 4)), gf, gf * 4, leaky=False)
            chans = [gf * 4] + [max(gf * 2 // 2 ** k, 4) for k in range(n_up - 2)]
            ups = [up_block(chans[k], chans[k + 1]) for k in range(n_up - 2)]
            self.body = nn.Sequential(node1, node2, *ups, nn.Upsample(scale_factor=2, mode="nearest"))
            last = chans[-1]
        self.img = nn.Sequential(conv3x3(last, 3), nn.Tanh())
        init_weights(self, truncated_convs=cfg.variant == "paper")

    def forward(self, embedding: torch.Tensor, noise: torch.Tensor, ca_eps: torch.Tensor | None = None):
        c, mu, log_scale = self.ca(embedding, ca_eps)
        # The official code bases concatenate in opposite orders.
        x = torch.cat([noise, c], 1) if self.cfg.variant == "pytorch" else torch.cat([c, noise], 1)
        h = self.fc(x).view(x.shape[0], -1, 4, 4)
        return self.img(self.body(h)), mu, log_scale


# ----------------------------------------------------------------------------- D helpers
def pytorch_image_encoder(size: int, df: int) -> nn.Sequential:
    """DCGAN stride-2 convs to 4×4 (df·2^k channels), then 3×3 convs back down to 8·df."""
    n = _steps(size)
    layers: list[nn.Module] = [down4x4(3, df), lrelu()]
    c = df
    for _ in range(n - 1):
        layers += [down4x4(c, c * 2), nn.BatchNorm2d(c * 2), lrelu()]
        c *= 2
    while c > df * 8:
        layers += [conv3x3(c, c // 2), nn.BatchNorm2d(c // 2), lrelu()]
        c //= 2
    return nn.Sequential(*layers)


def paper_image_encoder(size: int, df: int, act_after_4df: bool = True) -> BottleneckResidual:
    """TF: stride-2 convs to 4×4, 1×1 convs down to 8·df (the last one BN without activation),
    plus a 1×1-3×3-3×3 residual branch, then LeakyReLU.

    ``act_after_4df=False``: the TF Stage-I D (stageI/model.py ``d_encode_image``) has no
    activation after the BN of its 4·df conv (conv 4·df, BN, then straight into conv 8·df), and
    Reed's GAN-INT-CLS D (main_cls_int.lua) has the same gap; the TF Stage-II D
    (``hr_d_encode_image``) activates after every BN but the last."""
    n = _steps(size)
    chans = [df * 2 ** k for k in range(n)]
    layers: list[nn.Module] = [down4x4(3, chans[0]), lrelu()]
    for k in range(1, n):
        layers += [down4x4(chans[k - 1], chans[k]), nn.BatchNorm2d(chans[k])]
        if act_after_4df or chans[k] != df * 4:
            layers.append(lrelu())
    c = chans[-1]
    while c > df * 8:
        layers += [conv1x1(c, c // 2), nn.BatchNorm2d(c // 2), lrelu()]
        c //= 2
    if c < df * 8:  # tiny sizes: widen to 8·df
        layers += [conv1x1(c, df * 8), nn.BatchNorm2d(df * 8), lrelu()]
    if isinstance(layers[-1], nn.LeakyReLU):  # the main path ends in BN, as in the TF code
        layers = layers[:-1]
    return BottleneckResidual(nn.Sequential(*layers), df * 2, df * 8, leaky=True)


class ConditionalLogits(nn.Module):
    """Joint conv on image code ⊕ tiled condition, then a 4×4 conv to one logit. ``out_bias``:
    StackGAN-Pytorch's last conv has a bias; the TF convs have none (custom_conv2d leaves it
    commented out) and Reed's Lua code zeroes every conv bias before each update."""

    def __init__(self, df: int, cond_dim: int, kernel: int, out_bias: bool = True):
        super().__init__()
        self.cond_dim = cond_dim
        joint = conv3x3(df * 8 + cond_dim, df * 8) if kernel == 3 else conv1x1(df * 8 + cond_dim, df * 8)
        self.joint = nn.Sequential(joint, nn.BatchNorm2d(df * 8), lrelu())
        self.out = nn.Conv2d(df * 8, 1, 4, 4, bias=out_bias)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        c = cond.view(-1, self.cond_dim, 1, 1).expand(-1, -1, h.shape[2], h.shape[3])
        return self.out(self.joint(torch.cat([h, c], 1))).view(-1)


class Discriminator(nn.Module):
    """Image -> 4×4 code; conditional logit (and, for PyTorch Stage-II, an unconditional one).

    Condition: ``paper`` embeds the raw text embedding (FC -> LeakyReLU) inside D; ``pytorch``
    takes G's conditioning mean mu, detached, as given by the train step.
    """

    def __init__(self, cfg: ModelConfig, size: int, unconditional_head: bool, stage: int = 1):
        super().__init__()
        self.cfg = cfg
        df = cfg.df_dim
        if cfg.variant == "pytorch":
            self.encode = pytorch_image_encoder(size, df)
            self.text = None
            self.cond_logits = ConditionalLogits(df, cfg.ca_dim, kernel=3)
        else:
            self.encode = paper_image_encoder(size, df, act_after_4df=stage == 2)
            self.text = nn.Sequential(nn.Linear(cfg.text_dim, cfg.ca_dim), nn.LeakyReLU(0.2))
            self.cond_logits = ConditionalLogits(df, cfg.ca_dim, kernel=1, out_bias=False)
        self.uncond_logits = nn.Conv2d(df * 8, 1, 4, 4) if unconditional_head else None
        init_weights(self, truncated_convs=cfg.variant == "paper")

    def forward(self, images: torch.Tensor, cond: torch.Tensor):
        """Returns (conditional logits, unconditional logits or None), each of shape (B,)."""
        return self.logits(self.encode(images), cond)

    def logits(self, h: torch.Tensor, cond: torch.Tensor, unconditional: bool = True):
        """The heads on encoded images ``h``: the official PyTorch D step scores the wrong pairs
        on the real images' features (``get_cond_logits(real_features[:B-1], cond[1:])``)."""
        c = self.text(cond) if self.text is not None else cond
        uncond = (self.uncond_logits(h).view(-1)
                  if unconditional and self.uncond_logits is not None else None)
        return self.cond_logits(h, c), uncond


def stage1_discriminator(cfg: ModelConfig) -> Discriminator:
    return Discriminator(cfg, cfg.stage1_size, unconditional_head=False)


def stage2_discriminator(cfg: ModelConfig) -> Discriminator:
    return Discriminator(cfg, cfg.stage2_size, unconditional_head=cfg.variant == "pytorch", stage=2)


# ----------------------------------------------------------------------------- Stage-II G
class Stage2Generator(nn.Module):
    """Refines a Stage-I image: encode to 16×16, join with its own CA code (text twice), residual
    blocks, upsample to ``stage2_size``. No noise input. The Stage-I generator is held outside
    (see StackGANModel) so that it is never among these parameters."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        ngf = cfg.gf_dim
        self.ca = (ConditioningAugmentation(cfg.text_dim, cfg.ca_dim, cfg.variant, cfg.use_ca)
                   if cfg.stage2_text else None)
        n_down = _steps(cfg.stage1_size, 16)
        layers: list[nn.Module] = [conv3x3(3, ngf), nn.ReLU(inplace=True)]
        c = ngf
        for _ in range(n_down):
            layers += [down4x4(c, min(c * 2, ngf * 4)), nn.BatchNorm2d(min(c * 2, ngf * 4)),
                       nn.ReLU(inplace=True)]
            c = min(c * 2, ngf * 4)
        self.encoder = nn.Sequential(*layers)
        cond = cfg.ca_dim if cfg.stage2_text else 0
        self.joint = nn.Sequential(conv3x3(c + cond, ngf * 4), nn.BatchNorm2d(ngf * 4),
                                   nn.ReLU(inplace=True))
        self.residual = nn.Sequential(*[ResBlock(ngf * 4) for _ in range(cfg.r_num)])
        n_up = _steps(cfg.stage2_size, 16)
        chans = [ngf * 4 // 2 ** k for k in range(n_up + 1)]
        self.ups = nn.Sequential(*[up_block(chans[k], chans[k + 1]) for k in range(n_up)])
        self.img = nn.Sequential(conv3x3(chans[-1], 3), nn.Tanh())
        init_weights(self, truncated_convs=cfg.variant == "paper")

    def forward(self, stage1_image: torch.Tensor, embedding: torch.Tensor,
                ca_eps: torch.Tensor | None = None):
        h = self.encoder(stage1_image)
        mu = log_scale = None
        if self.ca is not None:
            c, mu, log_scale = self.ca(embedding, ca_eps)
            h = torch.cat([h, c.view(-1, c.shape[1], 1, 1).expand(-1, -1, h.shape[2], h.shape[3])], 1)
        h = self.residual(self.joint(h))
        return self.img(self.ups(h)), mu, log_scale
