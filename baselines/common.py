"""What every one-stage baseline model shares: a generator and a discriminator, each with its Adam
optimiser and step LR schedule, and StackGAN's model interface (``networks``, ``train``/``eval``,
``end_epoch``, ``sample_noise``, ``state_dict``), so the generic trainer, sampler and evaluation
serve it unchanged. Subclasses set ``netG``/``netD`` and write ``train_step`` and ``generate``."""

from __future__ import annotations

import torch
from torch import nn

from harness.core import OptimConfig, autocast, grad_norm, memory_format


class OneStageModel:
    # What generate() and the batches carry besides text and noise ("box", "parts").
    conditions: tuple[str, ...] = ()

    def __init__(self, netG: nn.Module, netD: nn.Module, z_dim: int, optim: OptimConfig,
                 seed: int, device: str | torch.device, autocast_bf16: bool = False,
                 channels_last: bool = False):
        self.seed, self.device, self.z_dim = seed, torch.device(device), z_dim
        self.autocast_bf16 = autocast_bf16
        self.memory_format = memory_format(channels_last)
        self.netG = netG.to(self.device, memory_format=self.memory_format)
        self.netD = netD.to(self.device, memory_format=self.memory_format)
        betas = (optim.beta1, optim.beta2)
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=optim.lr_g, betas=betas, eps=optim.eps)
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=optim.lr_d, betas=betas, eps=optim.eps)
        self.schedG = torch.optim.lr_scheduler.StepLR(self.optG, optim.lr_decay_epochs,
                                                      optim.lr_decay_factor)
        self.schedD = torch.optim.lr_scheduler.StepLR(self.optD, optim.lr_decay_epochs,
                                                      optim.lr_decay_factor)
        self.stage1 = None  # one stage: the sampler writes no Stage-I images
        # Set by a data-parallel runner (see StackGANModel).
        self.grad_sync = None
        self.micro_offset = 0

    def _autocast(self):
        """The context of a training step's forward passes (``train.autocast_bf16``); losses
        are taken on fp32 logits outside it."""
        return autocast(self.autocast_bf16, self.device)

    def _images(self, images: torch.Tensor) -> torch.Tensor:
        """A batch of images on the device, in the networks' memory format."""
        return images.to(self.device, memory_format=self.memory_format)

    def networks(self) -> dict[str, nn.Module]:
        return {"netG": self.netG, "netD": self.netD}

    def train(self) -> None:
        self.netG.train()
        self.netD.train()

    def eval(self) -> None:
        self.netG.eval()
        self.netD.eval()

    def sync_gradients(self, net: nn.Module) -> None:
        if self.grad_sync is not None:
            self.grad_sync(net)

    def update(self, net: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> float:
        """Backward, gradient sync across ranks, then the optimiser step; returns the gradient
        norm (logged). The caller zeroes the gradients before its forward pass. Only ``net``'s
        gradients are computed: G's loss also runs through D, whose weight gradients the Lua
        code computed and discarded."""
        loss.backward(inputs=[p for p in net.parameters() if p.requires_grad])
        return self.apply_gradients(net, optimizer)

    def apply_gradients(self, net: nn.Module, optimizer: torch.optim.Optimizer) -> float:
        """Gradient sync across ranks, then the optimiser step; returns the gradient norm."""
        self.sync_gradients(net)
        norm = grad_norm(net.parameters())
        optimizer.step()
        return norm

    def end_epoch(self) -> None:
        self.schedG.step()
        self.schedD.step()

    def sample_noise(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        return {"z": torch.randn(batch, self.z_dim, generator=generator)}

    def learning_rates(self) -> dict[str, float]:
        return {"lr_g": self.optG.param_groups[0]["lr"], "lr_d": self.optD.param_groups[0]["lr"]}

    def state_dict(self) -> dict:
        return {k: getattr(self, k).state_dict() for k in
                ("netG", "netD", "optG", "optD", "schedG", "schedD")}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            getattr(self, k).load_state_dict(v)
