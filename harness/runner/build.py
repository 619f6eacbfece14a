"""Builds the dataset and the model of a run from its config; what depends on the model family
is asked of its ``Family`` (``harness.families``)."""

from __future__ import annotations

from pathlib import Path

import torch

from harness.checkpoints import find_run_checkpoint, load_checkpoint
from harness.config.load import from_yaml_file
from harness.config.schema import RunConfig
from harness.core.averaging import STATE_KEY as AVERAGE_KEY
from harness.core.averaging import judged_generator_state
from harness.data.dataset import DataOptions, TextImageDataset
from harness.families import family_of


def model_conditions(model) -> tuple[str, ...]:
    return tuple(getattr(model, "conditions", ()))


def data_options(cfg: RunConfig, split: str = "train", augment: bool = True) -> DataOptions:
    family = family_of(cfg)
    conditions = family.conditions(cfg)
    return DataOptions(
        root=cfg.data.root, split=split, layout=cfg.data.layout, image_sizes=(family.image_size(cfg),),
        preprocessing=cfg.data.preprocessing, load_size=cfg.data.load_size,
        text_strategy=cfg.data.text_strategy,
        wrong_strategy=cfg.data.wrong_strategy if augment else "none", augment=augment,
        use_bbox=cfg.data.use_bbox, preresized=cfg.data.preresized,
        embeddings_file=cfg.data.embeddings_file, cache_images=cfg.data.cache_images,
        with_boxes="box" in conditions, with_parts="parts" in conditions)


def build_dataset(cfg: RunConfig, split: str = "train", augment: bool = True) -> TextImageDataset:
    return TextImageDataset(data_options(cfg, split, augment))


def build_model(cfg: RunConfig, device: torch.device, stage1_state: dict | None = None):
    """``stage1_state``: a Stage-II's frozen Stage-I from its own checkpoint, instead of loading
    the run that ``train.stage1_run`` names."""
    return family_of(cfg).build(cfg, device, stage1_state)


def load_run(run_dir: str | Path, device: str | torch.device = "cpu",
             checkpoint: str | Path | None = None) -> tuple[RunConfig, object, dict]:
    """A trained run's config and model (weights from its final or latest checkpoint), with
    the generator the run is judged by: its weight average when it kept one
    (``train.ema_half_life``), else the trained ``netG``."""
    run_dir = Path(run_dir)
    cfg = from_yaml_file(run_dir / "config.yaml")
    ckpt_path = Path(checkpoint) if checkpoint else find_run_checkpoint(run_dir)
    state = load_checkpoint(ckpt_path)
    model = build_model(cfg, torch.device(device), stage1_state=state["model"].get("stage1G"))
    model.load_state_dict(state["model"])
    if AVERAGE_KEY in state:
        model.netG.load_state_dict(judged_generator_state(state))
    model.eval()
    return cfg, model, state
