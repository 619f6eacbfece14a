"""Conditioning augmentation in the two official forms.

- ``paper`` (TF): FC -> LeakyReLU(0.2); mu | log sigma; c = mu + exp(log sigma) * eps with eps
  truncated normal (|eps| <= 2); KL = mean(-log sigma + 0.5 (-1 + exp(2 log sigma) + mu^2)).
- ``pytorch``: FC -> ReLU; mu | logvar; c = mu + exp(0.5 logvar) * eps, eps normal;
  KL = -0.5 mean(1 + logvar - mu^2 - exp(logvar)).
Both KLs are the closed-form KL(N(mu, sigma^2) || N(0, 1)) averaged per element; they differ
only in parameterising the scale (log sigma vs log sigma^2 = logvar).
Without CA (ablation) the embedding goes through the same FC and activation to ``ca_dim``
values used directly: no sampling and no KL.
"""

from __future__ import annotations

import torch
from torch import nn


def truncated_normal(shape, device=None, dtype=None, bound: float = 2.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard normal samples redrawn until |x| <= bound, as tf.truncated_normal."""
    x = torch.randn(shape, device=device, dtype=dtype, generator=generator)
    outside = x.abs() > bound
    while bool(outside.any()):
        x[outside] = torch.randn(int(outside.sum()), device=device, dtype=dtype, generator=generator)
        outside = x.abs() > bound
    return x


class ConditioningAugmentation(nn.Module):
    def __init__(self, text_dim: int, ca_dim: int, variant: str, use_ca: bool = True):
        super().__init__()
        self.variant, self.use_ca, self.ca_dim = variant, use_ca, ca_dim
        self.fc = nn.Linear(text_dim, ca_dim * 2 if use_ca else ca_dim, bias=True)
        self.act = nn.LeakyReLU(0.2) if variant == "paper" else nn.ReLU()

    def sample_eps(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The noise CA would draw for ``batch`` rows (truncated normal for the paper variant)."""
        if self.variant == "paper":
            return truncated_normal((batch, self.ca_dim), generator=generator)
        return torch.randn(batch, self.ca_dim, generator=generator)

    def forward(self, embedding: torch.Tensor, eps: torch.Tensor | None = None):
        """Returns (c, mu, log_scale); log_scale is log sigma (paper) or logvar (pytorch).
        ``eps`` replaces the internally drawn noise (for reproducible sampling)."""
        x = self.act(self.fc(embedding))
        if not self.use_ca:
            return x, x, None
        mu, log_scale = x[:, : self.ca_dim], x[:, self.ca_dim:]
        if self.variant == "paper":
            sigma = torch.exp(log_scale)
            if eps is None:
                eps = truncated_normal(mu.shape, mu.device, mu.dtype)
        else:
            sigma = torch.exp(0.5 * log_scale)
            if eps is None:
                eps = torch.randn_like(mu)
        eps = eps.to(mu.device, mu.dtype)
        return mu + sigma * eps, mu, log_scale

    def kl(self, mu: torch.Tensor, log_scale: torch.Tensor | None) -> torch.Tensor:
        if log_scale is None:
            return mu.new_zeros(())
        if self.variant == "paper":
            return torch.mean(-log_scale + 0.5 * (-1 + torch.exp(2 * log_scale) + mu.pow(2)))
        return -0.5 * torch.mean(1 + log_scale - mu.pow(2) - log_scale.exp())
