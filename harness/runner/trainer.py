"""The generic training loop: data order, checkpoints, resume, signals, logging, tracking.

It drives any model object with ``train_step(batch, step) -> dict``, ``end_epoch()``,
``state_dict()``/``load_state_dict()``, ``networks()`` and ``generate()``; the GAN logic lives
in the model.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from harness.atomic import write_text_atomic
from harness.checkpoints import CheckpointStore, load_checkpoint, save_checkpoint
from harness.config.load import config_differences, flatten, from_yaml_file, to_dict, to_yaml
from harness.config.schema import RunConfig
from harness.core import speed
from harness.core.allocator import retain_freed_memory
from harness.core.averaging import STATE_KEY as AVERAGE_KEY
from harness.core.averaging import GeneratorAverage
from harness.core.interface import TRAINED_NETWORKS
from harness.data.check import check_dataset
from harness.data.sources import dataset_fingerprint
from harness.errors import UserError
from harness.families import family_of
from harness.locks import LOCK_NAME
from harness.runner import distributed as ddp
from harness.runner.batch_order import ResumableBatchSampler
from harness.runner.build import build_dataset, build_model, model_conditions
from harness.runner.run_logger import RunLogger
from harness.runner.seeding import (
    code_version,
    library_versions,
    resolve_device,
    restore_rng_states,
    rng_states,
    seed_all,
    set_determinism,
    worker_init_fn,
)


class TrainingDiverged(UserError):
    """A loss became NaN or infinite."""


class _StopRequested:
    """Turns SIGTERM/SIGINT into a flag the loop checks after each step."""

    def __init__(self):
        self.signal: int | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: no handlers, no graceful stop
                pass
        return self

    def _handle(self, signum, frame):
        if self.signal is not None:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class RunResult:
    run_dir: Path
    steps: int
    stopped_by_signal: int | None
    final_stats: dict


def validation_steps(total: int, every: int, per_doubling: int = 0, doublings: int = 1) -> set[int]:
    """The steps a run validates at: every ``every`` steps and the last, and ``per_doubling``
    log-spaced steps per doubling over the last ``doublings`` doublings,
    round(total / 2**(k / per_doubling)) — evenly spaced in log(step), where the plateau test
    fits its slope, whatever the run's length."""
    steps = set(range(every, total + 1, every)) | {total} if every > 0 else set()
    if per_doubling > 0:
        steps |= {max(1, round(total / 2 ** (k / per_doubling)))
                  for k in range(per_doubling * doublings + 1)}
    return steps


def _fixed_sample_inputs(dataset, count: int, z_dim: int, seed: int, names: tuple[str, ...]):
    """First captions of ``count`` images spread over the split (so, over its classes), the
    conditions the model takes besides text (``names``: its box, its part locations), and fixed
    noise (TF previews z = 0; previews only, docs/fidelity.md row 8)."""
    count = min(count, len(dataset))
    picks = torch.linspace(0, len(dataset) - 1, count).round().long().tolist()
    emb = torch.stack([torch.from_numpy(dataset.embeddings[i, 0]) for i in picks])
    noise = torch.randn(count, z_dim, generator=torch.Generator().manual_seed(seed))
    conditions = {}
    if names:
        # A private generator: drawing from the global one would shift the run's random stream.
        gen = torch.Generator().manual_seed(seed)
        found = [dataset.images_and_conditions(i, gen)[1] for i in picks]
        conditions = {name: torch.stack([f[name] for f in found]) for name in names}
    return emb, noise, conditions


# The averaged generator's BatchNorm statistics are recomputed over this many training batches.
CALIBRATION_BATCHES = 4


def _calibration_inputs(cfg: RunConfig, dataset, model) -> dict:
    """Fixed captions spread over the split, their conditions and per-image noise seeds, on
    which the averaged generator's BatchNorm statistics are recomputed (harness.core.averaging):
    the same every time, so that a resumed run recomputes the same statistics."""
    count = min(CALIBRATION_BATCHES * cfg.data.batch_size, len(dataset))
    emb, _, conditions = _fixed_sample_inputs(dataset, count, family_of(cfg).z_dim(cfg),
                                              cfg.train.seed, model_conditions(model))
    seeds = [1_000_003 * (cfg.train.seed + 1) + i for i in range(count)]
    return {"embeddings": emb, "seeds": seeds, "conditions": conditions,
            "batch_size": cfg.data.batch_size}


def _save_grid(model, emb, noise, conditions: dict, path: Path) -> None:
    from torchvision.utils import save_image

    model.eval()
    images = model.generate(emb, noise, **conditions)
    model.train()
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = torch.cat([images[k].float().cpu() for k in sorted(images)], 0) if len(images) == 1 \
        else images["stage2"].float().cpu()
    save_image(grid * 0.5 + 0.5, path, nrow=len(emb))


def prepare_run_dir(cfg: RunConfig, resume: bool) -> tuple[Path, dict | None]:
    from harness.atomic import remove_stale_temporaries

    run_dir = Path(cfg.runs_dir) / cfg.name
    store = CheckpointStore(run_dir / "checkpoints")
    # Temporaries of a killed process (this one holds the run's lock, so none is live).
    remove_stale_temporaries(run_dir / "checkpoints")
    remove_stale_temporaries(run_dir)
    latest = store.latest()
    if latest is None:
        if run_dir.exists() and any(p.name != LOCK_NAME for p in run_dir.iterdir()) and not resume:
            raise UserError(f"{run_dir}: exists and holds no checkpoint; choose another name= or "
                            "remove it")
        return run_dir, None
    if not resume:
        raise UserError(f"{run_dir}: already has checkpoints; pass --resume to continue it or "
                        "choose another name=")
    previous = from_yaml_file(run_dir / "config.yaml")
    diffs = config_differences(previous, cfg)
    if diffs:
        raise UserError(f"{run_dir}: refusing to resume with a changed config:\n  "
                        + "\n  ".join(diffs)
                        + "\n(only epochs, max_steps, logging/checkpoint cadence, workers and "
                        "tracking may change)")
    # The newest checkpoint that reads; a damaged one (a disk that filled, a copy cut short) is
    # set aside with a warning and the one before it is used.
    for step in reversed(store.steps()):
        path = store.path(step)
        try:
            return run_dir, load_checkpoint(path)
        except UserError as exc:
            aside = path.with_name(path.name + ".damaged")
            path.rename(aside)
            print(f"stackgan-bench: {exc}; moved to {aside.name}, resuming from the checkpoint "
                  "before it", file=sys.stderr)
    raise UserError(f"{run_dir}: no readable checkpoint to resume from (damaged ones are kept as "
                    "*.damaged); remove the folder to train from scratch")


def train(cfg: RunConfig, resume: bool = False, progress: bool = True,
          validator: Callable[[object], dict[str, float]] | None = None) -> RunResult:
    """``validator(model) -> {name: value}`` runs at the steps ``validation_steps`` gives
    (``train.validate_every``, ``train.validate_per_doubling``) on the main rank; its values
    are logged with the step (e.g. ``val.fid`` from ``harness.eval.training_fid``). The caller
    builds it, so this loop knows no metric."""
    from harness.locks import exclusive

    device = resolve_device(cfg.train.device)
    ctx = ddp.init_from_env(device.type)
    if ctx.enabled and device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
    # One training process per run folder (the ranks of one data-parallel run share it).
    lock = exclusive(Path(cfg.runs_dir) / cfg.name, "trains") if ctx.is_main else contextlib.nullcontext()
    try:
        with lock:
            return _train(cfg, resume, progress and ctx.is_main, device, ctx, validator)
    finally:
        ddp.shutdown(ctx)


def _train(cfg: RunConfig, resume: bool, progress: bool, device: torch.device,
           ctx: ddp.DistContext, validator=None) -> RunResult:
    set_determinism(cfg.train.deterministic)
    seed_all(cfg.train.seed)
    if cfg.train.retain_freed_memory:
        retain_freed_memory()
    run_dir, resumed = prepare_run_dir(cfg, resume)
    main = ctx.is_main

    if cfg.data.check:
        report = check_dataset(cfg.data.root, layout=cfg.data.layout, progress=False)
        if not report.ok:
            raise UserError(f"{cfg.data.root}: the dataset fails `data check`; fix it first.\n"
                            + report.summary())
    dataset = build_dataset(cfg)
    if dataset.embeddings is None:
        raise UserError(f"{cfg.data.root}: no caption embeddings")
    model = build_model(cfg, device)
    if ctx.enabled:
        if cfg.train.sync_bn:
            ddp.convert_sync_bn(model.networks(), device)
        ddp.broadcast_parameters(model.networks())
        model.grad_sync = ddp.make_grad_sync(ctx)
        model.micro_offset = ctx.rank
    elif cfg.train.sync_bn:
        raise UserError("train.sync_bn is for data-parallel runs (torchrun / --nproc)")
    if cfg.train.compile:
        for name in TRAINED_NETWORKS:  # networks() keys are the attributes that hold them
            setattr(model, name, torch.compile(model.networks()[name]))

    # Built before a resume loads the trained weights: it starts as a copy and is then
    # overwritten by the checkpoint's average.
    average = (GeneratorAverage(model, cfg.train.ema_half_life, cfg.train.ema_rampup,
                                cfg.train.ema_batch_norm, _calibration_inputs(cfg, dataset, model))
               if cfg.train.ema_half_life > 0 else None)
    judged = average.judged_in_place_of_generator if average else contextlib.nullcontext
    store = CheckpointStore(run_dir / "checkpoints", cfg.train.keep_last)
    step = epoch = batch_in_epoch = 0
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        if average is not None:
            average.load_state_dict(resumed[AVERAGE_KEY])
        restore_rng_states(resumed["rng"])
        step, epoch, batch_in_epoch = (resumed["position"][k] for k in ("step", "epoch", "batch"))
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / "config.yaml", to_yaml(cfg))

    sampler = ResumableBatchSampler(len(dataset), cfg.data.batch_size, cfg.train.seed,
                                    rank=ctx.rank, world_size=ctx.world_size)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.data.num_workers,
                        worker_init_fn=worker_init_fn,
                        pin_memory=cfg.data.pin_memory and device.type == "cuda")
    per_epoch = sampler.batches_per_epoch()
    total = per_epoch * cfg.train.epochs
    if cfg.train.max_steps is not None:
        total = min(total, cfg.train.max_steps)
    stopped_by = "epochs" if total < (cfg.train.max_steps or 0) else "max_steps"
    is_validation_step = validation_steps(total, cfg.train.validate_every,
                                          cfg.train.validate_per_doubling,
                                          cfg.train.validate_doublings).__contains__
    if stopped_by == "epochs" and main and resumed is None:
        # A budget set in steps that the epoch count cuts short is a silent under-training.
        print(f"warning: {cfg.name}: train.epochs={cfg.train.epochs} ({per_epoch} steps each) ends "
              f"training at step {total}, before train.max_steps={cfg.train.max_steps}; raise "
              "train.epochs for max_steps to bind", file=sys.stderr)
    if cfg.train.autocast_bf16 and device.type == "cpu" and main and resumed is None \
            and not speed.cpu_has_native_bf16():
        print(f"warning: {cfg.name}: train.autocast_bf16=true on a CPU without AVX512-BF16 or AMX: "
              "bf16 is emulated here, slower than fp32; the run's numbers are bf16's all the same "
              "(train.autocast_bf16=false trains in fp32, which gives other numbers)", file=sys.stderr)
    fingerprint = dataset_fingerprint(cfg.data.root)
    logger = RunLogger(cfg, run_dir, main, resumed, step)
    if resumed is None and main:
        family = family_of(cfg)
        tags = {"seed": cfg.train.seed, "family": cfg.family, "variant": family.variant(cfg),
                "stage": family.stage(cfg),
                "world_size": ctx.world_size,
                "data_fingerprint": fingerprint, "deterministic": cfg.train.deterministic,
                "device": str(device), **code_version(),
                **{f"lib.{k}": v for k, v in library_versions().items()}}
        tags.update(family.provenance(cfg))
        tags.update({"train.total_steps": total, "train.stopped_by": stopped_by})
        logger.start(flatten(to_dict(cfg)), tags)

    sample_emb, sample_noise, sample_conditions = _fixed_sample_inputs(
        dataset, cfg.train.sample_captions, family_of(cfg).z_dim(cfg), cfg.train.seed,
        model_conditions(model))
    started = time.time()
    stats: dict = {}
    model.train()

    def checkpoint_state() -> dict:
        state = {"model": model.state_dict(), "config": to_dict(cfg), "rng": rng_states(),
                 "position": {"step": step, "epoch": epoch, "batch": batch_in_epoch},
                 **logger.state(), "data_fingerprint": fingerprint}
        if average is not None:
            state[AVERAGE_KEY] = average.state_dict(model)
        return state

    def save(best_candidate: float | None = None) -> None:
        if not main:
            return
        state = checkpoint_state()
        # best.pt before step-N.pt: a kill between the two then resumes from an earlier step and
        # recomputes step N bit for bit (which finds best.pt already at N). The other order lost
        # step N from "best" for good: the resume started after its evaluation.
        if best_candidate is not None:
            best = store.best_value()
            better = best is None or (best_candidate < best if cfg.train.best_mode == "min"
                                      else best_candidate > best)
            if better:
                store.save_best(state, step, cfg.train.best_metric, best_candidate)
        store.save(state, step)

    bar = tqdm(total=total, initial=step, desc=f"train {cfg.name}", unit="step",
               disable=not progress, mininterval=1.0 if sys.stderr.isatty() else 30.0)
    with _StopRequested() as stop:
        while epoch < cfg.train.epochs and step < total:
            sampler.set_position(epoch, batch_in_epoch)
            for batch in loader:
                t0 = time.perf_counter()
                stats = model.train_step(batch, step)
                if average is not None:
                    average.update(model)
                logger.timed(time.perf_counter() - t0)
                if ctx.enabled:  # every rank sees the same numbers and stops at the same step
                    stats, any_stop = ddp.average_stats(stats, stop.signal is not None, ctx)
                    if any_stop and stop.signal is None:
                        stop.signal = signal.SIGTERM
                bad = [k for k, v in stats.items() if not math.isfinite(v)]
                if bad:
                    last = store.latest()
                    logger.end("FAILED")
                    raise TrainingDiverged(
                        f"{', '.join(bad)} became {stats[bad[0]]} at step {step}; the run stopped "
                        f"and its last good checkpoint is {last or 'none (none was written yet)'}")
                step += 1
                batch_in_epoch += 1
                bar.update()
                logger.add(stats)
                if main and (step % cfg.train.log_every == 0 or step == total):
                    last_means = logger.close_window(step, epoch)
                    bar.set_postfix(loss_d=f"{last_means['loss_d']:.3f}",
                                    loss_g=f"{last_means['loss_g']:.3f}")
                else:
                    last_means = None
                if validator is not None and main and is_validation_step(step):
                    with judged(model) as judged_model:
                        logger.log(step, epoch, validator(judged_model))
                if main and (step % cfg.train.sample_every == 0 or step == total):
                    grid = run_dir / "samples" / f"step-{step:09d}.png"
                    with judged(model) as judged_model:
                        _save_grid(judged_model, sample_emb, sample_noise, sample_conditions, grid)
                    logger.artifact(grid, "samples")
                if step % cfg.train.checkpoint_every == 0 or step == total or stop.signal:
                    save(last_means.get(cfg.train.best_metric) if last_means else None)
                if stop.signal or step >= total:
                    break
            else:
                model.end_epoch()
                epoch += 1
                batch_in_epoch = 0
                continue
            break
    bar.close()
    wall = time.time() - started
    ddp.barrier(ctx)
    if not main:
        return RunResult(run_dir, step, stop.signal, stats)
    if stop.signal:
        logger.end("KILLED")
        print(f"stackgan-bench: stopped by signal {stop.signal} at step {step}; checkpoint saved; "
              f"continue with --resume", file=sys.stderr)
        return RunResult(run_dir, step, stop.signal, stats)

    final = run_dir / "checkpoints" / "final.pt"
    save_checkpoint(checkpoint_state(), final)
    logger.finish(step, wall, stats, final)
    return RunResult(run_dir, step, None, stats)
