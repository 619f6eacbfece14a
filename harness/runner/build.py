"""Builds the dataset and the model of a run from its config."""

from __future__ import annotations

from pathlib import Path

import torch

from harness.config.load import from_yaml_file
from harness.config.schema import RunConfig
from harness.data.dataset import DataOptions, TextImageDataset
from harness.errors import UserError
from harness.runner.checkpoint import CheckpointStore, load_checkpoint
from stackgan.config import ModelConfig
from stackgan.model import StackGANModel
from stackgan.networks import Stage1Generator

# Stage-I sizes that a Stage-II config must agree on to load a Stage-I generator.
_STAGE1_KEYS = ("variant", "z_dim", "text_dim", "ca_dim", "gf_dim", "stage1_size", "use_ca")


def family_section(cfg: RunConfig):
    """The config section that describes the networks of the run's model family (for a model of
    the user's own: its ``Config`` built from the ``custom`` section)."""
    builtin = {"stackgan": cfg.model, "gan_int_cls": cfg.baseline, "gawwn": cfg.gawwn}
    if cfg.family in builtin:
        return builtin[cfg.family]
    from harness.runner.protocol import resolve_family

    cls = resolve_family(cfg.family)
    try:
        section = cls.Config(**cfg.custom)
    except TypeError as exc:
        raise UserError(f"custom: does not fit {cfg.family}'s Config ({exc})") from None
    errors = section.validate() if hasattr(section, "validate") else []
    if errors:
        raise UserError("custom: " + "; ".join(errors))
    return section


def variant_of(cfg: RunConfig) -> str:
    """The family's variant: StackGAN paper|pytorch, GAN-INT-CLS's four, GAWWN bbox|keypoints;
    a user's model: its Config's ``variant`` if it has one, else its class name."""
    builtin = {"stackgan": lambda: cfg.model.variant, "gan_int_cls": lambda: cfg.baseline.variant,
               "gawwn": lambda: cfg.gawwn.conditioning}
    if cfg.family in builtin:
        return builtin[cfg.family]()
    return str(getattr(family_section(cfg), "variant", cfg.family.rpartition(":")[2]))


def image_size(cfg: RunConfig) -> int:
    return cfg.model.output_size if cfg.family == "stackgan" else family_section(cfg).image_size


def z_dim(cfg: RunConfig) -> int:
    return family_section(cfg).z_dim


def conditions_of(cfg: RunConfig) -> tuple[str, ...]:
    """What a run's model takes besides text and noise, by the batch keys that carry it."""
    if cfg.family not in ("stackgan", "gan_int_cls", "gawwn"):
        from harness.runner.protocol import resolve_family

        return tuple(getattr(resolve_family(cfg.family), "conditions", ()))
    if cfg.family != "gawwn":
        return ()
    return ("box",) if cfg.gawwn.conditioning == "bbox" else ("parts",)


def model_conditions(model) -> tuple[str, ...]:
    return tuple(getattr(model, "conditions", ()))


def data_options(cfg: RunConfig, split: str = "train", augment: bool = True) -> DataOptions:
    sizes = (image_size(cfg),)
    conditions = conditions_of(cfg)
    return DataOptions(
        root=cfg.data.root, split=split, layout=cfg.data.layout, image_sizes=sizes,
        preprocessing=cfg.data.preprocessing, load_size=cfg.data.load_size,
        text_strategy=cfg.data.text_strategy,
        wrong_strategy=cfg.data.wrong_strategy if augment else "none", augment=augment,
        use_bbox=cfg.data.use_bbox, preresized=cfg.data.preresized,
        embeddings_file=cfg.data.embeddings_file, cache_images=cfg.data.cache_images,
        with_boxes="box" in conditions, with_parts="parts" in conditions)


def build_dataset(cfg: RunConfig, split: str = "train", augment: bool = True) -> TextImageDataset:
    return TextImageDataset(data_options(cfg, split, augment))


def find_run_checkpoint(run_or_file: str | Path) -> Path:
    """A checkpoint file, or a run folder's final/latest checkpoint."""
    path = Path(run_or_file)
    if path.is_file():
        return path
    store = CheckpointStore(path / "checkpoints")
    final = path / "checkpoints" / "final.pt"
    if final.exists():
        return final
    latest = store.latest()
    if latest is None:
        raise UserError(f"{path}: no checkpoint found (expected a run folder or a .pt file)")
    return latest


def load_stage1_generator(cfg: RunConfig) -> tuple[Stage1Generator, Path]:
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
    gen.load_state_dict(state["model"]["netG"])
    return gen, ckpt_path


def stage1_generator_from_state(cfg: RunConfig, state: dict) -> Stage1Generator:
    """The Stage-I a Stage-II checkpoint carries (its architecture follows the Stage-II config,
    which must agree with Stage-I on every key that shapes it)."""
    from dataclasses import asdict

    gen = Stage1Generator(ModelConfig(**{**asdict(cfg.model), "stage": 1}))
    gen.load_state_dict(state)
    return gen


def build_model(cfg: RunConfig, device: torch.device, stage1_state: dict | None = None):
    """``stage1_state``: a Stage-II's frozen Stage-I from its own checkpoint, instead of loading
    the run that ``train.stage1_run`` names."""
    if cfg.family not in ("stackgan", "gan_int_cls", "gawwn"):
        from harness.runner.protocol import resolve_family

        return resolve_family(cfg.family)(family_section(cfg), cfg.optim, seed=cfg.train.seed,
                                          device=device)
    if cfg.family == "gan_int_cls":
        from baselines.gan_int_cls import GanIntClsModel

        return GanIntClsModel(cfg.baseline, cfg.optim, seed=cfg.train.seed, device=device)
    if cfg.family == "gawwn":
        from baselines.gawwn import GawwnModel

        return GawwnModel(cfg.gawwn, cfg.optim, seed=cfg.train.seed, device=device,
                          wrong_pairs=cfg.data.wrong_strategy)
    stage1 = None
    if cfg.model.stage == 2:
        stage1 = (stage1_generator_from_state(cfg, stage1_state) if stage1_state is not None
                  else load_stage1_generator(cfg)[0])
    return StackGANModel(cfg.model, cfg.optim, seed=cfg.train.seed, device=device,
                         stage1_generator=stage1,
                         wrong_in_batch=cfg.data.wrong_strategy == "in_batch",
                         autocast_bf16=cfg.train.autocast_bf16,
                         channels_last=cfg.train.channels_last)


def load_run(run_dir: str | Path, device: str | torch.device = "cpu",
             checkpoint: str | Path | None = None) -> tuple[RunConfig, object, dict]:
    """A trained run's config and model (weights from its final or latest checkpoint)."""
    run_dir = Path(run_dir)
    cfg = from_yaml_file(run_dir / "config.yaml")
    ckpt_path = Path(checkpoint) if checkpoint else find_run_checkpoint(run_dir)
    state = load_checkpoint(ckpt_path)
    model = build_model(cfg, torch.device(device), stage1_state=state["model"].get("stage1G"))
    model.load_state_dict(state["model"])
    model.eval()
    return cfg, model, state
