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


def sample_for_eval(run: str | Path, split: str, per_caption: int, captions_per_image: int,
                    seed: int, progress: bool = True) -> Path:
    from harness.runner.build import find_run_checkpoint
    from harness.runner.sample import sample_run

    ckpt = find_run_checkpoint(run)
    key = hashlib.sha256(json.dumps({
        "checkpoint": str(ckpt.resolve()), "mtime": ckpt.stat().st_mtime_ns, "split": split,
        "per_caption": per_caption, "captions_per_image": captions_per_image, "seed": seed},
        sort_keys=True).encode()).hexdigest()[:16]
    out = Path(run) / "eval-samples" / key
    if not (out / "sample.json").exists():
        sample_run(run, out, split=split, per_caption=per_caption,
                   captions_per_image=captions_per_image, seed=seed, progress=progress)
    return out


def log_to_run(run: str | Path, result: dict) -> None:
    from harness.config.load import flatten, from_yaml_file
    from harness.runner.build import find_run_checkpoint
    from harness.runner.checkpoint import load_checkpoint
    from harness.tracking.mlflow_tracker import Tracker, default_uri

    cfg = from_yaml_file(Path(run) / "config.yaml")
    step = load_checkpoint(find_run_checkpoint(run))["position"]["step"]
    tracker = Tracker(cfg.tracking.uri or default_uri(Path(run).parent), cfg.tracking.experiment,
                      run, cfg.name, enabled=cfg.tracking.enabled, reopen=False)
    values = {f"eval.{k}": v for k, v in result["values"].items() if v is not None}
    tracker.log_metrics(values, step)
    tracker.set_tags({f"eval.{k}": v for k, v in flatten(result["settings"]).items()})
    write_text_atomic(Path(run) / "eval.json", json.dumps(result, indent=2))


def evaluate_run(run: str | Path, request: EvalRequest, per_caption: int = 1,
                 captions_per_image: int = 10, progress: bool = True) -> dict:
    """``request.fake`` is ignored: the run's samples are the fake images."""
    fake = sample_for_eval(run, request.split, per_caption, captions_per_image, request.seed,
                           progress)
    result = evaluate(replace(request, fake=str(fake)))
    # Relative to the run folder, so that a moved runs folder still finds its samples.
    result["samples"] = fake.relative_to(Path(run)).as_posix()
    sampled = json.loads((fake / "sample.json").read_text())
    result["settings"]["n_images"] = sampled["num_images"]
    result["samples_sha256"] = sampled.get("pixels_sha256")  # which images were evaluated
    log_to_run(run, result)
    return result
