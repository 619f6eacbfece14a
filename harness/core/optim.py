"""The optimiser settings every family shares, and the gradient norm the train steps log."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class OptimConfig:
    """Adam for both networks, one D step then one G step; LR multiplied by ``lr_decay_factor``
    every ``lr_decay_epochs`` epochs (TF: 50 for Stage-I, 100 for Stage-II)."""

    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    # Adam's epsilon: 1e-8 in StackGAN-Pytorch (torch's default), the TF code (tf.train.AdamOptimizer)
    # and the Lua optim.adam of GAN-INT-CLS and GAWWN. Only the gate's smoke scale changes it.
    eps: float = 1e-8
    lr_decay_epochs: int = 50
    lr_decay_factor: float = 0.5
    grad_accumulation: int = 1  # micro-batches per step; BN statistics are per micro-batch


def grad_norm(params) -> float:
    """The L2 norm of all gradients of ``params`` together (0.0 when none has one)."""
    norms = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0
