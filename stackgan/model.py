"""StackGAN as one object that owns its networks, optimisers, schedulers and train step.

The generic trainer in ``harness`` only calls ``train_step``, ``end_epoch``, ``state_dict`` /
``load_state_dict`` and ``generate``; it knows nothing of GANs.

Randomness inside a step (noise, CA samples) is drawn after seeding torch from
(seed, step, micro-batch): a step's result does not depend on what ran before it, which makes
resumed runs bit-identical without replaying RNG history, and lets N micro-batches in one process
reproduce N data-parallel ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from harness.core import OptimConfig, autocast, grad_norm, memory_format, step_seed
from stackgan.config import ModelConfig
from stackgan.losses import discriminator_loss, generator_adversarial_loss
from stackgan.networks import (
    Stage1Generator,
    Stage2Generator,
    stage1_discriminator,
    stage2_discriminator,
)

# Added to the micro-batch index for the G update's own noise (the paper variant draws new z
# and epsilon there): a stream no D micro-batch reaches.
G_NOISE_STREAM = 1 << 40


@dataclass
class StepOutputs:
    fake: torch.Tensor
    mu: torch.Tensor
    log_scale: torch.Tensor | None
    stage1: torch.Tensor | None
    kl_module: nn.Module


class StackGANModel:
    conditions: tuple[str, ...] = ()  # conditioned on text alone (GAWWN: "box" or "parts")

    def __init__(self, cfg: ModelConfig, optim: OptimConfig | None = None, seed: int = 0,
                 device: str | torch.device = "cpu", stage1_generator: Stage1Generator | None = None,
                 wrong_in_batch: bool | None = None, autocast_bf16: bool = False,
                 channels_last: bool = False):
        errors = cfg.validate()
        if errors:
            raise ValueError("; ".join(errors))
        optim = optim or OptimConfig()
        self.cfg, self.optim_cfg, self.seed = cfg, optim, seed
        self.device = torch.device(device)
        # The PyTorch code shifts within the batch for wrong pairs; the TF code draws other-class
        # images in the data pipeline.
        self.wrong_in_batch = cfg.variant == "pytorch" if wrong_in_batch is None else wrong_in_batch
        self.autocast_bf16 = autocast_bf16
        self.memory_format = memory_format(channels_last)
        if cfg.stage == 1:
            self.netG = Stage1Generator(cfg).to(self.device)
            self.netD = stage1_discriminator(cfg).to(self.device)
            self.stage1 = None
        else:
            if stage1_generator is None:
                raise ValueError("Stage-II needs a trained Stage-I generator")
            self.stage1 = stage1_generator.to(self.device)
            self.stage1.requires_grad_(False)
            self.netG = Stage2Generator(cfg).to(self.device)
            self.netD = stage2_discriminator(cfg).to(self.device)
        self.optG = torch.optim.Adam([p for p in self.netG.parameters() if p.requires_grad],
                                     lr=optim.lr_g, betas=(optim.beta1, optim.beta2), eps=optim.eps)
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=optim.lr_d,
                                     betas=(optim.beta1, optim.beta2), eps=optim.eps)
        self.schedG = torch.optim.lr_scheduler.StepLR(self.optG, optim.lr_decay_epochs,
                                                      optim.lr_decay_factor)
        self.schedD = torch.optim.lr_scheduler.StepLR(self.optD, optim.lr_decay_epochs,
                                                      optim.lr_decay_factor)
        for net in self.networks().values():
            net.to(memory_format=self.memory_format)
        self._set_stage1_mode()
        # Set by a data-parallel runner: averages gradients over ranks before each step, and
        # this rank's index among the micro-batches of a global batch.
        self.grad_sync = None
        self.micro_offset = 0

    # ------------------------------------------------------------------ modes
    def _set_stage1_mode(self) -> None:
        if self.stage1 is not None:
            self.stage1.train(self.cfg.stage1_bn_mode == "train")

    def networks(self) -> dict[str, nn.Module]:
        nets = {"netG": self.netG, "netD": self.netD}
        if self.stage1 is not None:
            nets["stage1G"] = self.stage1
        return nets

    def train(self) -> None:
        self.netG.train()
        self.netD.train()
        self._set_stage1_mode()

    def eval(self) -> None:
        self.netG.eval()
        self.netD.eval()
        if self.stage1 is not None:
            self.stage1.eval()

    def _autocast(self):
        return autocast(self.autocast_bf16, self.device)

    # ------------------------------------------------------------------ forward
    def _generate(self, embedding: torch.Tensor) -> StepOutputs:
        b = embedding.shape[0]
        noise = torch.randn(b, self.cfg.z_dim, device=self.device)
        if self.stage1 is None:
            fake, mu, log_scale = self.netG(embedding, noise)
            return StepOutputs(fake, mu, log_scale, None, self.netG.ca)
        with torch.no_grad():
            stage1_img, mu1, _ = self.stage1(embedding, noise)
        fake, mu, log_scale = self.netG(stage1_img, embedding)
        if mu is None:  # text once: D's PyTorch-style condition falls back to Stage-I's mean
            return StepOutputs(fake, mu1, None, stage1_img, self.stage1.ca)
        return StepOutputs(fake, mu, log_scale, stage1_img, self.netG.ca)

    def sample_noise(self, batch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """All the randomness of one generation: z and the CA noise of each stage."""
        noise = {"z": torch.randn(batch, self.cfg.z_dim, generator=generator)}
        first = self.stage1 if self.stage1 is not None else self.netG
        if first.ca.use_ca:
            noise["eps1"] = first.ca.sample_eps(batch, generator)
        if self.stage1 is not None and self.netG.ca is not None and self.netG.ca.use_ca:
            noise["eps2"] = self.netG.ca.sample_eps(batch, generator)
        return noise

    @torch.no_grad()
    def generate(self, embedding: torch.Tensor, noise: torch.Tensor,
                 eps1: torch.Tensor | None = None, eps2: torch.Tensor | None = None
                 ) -> dict[str, torch.Tensor]:
        """Images for given embeddings and noise; Stage-II also returns its Stage-I input.
        Without ``eps1``/``eps2`` the CA noise comes from torch's global generator."""
        embedding, noise = embedding.to(self.device), noise.to(self.device)
        if self.stage1 is None:
            return {"stage1": self.netG(embedding, noise, eps1)[0]}
        stage1_img = self.stage1(embedding, noise, eps1)[0]
        return {"stage1": stage1_img, "stage2": self.netG(stage1_img, embedding, eps2)[0]}

    def _condition(self, embedding: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        return embedding if self.cfg.variant == "paper" else mu.detach()

    # ------------------------------------------------------------------ training
    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        """One D update then one G update on ``batch``; returns scalars for logging."""
        size = self.cfg.output_size
        n_micro = self.optim_cfg.grad_accumulation
        fmt = self.memory_format
        real_all = batch["images"][size].to(self.device, non_blocking=True, memory_format=fmt)
        emb_all = batch["embedding"].to(self.device, non_blocking=True)
        wrong_all = None
        if not self.wrong_in_batch:
            wrong_all = batch["wrong_images"][size].to(self.device, non_blocking=True,
                                                       memory_format=fmt)
        chunks = list(zip(real_all.chunk(n_micro), emb_all.chunk(n_micro),
                          wrong_all.chunk(n_micro) if wrong_all is not None else [None] * n_micro,
                          strict=True))
        stats = {k: 0.0 for k in ("loss_d", "loss_g", "kl", "d_real", "d_wrong", "d_fake")}
        outs = []

        self.optD.zero_grad(set_to_none=True)
        for k, (real, emb, wrong) in enumerate(chunks):
            torch.manual_seed(step_seed(self.seed, step, self.micro_offset * n_micro + k))
            with self._autocast():
                out = self._generate(emb)
                outs.append(out)
                cond = self._condition(emb, out.mu)
                if wrong is None:
                    # In-batch shift, as StackGAN-Pytorch does it: the real images' features
                    # 0..B-2 with conditions 1..B-1, encoded once (the wrong pairs' encoder
                    # pass and its BatchNorm statistics are the real batch's).
                    h_real = self.netD.encode(real)
                    real_c, real_u = self.netD.logits(h_real, cond)
                    wrong_c, _ = self.netD.logits(h_real[:-1], cond[1:], unconditional=False)
                else:
                    real_c, real_u = self.netD(real, cond)
                    wrong_c, _ = self.netD(wrong, cond)
                fake_c, fake_u = self.netD(out.fake.detach(), cond)
                loss_d = discriminator_loss(real_c, wrong_c, fake_c, real_u, fake_u)
            (loss_d / n_micro).backward()
            stats["loss_d"] += loss_d.item() / n_micro
            stats["d_real"] += torch.sigmoid(real_c.float()).mean().item() / n_micro
            stats["d_wrong"] += torch.sigmoid(wrong_c.float()).mean().item() / n_micro
            stats["d_fake"] += torch.sigmoid(fake_c.float()).mean().item() / n_micro
        if self.grad_sync is not None:
            self.grad_sync(self.netD)
        stats["grad_norm_d"] = grad_norm(self.netD.parameters())
        self.optD.step()

        self.optG.zero_grad(set_to_none=True)
        # G's loss differentiated for G's parameters only: the official code also computes D's
        # weight gradients here and discards them (the next D update zeroes them), about a third
        # of the G update's backward. G's gradients are the same either way.
        g_params = [p for p in self.netG.parameters() if p.requires_grad]
        for k, ((_, emb, _), out) in enumerate(zip(chunks, outs, strict=True)):
            if self.cfg.fresh_g_noise:  # TF: the G update samples its own z and epsilon
                torch.manual_seed(step_seed(self.seed, step,
                                            G_NOISE_STREAM + self.micro_offset * n_micro + k))
                with self._autocast():
                    out = self._generate(emb)
            with self._autocast():
                fake_c, fake_u = self.netD(out.fake, self._condition(emb, out.mu))
                kl = out.kl_module.kl(out.mu, out.log_scale) if out.log_scale is not None else \
                    out.fake.new_zeros(())
                loss_g = generator_adversarial_loss(fake_c, fake_u) + self.cfg.kl_weight * kl
            (loss_g / n_micro).backward(inputs=g_params)
            stats["loss_g"] += loss_g.item() / n_micro
            stats["kl"] += kl.detach().item() / n_micro
        if self.grad_sync is not None:
            self.grad_sync(self.netG)
        stats["grad_norm_g"] = grad_norm(g_params)
        self.optG.step()
        stats["lr_g"] = self.optG.param_groups[0]["lr"]
        stats["lr_d"] = self.optD.param_groups[0]["lr"]
        return stats

    def end_epoch(self) -> None:
        self.schedG.step()
        self.schedD.step()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        state = {"netG": self.netG.state_dict(), "netD": self.netD.state_dict(),
                 "optG": self.optG.state_dict(), "optD": self.optD.state_dict(),
                 "schedG": self.schedG.state_dict(), "schedD": self.schedD.state_dict()}
        if self.stage1 is not None:
            # Its BN running statistics move while Stage-II trains in train mode (as in both
            # official code bases): the Stage-II checkpoint carries the Stage-I it ran with.
            state["stage1G"] = self.stage1.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if self.stage1 is not None and "stage1G" in state:
            self.stage1.load_state_dict(state["stage1G"])
        self.netG.load_state_dict(state["netG"])
        self.netD.load_state_dict(state["netD"])
        self.optG.load_state_dict(state["optG"])
        self.optD.load_state_dict(state["optD"])
        self.schedG.load_state_dict(state["schedG"])
        self.schedD.load_state_dict(state["schedD"])
