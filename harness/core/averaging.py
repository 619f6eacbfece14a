"""An exponential moving average of the generator's weights, the generator a run is judged by
when ``train.ema_half_life`` > 0 (a deviation from both StackGAN code bases and from the Lua
GAN-INT-CLS/GAWWN: docs/fidelity.md, "averaged generator").

Why: at the CPU scales a generator's quality swings by 30-100 % from one validation to the next
(docs/captions.md section 9), so no run can be shown to have levelled off and no claim can be
judged. Averaging G's weights over the last steps damps that oscillation (Yazici et al., "The
Unusual Effectiveness of Averaging in GAN Training", ICLR 2019; G_ema in ProGAN, StyleGAN,
BigGAN). Training itself is untouched: the average never feeds back into an update, so the
trained networks keep their bits; only what is validated, sampled and evaluated changes.

The half-life is in steps and, with ``train.ema_rampup``, at most that fraction of the steps
done so far (StyleGAN2-ADA's ramp-up), so that early in a run the average does not drag along
the random initialisation. BatchNorm statistics are copied from the trained generator at each
update, not averaged (StyleGAN's convention; torch's ``AveragedModel(use_buffers=False)``).
"""

from __future__ import annotations

import contextlib

import torch
from torch.optim.swa_utils import AveragedModel

STATE_KEY = "generator_average"


def ema_decay(step: int, half_life: float, rampup: float = 0.0) -> float:
    """The weight the average keeps at update ``step`` (1-based): 0.5 ** (1 / h), with h the
    half-life, capped by ``rampup`` × step when ``rampup`` > 0."""
    h = half_life if rampup <= 0 else min(half_life, rampup * step)
    return 0.5 ** (1.0 / h) if h > 0 else 0.0


class GeneratorAverage:
    """The running average of ``model.netG`` (every family names its trained generator so)."""

    def __init__(self, model, half_life: float, rampup: float = 0.0):
        if half_life <= 0:
            raise ValueError("half_life must be > 0 (0 means: no average; do not build one)")
        self.half_life, self.rampup = float(half_life), float(rampup)
        source = getattr(model.netG, "_orig_mod", model.netG)  # the module under torch.compile
        self.average = AveragedModel(source, avg_fn=self._blend, use_buffers=False)
        self.average.requires_grad_(False)

    def _blend(self, averaged: torch.Tensor, current: torch.Tensor, updates) -> torch.Tensor:
        # ``updates`` counts the earlier updates; this one is update updates + 1.
        return torch.lerp(current, averaged, ema_decay(int(updates) + 1, self.half_life, self.rampup))

    @property
    def generator(self) -> torch.nn.Module:
        return self.average.module

    @property
    def updates(self) -> int:
        return int(self.average.n_averaged)

    def update(self, model) -> None:
        self.average.update_parameters(model.netG)

    def state_dict(self) -> dict:
        return {"netG": self.generator.state_dict(), "updates": self.updates,
                "half_life": self.half_life, "rampup": self.rampup}

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["netG"])
        self.average.n_averaged.fill_(int(state["updates"]))

    @contextlib.contextmanager
    def in_place_of_generator(self, model):
        """``model`` with the averaged generator in ``netG`` (for validation and samples)."""
        trained = model.netG
        model.netG = self.generator
        try:
            yield model
        finally:
            model.netG = trained


def judged_generator_state(checkpoint: dict) -> dict:
    """The generator weights a run is judged by: its average when it kept one, else ``netG``."""
    average = checkpoint.get(STATE_KEY)
    return average["netG"] if average else checkpoint["model"]["netG"]
