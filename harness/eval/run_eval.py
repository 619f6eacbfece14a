"""Evaluating a trained run: sample its test captions (reused when the same request was sampled
before), evaluate, log every value and its settings to the run's MLflow run, and keep the result
in ``<run>/eval.json``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from harness.atomic import write_text_atomic
from harness.eval.evaluate import EvalRequest, evaluate
from harness.eval.protocols import Protocol, resolve


def sample_for_eval(run: str | Path, split: str, protocol: Protocol, seed: int,
                    progress: bool = True) -> Path:
    from harness.checkpoints import find_run_checkpoint
    from harness.runner.sample import sample_run

    ckpt = find_run_checkpoint(run)
    key = hashlib.sha256(json.dumps({
        "checkpoint": str(ckpt.resolve()), "mtime": ckpt.stat().st_mtime_ns, "split": split,
        "per_caption": protocol.per_caption, "captions_per_image": protocol.captions_per_image,
        "seed": seed},
        sort_keys=True).encode()).hexdigest()[:16]
    out = Path(run) / "eval-samples" / key
    if not (out / "sample.json").exists():
        sample_run(run, out, split=split, per_caption=protocol.per_caption,
                   captions_per_image=protocol.captions_per_image, seed=seed, progress=progress,
                   protocol=protocol.name)
    return out


def keep_result(folder: str | Path, result: dict, tracker, step: int, tags: dict) -> None:
    """An evaluation kept: its values as ``eval.*`` metrics at ``step`` and ``tags`` on the
    tracker's MLflow run, then ``<folder>/eval.json`` (atomically, last: it marks the step done)."""
    tracker.set_tags(tags)
    tracker.log_metrics({f"eval.{k}": v for k, v in result["values"].items() if v is not None}, step)
    Path(folder).mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(folder) / "eval.json", json.dumps(result, indent=2))


def keep_standalone_result(folder: str | Path, name: str, result: dict, tracking_uri: str,
                           experiment: str, tags: dict) -> None:
    """An evaluation of images that no training run made (a samples folder, the real images):
    kept in ``folder`` and logged to an MLflow run of its own named ``name``."""
    from harness.tracking.mlflow_tracker import Tracker

    Path(folder).mkdir(parents=True, exist_ok=True)  # the tracker spools into it when offline
    tracker = Tracker(tracking_uri, experiment, folder, name)
    keep_result(folder, result, tracker, 0, tags)
    tracker.end()


def log_to_run(run: str | Path, result: dict) -> None:
    from harness.checkpoints import find_run_checkpoint, load_checkpoint
    from harness.config.load import flatten, from_yaml_file
    from harness.tracking.mlflow_tracker import Tracker, default_uri

    cfg = from_yaml_file(Path(run) / "config.yaml")
    step = load_checkpoint(find_run_checkpoint(run))["position"]["step"]
    tracker = Tracker(cfg.tracking.uri or default_uri(Path(run).parent), cfg.tracking.experiment,
                      run, cfg.name, enabled=cfg.tracking.enabled, reopen=False)
    keep_result(run, result, tracker, step,
                {f"eval.{k}": v for k, v in flatten(result["settings"]).items()})


def evaluate_run(run: str | Path, request: EvalRequest, protocol: Protocol | None = None,
                 progress: bool = True) -> dict:
    """``request.fake`` is ignored: the run's samples, drawn by ``protocol`` (default
    all-captions), are the fake images."""
    from harness.locks import exclusive

    protocol = protocol or resolve()
    with exclusive(run, "evaluates"):  # its samples and eval.json are written into the run
        return _evaluate_run(run, request, protocol, progress)


def _evaluate_run(run, request: EvalRequest, protocol: Protocol, progress: bool) -> dict:
    fake = sample_for_eval(run, request.split, protocol, request.seed, progress)
    result = evaluate(replace(request, fake=str(fake)))
    result["settings"].update(protocol.settings())
    # Relative to the run folder, so that a moved runs folder still finds its samples.
    result["samples"] = fake.relative_to(Path(run)).as_posix()
    sampled = json.loads((fake / "sample.json").read_text())
    result["settings"]["n_images"] = sampled["num_images"]
    result["samples_sha256"] = sampled.get("pixels_sha256")  # which images were evaluated
    log_to_run(run, result)
    return result
