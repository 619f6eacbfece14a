"""The model interface the harness drives, and where a config's ``family`` finds the class.

Every model family (StackGAN, GAN-INT-CLS, GAWWN, yours) is one object with this interface; the
trainer, the sampler, the evaluation, the experiments and the gate use nothing else:

- ``Model(config, optim, seed, device)``: ``config`` is the family's section of the run config
  (for your own model: ``Config(**run_config.custom)``, its own dataclass), ``optim`` the shared
  ``OptimConfig`` (Adam learning rates, betas, step decay);
- ``z_dim: int`` and ``image_size: int`` (the size of the images it generates);
- ``conditions: tuple[str, ...]``: what it takes besides text and noise, by batch key
  (``()``; GAWWN ``("box",)`` or ``("parts",)``);
- ``stage1``: a frozen first stage whose images the sampler also writes, or ``None``;
- ``networks() -> dict[str, nn.Module]``; ``train()`` / ``eval()``;
- ``train_step(batch, step) -> dict[str, float]``: one update on a batch (``images[size]``,
  ``embedding``, ``wrong_images[size]``, the conditions); the dict holds at least ``loss_d`` and
  ``loss_g``; randomness drawn after seeding from ``(seed, step)`` keeps resumed runs exact;
- ``end_epoch()``: learning-rate schedules;
- ``sample_noise(batch, generator) -> dict`` (``z``, and any other noise ``generate`` takes);
- ``generate(embedding, z, *noise, **conditions) -> {"stage1": images}`` (and ``"stage2"``) in
  [-1, 1], with torch.no_grad;
- ``state_dict()`` / ``load_state_dict(state)``: everything a resumed run needs;
- ``grad_sync`` and ``micro_offset`` attributes, set by a data-parallel run (``None`` and 0).

``baselines.common.OneStageModel`` implements all of it but the two networks, ``train_step`` and
``generate``; ``examples/text_dcgan`` is a complete model of a user's own.

A config names its family by one of: a built-in name (``stackgan``, ``gan_int_cls``,
``gawwn``); ``package.module:Class`` (importable); ``path/to/file.py:Class`` (relative to the
working folder); or a name registered in the entry-point group ``stackgan_bench.models`` (a
package's ``[project.entry-points."stackgan_bench.models"] mygan = "mypkg.models:MyGAN"``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from harness.errors import UserError

BUILTIN = ("stackgan", "gan_int_cls", "gawwn")
ENTRY_POINT_GROUP = "stackgan_bench.models"
REQUIRED = ("networks", "train", "eval", "train_step", "end_epoch", "sample_noise", "generate",
            "state_dict", "load_state_dict")


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


def is_builtin(family: str) -> bool:
    return family in BUILTIN


def _from_entry_points(name: str) -> str | None:
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.value
    return None


@lru_cache(maxsize=32)
def resolve_family(family: str) -> type:
    """The class a non-built-in ``family`` names, checked against the interface."""
    target = family if ":" in family else _from_entry_points(family)
    if target is None:
        raise UserError(f"family: {family!r} is not one of {BUILTIN}, not module:Class or "
                        f"file.py:Class, and no installed package registers it in the "
                        f"{ENTRY_POINT_GROUP!r} entry points")
    where, _, name = target.rpartition(":")
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.exists():
                raise UserError(f"family: {path} does not exist (paths are relative to {Path.cwd()})")
            spec = importlib.util.spec_from_file_location(f"stackgan_bench_user_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's module may fail in any way
        raise UserError(f"family: cannot import {where!r} ({type(exc).__name__}: {exc})") from exc
    cls = getattr(module, name, None)
    if cls is None:
        raise UserError(f"family: {where!r} has no {name!r}")
    missing = [m for m in REQUIRED if not callable(getattr(cls, m, None))]
    if not hasattr(cls, "Config"):
        missing.append("Config (the dataclass of its hyperparameters)")
    if missing:
        raise UserError(f"family: {target} lacks what the harness calls: {', '.join(missing)} "
                        "(see harness/runner/protocol.py)")
    return cls
