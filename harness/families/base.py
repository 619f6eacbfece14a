"""How the generic layers (config checks, build, trainer, summary, executors) see a model family.

A ``Family`` answers every question those layers used to answer by comparing family names: which
config section describes the networks, what the model takes besides text, how to build it. A model
class of a user's own gets ``ModelClassFamily``, whose section is ``Config(**custom)``; the
built-in families are ``Family`` subclasses because their sections are typed fields of the run
config. Both are found through the same registry (``harness.families``).
"""

from __future__ import annotations

import torch

from harness.errors import UserError


class Family:
    name: str = ""

    def section(self, cfg):
        """The config section that describes the family's networks."""
        raise NotImplementedError

    def section_errors(self, cfg) -> list[str]:
        section = self.section(cfg)
        return section.validate() if hasattr(section, "validate") else []

    def config_errors(self, cfg) -> list[str]:
        """What in ``cfg`` this family cannot run (besides the range checks every config gets)."""
        errors = self.section_errors(cfg)
        if cfg.optim.grad_accumulation != 1:
            errors.append(f"optim.grad_accumulation: the {cfg.family} step has no micro-batches")
        return errors

    def variant(self, cfg) -> str:
        return str(getattr(self.section(cfg), "variant", cfg.family.rpartition(":")[2]))

    def image_size(self, cfg) -> int:
        return self.section(cfg).image_size

    def z_dim(self, cfg) -> int:
        return self.section(cfg).z_dim

    def text_dim(self, cfg) -> int:
        return self.section(cfg).text_dim

    def conditions(self, cfg) -> tuple[str, ...]:
        """What the model takes besides text and noise, by the batch keys that carry it."""
        return ()

    def stage(self, cfg) -> int:
        return 1

    def stage1_run(self, cfg) -> str | None:
        """The run whose frozen first stage this one trains on (its jobs wait for it)."""
        return None

    def provenance(self, cfg) -> dict:
        """Tags a new run records besides the generic ones."""
        return {}

    def build(self, cfg, device: torch.device, stage1_state: dict | None = None):
        """The model, fresh. ``stage1_state``: a frozen first stage from the run's own checkpoint."""
        raise NotImplementedError

    def build_untrained(self, cfg, device: torch.device):
        """The model with fresh weights everywhere, for counts and timings (needs no other run)."""
        return self.build(cfg, device)

    def synthetic_conditions(self, cfg, batch: int, generator: torch.Generator) -> dict:
        """Random conditions of the right shapes for a synthetic batch (summary, benchmarks)."""
        return {}


class ModelClassFamily(Family):
    """A model class of the user's own (``module:Class``, ``file.py:Class``, an entry point):
    its hyperparameters are ``cls.Config(**cfg.custom)``."""

    def __init__(self, name: str, cls: type):
        self.name, self.model_class = name, cls

    def section(self, cfg):
        try:
            section = self.model_class.Config(**cfg.custom)
        except TypeError as exc:
            raise UserError(f"custom: does not fit {cfg.family}'s Config ({exc})") from None
        errors = section.validate() if hasattr(section, "validate") else []
        if errors:
            raise UserError("custom: " + "; ".join(errors))
        return section

    def section_errors(self, cfg) -> list[str]:
        self.section(cfg)  # raises with the `custom:` errors
        return []

    def conditions(self, cfg) -> tuple[str, ...]:
        return tuple(getattr(self.model_class, "conditions", ()))

    def build(self, cfg, device: torch.device, stage1_state: dict | None = None):
        return self.model_class(self.section(cfg), cfg.optim, seed=cfg.train.seed, device=device)
