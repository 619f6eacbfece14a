"""The model interface the harness drives.

Every model family (StackGAN, GAN-INT-CLS, GAWWN, yours) is one object with this interface; the
trainer, the sampler, the evaluation, the experiments and the gate use nothing else:

- ``Model(config, optim, seed, device)``: ``config`` is the family's section of the run config
  (for your own model: ``Config(**run_config.custom)``, its own dataclass), ``optim`` the shared
  ``OptimConfig`` (Adam learning rates, betas, step decay);
- ``z_dim: int`` and ``image_size: int`` (the size of the images it generates);
- ``conditions: tuple[str, ...]``: what it takes besides text and noise, by batch key
  (``()``; GAWWN ``("box",)`` or ``("parts",)``);
- ``stage1``: a frozen first stage whose images the sampler also writes, or ``None``;
- ``networks() -> dict[str, nn.Module]``: every network, keyed by the attribute that holds it;
  the trained generator and discriminator are ``netG`` and ``netD`` (``TRAINED_NETWORKS``: the
  trainer compiles them, the summary counts them); ``train()`` / ``eval()``;
- ``train_step(batch, step) -> dict[str, float]``: one update on a batch (``images[size]``,
  ``embedding``, ``wrong_images[size]``, the conditions); the dict holds at least ``loss_d`` and
  ``loss_g``; randomness drawn after seeding from ``step_seed(seed, step, micro)`` keeps resumed
  runs exact;
- ``end_epoch()``: learning-rate schedules;
- ``sample_noise(batch, generator) -> dict``: all the randomness of one generation, ``z`` first,
  then any other noise stream (StackGAN: ``eps1``, ``eps2``, the CA noise of each stage);
- ``generate(embedding, z, *other_noise, **conditions) -> {"stage1": images}`` (and
  ``"stage2"``) in [-1, 1], with torch.no_grad: the noise streams arrive positionally, in the
  order ``sample_noise`` returns them (``generate_batch`` does this);
- ``state_dict()`` / ``load_state_dict(state)``: everything a resumed run needs;
- ``grad_sync`` and ``micro_offset`` attributes, set by a data-parallel run (``None`` and 0).

``baselines.common.OneStageModel`` implements all of it but the two networks, ``train_step`` and
``generate``; ``examples/text_dcgan`` is a complete model of a user's own. How a config names its
family, built-in or yours, is in ``harness.families``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

REQUIRED = ("networks", "train", "eval", "train_step", "end_epoch", "sample_noise", "generate",
            "state_dict", "load_state_dict")
TRAINED_NETWORKS = ("netG", "netD")


@runtime_checkable
class TextToImageModel(Protocol):
    z_dim: int
    conditions: tuple[str, ...]
    stage1: Any

    def networks(self) -> dict: ...
    def train(self) -> None: ...
    def eval(self) -> None: ...
    def train_step(self, batch: dict, step: int) -> dict[str, float]: ...
    def end_epoch(self) -> None: ...
    def sample_noise(self, batch: int, generator) -> dict: ...
    def generate(self, embedding, noise, *args, **conditions) -> dict: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...
