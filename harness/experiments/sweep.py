"""Sweeps: seeds × grid values, as nested MLflow runs under one parent, trained by an executor
(a local pool of processes, or SLURM jobs)."""

from __future__ import annotations

import itertools
import json
import os
import re
import statistics
from dataclasses import dataclass
from pathlib import Path

from harness.atomic import write_text_atomic
from harness.config.load import load_config
from harness.errors import UserError
from harness.tracking.mlflow_tracker import Tracker, default_uri


@dataclass
class SweepTask:
    name: str
    seed: int
    grid: dict[str, str]
    overrides: list[str]


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    grid = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--grid {item!r}: expected key=a,b,c")
        key, values = item.split("=", 1)
        grid[key] = [v for v in values.split(",") if v != ""]
        if not grid[key]:
            raise UserError(f"--grid {item!r}: no values")
    return grid


def expand(base_name: str, seeds: list[int], grid: dict[str, list[str]],
           overrides: list[str]) -> list[SweepTask]:
    tasks = []
    keys = list(grid)
    for combo in itertools.product(*(grid[k] for k in keys)) if keys else [()]:
        point = dict(zip(keys, combo, strict=True))
        # a value such as a path would leave the runs folder: keep folder-name characters only
        tag = re.sub(r"[^A-Za-z0-9._+=@,-]", "_",
                     "-".join(f"{k.split('.')[-1]}{v}" for k, v in point.items()))
        for seed in seeds:
            name = f"{base_name}-{tag + '-' if tag else ''}s{seed}"
            extra = [f"{k}={v}" for k, v in point.items()] + [f"train.seed={seed}", f"name={name}"]
            tasks.append(SweepTask(name, seed, point, list(overrides) + extra))
    return tasks


def _final_metrics(run_dir: Path) -> dict[str, float]:
    summary = run_dir / "summary.json"
    if not summary.exists():
        return {}
    return {k: v for k, v in json.loads(summary.read_text())["final_stats"].items()
            if isinstance(v, int | float)}


def run_sweep(config: str, seeds: list[int], grid: dict[str, list[str]], overrides: list[str],
              executor=None, report=print) -> dict:
    """``executor``: harness.experiments.executors.Executor (default: a local pool, one worker
    per core)."""
    from harness.experiments.executors import LocalExecutor
    from harness.experiments.jobs import Job
    from harness.experiments.local_executor import cpu_slots

    base = load_config(config, overrides, resolve_code=True)  # refuse a bad config before starting anything
    tasks = expand(f"{base.name}-sweep", seeds, grid, overrides)
    configs = [load_config(config, t.overrides) for t in tasks]  # every point, before any starts
    executor = executor or LocalExecutor(cpu_slots(min(os.cpu_count() or 1, len(tasks))))
    runs_dir = Path(base.runs_dir)
    parent = Tracker(base.tracking.uri or default_uri(runs_dir), base.tracking.experiment,
                     runs_dir / f"{base.name}-sweep", f"{base.name}-sweep",
                     enabled=base.tracking.enabled)
    parent.log_params({"config": config, "seeds": ",".join(map(str, seeds)),
                       **{f"grid.{k}": ",".join(v) for k, v in grid.items()}})
    parent_id = parent._ensure_run() if base.tracking.enabled and not parent.offline else None
    if parent_id:
        for cfg in configs:
            cfg.tracking.parent_run_id = parent_id
    jobs = [Job(t.name, cfg) for t, cfg in zip(tasks, configs, strict=True)]
    failed = [job.name for job, status, _ in executor.run(jobs, report)
              if status not in ("trained", "resumed")]

    results: dict[str, dict] = {}
    for t in tasks:
        key = json.dumps(t.grid, sort_keys=True)
        results.setdefault(key, {"grid": t.grid, "runs": {}})["runs"][t.name] = _final_metrics(
            runs_dir / t.name)
    table = []
    for point in results.values():
        metrics = sorted({m for r in point["runs"].values() for m in r})
        row = {"grid": point["grid"], "n": len(point["runs"])}
        for m in metrics:
            values = [r[m] for r in point["runs"].values() if m in r]
            row[m] = {"mean": statistics.fmean(values),
                      "std": statistics.stdev(values) if len(values) > 1 else 0.0, "n": len(values)}
        table.append(row)
        tag = "_".join(f"{k.split('.')[-1]}{v}" for k, v in point["grid"].items())
        parent.log_metrics({f"{tag + '.' if tag else ''}{m}_{s}": row[m][s] for m in metrics
                            for s in ("mean", "std")}, step=0)
    parent.end("FAILED" if failed else "FINISHED")
    out = {"config": config, "seeds": seeds, "tasks": [t.name for t in tasks], "failed": failed,
           "table": table}
    write_text_atomic(runs_dir / f"{base.name}-sweep.json", json.dumps(out, indent=2))
    return out
