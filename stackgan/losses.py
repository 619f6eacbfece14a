"""GAN losses of both code bases on logits.

BCE(x, 1) = softplus(-x) and BCE(x, 0) = softplus(x) on logits x: the same mathematics as the
official sigmoid + BCELoss, without its saturation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce_real(logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-logits).mean()


def bce_fake(logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(logits).mean()


def discriminator_loss(real, wrong, fake, real_uncond=None, fake_uncond=None) -> torch.Tensor:
    """D = BCE(real, 1) + ½[BCE(wrong, 0) + BCE(fake, 0)]; with unconditional logits (PyTorch
    Stage-II): (real_c + real_u)/2 + (fake_c + wrong + fake_u)/3."""
    if real_uncond is None:
        return bce_real(real) + 0.5 * (bce_fake(wrong) + bce_fake(fake))
    return ((bce_real(real) + bce_real(real_uncond)) / 2
            + (bce_fake(fake) + bce_fake(wrong) + bce_fake(fake_uncond)) / 3)


def generator_adversarial_loss(fake, fake_uncond=None) -> torch.Tensor:
    loss = bce_real(fake)
    return loss if fake_uncond is None else loss + bce_real(fake_uncond)
