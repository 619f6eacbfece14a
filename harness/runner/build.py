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
    """The config section that describes the networks of the run's model family."""
    return {"stackgan": cfg.model, "gan_int_cls": cfg.baseline, "gawwn": cfg.gawwn}[cfg.family]


def image_size(cfg: RunConfig) -> int:
    return cfg.model.output_size if cfg.family == "stackgan" else family_section(cfg).image_size


def z_dim(cfg: RunConfig) -> int:
    return family_section(cfg).z_dim


def data_options(cfg: RunConfig, split: str = "train", augment: bool = True) -> DataOptions:
    sizes = (image_size(cfg),)
    return DataOptions(
        root=cfg.data.root, split=split, layout=cfg.data.layout, image_sizes=sizes,
        preprocessing=cfg.data.preprocessing, text_strategy=cfg.data.text_strategy,
        wrong_strategy=cfg.data.wrong_strategy if augment else "none", augment=augment,
        use_bbox=cfg.data.use_bbox, preresized=cfg.data.preresized,
        embeddings_file=cfg.data.embeddings_file, cache_images=cfg.data.cache_images,
        with_boxes=cfg.family == "gawwn")


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


def build_model(cfg: RunConfig, device: torch.device):
    if cfg.family == "gan_int_cls":
        from baselines.gan_int_cls import GanIntClsModel

        return GanIntClsModel(cfg.baseline, cfg.optim, seed=cfg.train.seed, device=device)
    if cfg.family == "gawwn":
        from baselines.gawwn import GawwnModel

        return GawwnModel(cfg.gawwn, cfg.optim, seed=cfg.train.seed, device=device)
    stage1 = load_stage1_generator(cfg)[0] if cfg.model.stage == 2 else None
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
    model = build_model(cfg, torch.device(device))
    model.load_state_dict(state["model"])
    model.eval()
    return cfg, model, state
