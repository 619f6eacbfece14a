"""Typed defaults of a training run. YAML presets and ``key.sub=value`` overrides are merged
over these; unknown keys and wrong types are refused (see ``harness.config.load``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from baselines.gan_int_cls import GanIntClsConfig
from baselines.gawwn import GawwnConfig
from harness.core.optim import OptimConfig
from stackgan.config import ModelConfig


@dataclass
class DataConfig:
    root: str = "data/synthbirds"
    layout: str | None = None  # cub | oxford102 | coco; detected when null
    preprocessing: str = "paper"  # paper (TF) | pytorch | torch7 (Reed's Lua code)
    load_size: int | None = None  # the square images are resized to; null: size·76/64
    # mean4 (TF) | one (PyTorch) | mean4_replace (GAN-INT-CLS) | mean3 (GAN-CLS COCO) |
    # mean4_holdout1 (GAWWN): see harness/data/dataset.py
    text_strategy: str = "mean4"
    # other_class (TF, Reed) | in_batch (PyTorch) | shuffled_text (GAWWN) | none
    wrong_strategy: str = "other_class"
    use_bbox: bool = True
    preresized: str = "auto"
    embeddings_file: str = "char-CNN-RNN-embeddings.pickle"
    batch_size: int = 64
    num_workers: int = 2
    cache_images: bool = False  # keep resized images in memory (per worker): exact, faster
    pin_memory: bool = True  # only used with a GPU
    check: bool = True  # refuse a dataset that fails `data check`


@dataclass
class TrainConfig:
    epochs: int = 600
    max_steps: int | None = None  # stop early after this many steps (CI presets)
    seed: int = 0
    deterministic: bool = True
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    log_every: int = 50  # steps between metric records
    checkpoint_every: int = 1000  # steps between checkpoints (and at the end of each run)
    keep_last: int = 3
    best_metric: str = "loss_g"  # a train_step scalar, smoothed over the logging interval
    best_mode: str = "min"
    sample_every: int = 1000  # steps between sample grids on fixed noise and captions
    sample_captions: int = 8
    validate_every: int = 0  # steps between validations (val.fid) when a validator is given; 0: off
    # Also validate this many times per doubling of steps over the run's last
    # validate_doublings doublings (log-spaced: the points the plateau test fits); 0: off.
    validate_per_doubling: int = 0
    validate_doublings: int = 1
    stage1_run: str | None = None  # Stage-II: a Stage-I run folder or checkpoint file
    autocast_bf16: bool = False
    compile: bool = False
    sync_bn: bool = False  # data-parallel on GPU: one BatchNorm over all ranks' samples
    # Both speed options hold for every family (harness.core.speed). channels_last: StackGAN's
    # step 1.3-1.7x faster on the 2-core CPUs (oneDNN), the baselines' 1.06x; also good on GPU.
    channels_last: bool = True
    # Keep freed memory in the process (glibc's mmap/trim thresholds, harness.core.allocator):
    # the next step reuses it instead of page-faulting it in again. Speed only, same bits.
    retain_freed_memory: bool = True
    # Judge the run by an exponential moving average of G's weights (harness.core.averaging;
    # a documented deviation, docs/fidelity.md): its half-life in steps, 0: off (the originals),
    # and the ramp-up that caps it at this fraction of the steps done (0: no cap).
    ema_half_life: float = 0.0
    ema_rampup: float = 0.0
    # The average's BatchNorm statistics: recompute (from its own batches on fixed training
    # captions, whenever it is judged or saved) or copy (the trained generator's).
    ema_batch_norm: str = "recompute"


@dataclass
class TrackingConfig:
    enabled: bool = True
    uri: str | None = None  # null: MLFLOW_TRACKING_URI, else sqlite:///<runs_dir>/mlflow.db
    experiment: str = "stackgan-bench"
    log_checkpoint: bool = True  # the final checkpoint as an artifact
    parent_run_id: str | None = None  # set by `sweep`: nests this run under the sweep's run


@dataclass
class RunConfig:
    name: str = "run"
    runs_dir: str = "runs"
    # Which section describes the networks: stackgan -> model, gan_int_cls -> baseline,
    # gawwn -> gawwn; a model of your own (module:Class, file.py:Class or an entry-point name,
    # harness.families) -> custom.
    family: str = "stackgan"
    model: ModelConfig = field(default_factory=ModelConfig)
    baseline: GanIntClsConfig = field(default_factory=GanIntClsConfig)
    gawwn: GawwnConfig = field(default_factory=GawwnConfig)
    custom: dict[str, Any] = field(default_factory=dict)  # your model's Config(**custom)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)


# Keys that may change between a run and its resumption: they do not alter the computation.
RESUME_SAFE_KEYS = (
    "train.epochs", "train.max_steps", "train.log_every", "train.checkpoint_every",
    "train.keep_last", "train.sample_every", "train.validate_every", "train.validate_per_doubling",
    "train.validate_doublings", "train.retain_freed_memory", "data.num_workers",
    "data.pin_memory", "tracking.",
    "runs_dir",
)
