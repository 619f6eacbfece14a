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
the random initialisation.

BatchNorm statistics: the average's weights are not the trained generator's, so the trained
generator's running statistics do not fit them. Measured on the claims scale (Stage-I 32 px and
GAN-INT-CLS, 3 seeds each, the same trained networks judged both ways): with the statistics
copied from the trained generator at each update (``train.ema_batch_norm=copy``, StyleGAN's
convention, which has no BatchNorm in G) the final FD got worse on 2 of 6 runs (0.64 -> 1.38,
0.85 -> 1.34) while the attribute gain rose on 5. ``recompute`` (the default) instead sets them,
each time the average is judged or saved, to the mean batch statistics of the average itself
over a fixed set of training captions with fixed noise (torch's ``swa_utils.update_bn`` does
the same for an input loader; G takes captions, noise and conditions, hence this loop).
"""

from __future__ import annotations

import contextlib

import torch
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim.swa_utils import AveragedModel

from harness.core.generation import generate_batch

STATE_KEY = "generator_average"
BATCH_NORM_MODES = ("recompute", "copy")


def ema_decay(step: int, half_life: float, rampup: float = 0.0) -> float:
    """The weight the average keeps at update ``step`` (1-based): 0.5 ** (1 / h), with h the
    half-life, capped by ``rampup`` × step when ``rampup`` > 0."""
    h = half_life if rampup <= 0 else min(half_life, rampup * step)
    return 0.5 ** (1.0 / h) if h > 0 else 0.0


class GeneratorAverage:
    """The running average of ``model.netG`` (every family names its trained generator so)."""

    def __init__(self, model, half_life: float, rampup: float = 0.0, batch_norm: str = "copy",
                 calibration: dict | None = None):
        """``batch_norm``: ``recompute`` sets the average's BatchNorm statistics from its own
        batches of ``calibration`` ({embeddings, seeds, conditions, batch_size}: fixed inputs,
        so that a resumed run recomputes the same values) whenever it is judged or saved;
        ``copy`` keeps the trained generator's."""
        if half_life <= 0:
            raise ValueError("half_life must be > 0 (0 means: no average; do not build one)")
        if batch_norm not in BATCH_NORM_MODES:
            raise ValueError(f"batch_norm {batch_norm!r}: one of {BATCH_NORM_MODES}")
        if batch_norm == "recompute" and not calibration:
            raise ValueError("batch_norm='recompute' needs calibration inputs")
        self.batch_norm, self.calibration = batch_norm, calibration
        # Whether the BatchNorm statistics are already the average's own for its current weights:
        # a run's last step validates, samples and saves the same average, which then needs one
        # recomputation, not four. An update or a load replaces the statistics with G's.
        self._statistics_recomputed = False
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
        self._statistics_recomputed = False

    def recompute_batch_norm(self, model) -> None:
        """The average's BatchNorm running statistics as the mean over the calibration batches
        of its own batch statistics (momentum None: a cumulative mean, as ``update_bn``), with
        the rest of ``model`` (a frozen Stage-I) in eval mode, as when it is judged. Draws no
        number from torch's global generator, so training is untouched."""
        norms = [m for m in self.generator.modules() if isinstance(m, _BatchNorm)]
        if not norms or self.batch_norm != "recompute" or self._statistics_recomputed:
            return
        modules = [m for net in [*model.networks().values(), self.generator] for m in net.modules()]
        was_training = [m.training for m in modules]
        momenta = [m.momentum for m in norms]
        model.eval()
        self.generator.eval()
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        c = self.calibration
        try:
            with self.in_place_of_generator(model) as judged:
                for start in range(0, len(c["embeddings"]), c["batch_size"]):
                    part = slice(start, start + c["batch_size"])
                    generate_batch(judged, c["embeddings"][part], c["seeds"][part],
                                   {k: v[part] for k, v in c["conditions"].items()})
        finally:
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum
            for m, training in zip(modules, was_training, strict=True):
                m.training = training
        self._statistics_recomputed = True

    def state_dict(self, model=None) -> dict:
        """With ``model``, the BatchNorm statistics are recomputed first (``recompute``), so
        that whoever loads the average judges it with its own statistics."""
        if model is not None:
            self.recompute_batch_norm(model)
        return {"netG": self.generator.state_dict(), "updates": self.updates,
                "half_life": self.half_life, "rampup": self.rampup}

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["netG"])
        self.average.n_averaged.fill_(int(state["updates"]))
        self._statistics_recomputed = False

    @contextlib.contextmanager
    def judged_in_place_of_generator(self, model):
        """``model`` with the averaged generator in ``netG``, its BatchNorm statistics
        recomputed first (for validation and samples)."""
        self.recompute_batch_norm(model)
        with self.in_place_of_generator(model) as judged:
            yield judged

    @contextlib.contextmanager
    def in_place_of_generator(self, model):
        """``model`` with the averaged generator in ``netG``."""
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
