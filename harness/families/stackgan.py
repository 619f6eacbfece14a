"""StackGAN (Stage-I, Stage-II on a frozen Stage-I; the paper's and the PyTorch code's variants):
the ``model`` section."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

from harness.checkpoints import find_run_checkpoint, load_checkpoint
from harness.core.averaging import judged_generator_state
from harness.errors import UserError
from harness.families.base import Family

# Stage-I sizes that a Stage-II config must agree on to load a Stage-I generator.
_STAGE1_KEYS = ("variant", "z_dim", "text_dim", "ca_dim", "gf_dim", "stage1_size", "use_ca")


class StackGANFamily(Family):
    name = "stackgan"

    def section(self, cfg):
        return cfg.model

    def config_errors(self, cfg) -> list[str]:
        return cfg.model.validate()  # micro-batches (grad_accumulation) are StackGAN's own

    def variant(self, cfg) -> str:
        return cfg.model.variant

    def image_size(self, cfg) -> int:
        return cfg.model.output_size

    def stage(self, cfg) -> int:
        return cfg.model.stage

    def stage1_run(self, cfg) -> str | None:
        return cfg.train.stage1_run or None

    def provenance(self, cfg) -> dict:
        # The build has loaded and checked this Stage-I already; the tag needs only its file.
        return ({"stage1_checkpoint": str(find_run_checkpoint(cfg.train.stage1_run))}
                if cfg.model.stage == 2 else {})

    def build(self, cfg, device, stage1_state=None):
        stage1 = None
        if cfg.model.stage == 2:
            stage1 = (stage1_generator_from_state(cfg, stage1_state) if stage1_state is not None
                      else load_stage1_generator(cfg)[0])
        return self._model(cfg, device, stage1)

    def build_untrained(self, cfg, device):
        stage1 = None
        if cfg.model.stage == 2:
            from stackgan.networks import Stage1Generator

            stage1 = Stage1Generator(replace(cfg.model, stage=1))
        return self._model(cfg, device, stage1)

    @staticmethod
    def _model(cfg, device, stage1):
        from stackgan.model import StackGANModel

        return StackGANModel(cfg.model, cfg.optim, seed=cfg.train.seed, device=device,
                             stage1_generator=stage1,
                             wrong_in_batch=cfg.data.wrong_strategy == "in_batch",
                             autocast_bf16=cfg.train.autocast_bf16,
                             channels_last=cfg.train.channels_last)


def load_stage1_generator(cfg):
    """The Stage-I generator of the run that ``train.stage1_run`` names, and its checkpoint."""
    from stackgan.config import ModelConfig
    from stackgan.networks import Stage1Generator

    if not cfg.train.stage1_run:
        raise UserError("a Stage-II run needs train.stage1_run=<Stage-I run folder or checkpoint>")
    ckpt_path = find_run_checkpoint(cfg.train.stage1_run)
    state = load_checkpoint(ckpt_path)
    stage1_cfg = ModelConfig(**state["config"]["model"])
    if stage1_cfg.stage != 1:
        raise UserError(f"{ckpt_path}: is a Stage-{stage1_cfg.stage} checkpoint, not Stage-I")
    mismatched = [f"model.{k}: Stage-I {getattr(stage1_cfg, k)!r} vs {getattr(cfg.model, k)!r}"
                  for k in _STAGE1_KEYS if getattr(stage1_cfg, k) != getattr(cfg.model, k)]
    if mismatched:
        raise UserError(f"{ckpt_path}: Stage-I does not fit this Stage-II config: "
                        + "; ".join(mismatched))
    gen = Stage1Generator(stage1_cfg)
    # The Stage-I as it is judged: its weight average when the run kept one.
    gen.load_state_dict(judged_generator_state(state))
    return gen, Path(ckpt_path)


def stage1_generator_from_state(cfg, state: dict):
    """The Stage-I a Stage-II checkpoint carries (its architecture follows the Stage-II config,
    which must agree with Stage-I on every key that shapes it)."""
    from stackgan.config import ModelConfig
    from stackgan.networks import Stage1Generator

    gen = Stage1Generator(ModelConfig(**{**asdict(cfg.model), "stage": 1}))
    gen.load_state_dict(state)
    return gen
