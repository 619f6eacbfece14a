"""What a training run records besides its checkpoints: ``metrics.jsonl`` and the MLflow run
(parameters, provenance tags, metrics, artifacts), and the summary at the end.

Step statistics are averaged over a logging window of ``train.log_every`` steps; the open window
travels in every checkpoint (``state()``), so a resumed run logs exactly what an uninterrupted one
would. On the ranks of a data-parallel run other than the main one nothing is written.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.atomic import write_text_atomic
from harness.tracking.mlflow_tracker import Tracker, default_uri


def logged_up_to(metrics_log: Path, step: int) -> list[str]:
    """The log's well-formed lines of steps up to ``step``."""
    kept = []
    for line in metrics_log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # torn by a kill mid-write
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line)
    return kept


class RunLogger:
    def __init__(self, cfg, run_dir: Path, main: bool, resumed: dict | None, step: int):
        self.cfg, self.run_dir, self.main = cfg, run_dir, main
        self.metrics_log = run_dir / "metrics.jsonl"
        self.tracker = Tracker(cfg.tracking.uri or default_uri(cfg.runs_dir), cfg.tracking.experiment,
                               run_dir, cfg.name, parent_run_id=cfg.tracking.parent_run_id,
                               enabled=cfg.tracking.enabled and main)
        if main and self.metrics_log.exists():
            # Steps after the checkpoint (all of them when training starts over) are redone: drop
            # what a killed run logged for them, and a last line it tore mid-write.
            write_text_atomic(self.metrics_log,
                              "".join(ln + "\n" for ln in logged_up_to(self.metrics_log, step)))
        self.window: dict[str, list[float]] = {}
        self.window_seconds = 0.0
        self.step_seconds = 0.0  # the train step's own time, this call
        if resumed is not None and "log_window" in resumed:
            self.window = {k: list(v) for k, v in resumed["log_window"].items()}
            self.window_seconds = float(resumed.get("log_window_seconds", 0.0))

    def start(self, params: dict, tags: dict) -> None:
        """A new run's parameters, provenance tags and config (not again on resume)."""
        if not self.main:
            return
        self.tracker.log_params(params)
        self.tracker.set_tags(tags)
        self.tracker.log_artifact(self.run_dir / "config.yaml")
        write_text_atomic(self.run_dir / "provenance.json", json.dumps(tags, indent=2, default=str))

    def state(self) -> dict:
        """The open window, for the checkpoint."""
        return {"log_window": self.window, "log_window_seconds": self.window_seconds}

    def timed(self, seconds: float) -> None:
        self.step_seconds += seconds
        self.window_seconds += seconds

    def add(self, stats: dict[str, float]) -> None:
        for k, v in stats.items():
            self.window.setdefault(k, []).append(v)

    def close_window(self, step: int, epoch: int) -> dict[str, float]:
        """The window's means (and the train step's throughput over it), logged at ``step``."""
        means = {k: sum(v) / len(v) for k, v in self.window.items()}
        means["images_per_second"] = (self.cfg.data.batch_size * len(self.window["loss_d"])
                                      / max(self.window_seconds, 1e-9))
        self.log(step, epoch, means)
        self.window, self.window_seconds = {}, 0.0
        return means

    def log(self, step: int, epoch: int, values: dict[str, float]) -> None:
        with open(self.metrics_log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "epoch": epoch, **values}) + "\n")
        self.tracker.log_metrics(values, step)

    def artifact(self, path: Path, folder: str | None = None) -> None:
        self.tracker.log_artifact(path, folder)

    def end(self, status: str) -> None:
        self.tracker.end(status)

    def finish(self, steps: int, wall: float, final_stats: dict, final_checkpoint: Path) -> None:
        summary = {"steps": steps, "wall_seconds": round(wall, 3),
                   "train_step_seconds": round(self.step_seconds, 3),
                   "harness_overhead_ratio": (round(wall / self.step_seconds, 4)
                                              if self.step_seconds else None),
                   "final_stats": final_stats}
        write_text_atomic(self.run_dir / "summary.json", json.dumps(summary, indent=2))
        if self.cfg.tracking.log_checkpoint:
            self.tracker.log_artifact(final_checkpoint, "checkpoints")
        self.tracker.log_artifact(self.run_dir / "summary.json")
        self.tracker.end("FINISHED")
