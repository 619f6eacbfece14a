"""``stackgan-bench sweep`` and ``stackgan-bench tracking replay``."""

from __future__ import annotations

import argparse

from harness.cli.common import add_command, add_group
from harness.experiments.executors import add_executor_arguments


def register(sub) -> None:
    p = sub.add_parser(
        "sweep", help="Train a config over seeds and grid values as nested MLflow runs.",
        description="Runs every (grid point, seed) as a child run under one parent MLflow run, "
        "on a pool of local worker processes (default: one per core) or as SLURM jobs, then prints "
        "mean ± std across seeds per metric.",
        epilog="examples:\n  stackgan-bench sweep --config smoke_stage1 --seeds 0,1,2 "
        "--grid model.kl_weight=1,2\n  stackgan-bench sweep --config birds_stage1 --seeds 0,1,2 "
        "--executor slurm --slurm-partition gpu --slurm-gpus 1",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="preset name (harness/config/presets/) or YAML file")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides for every run")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=A,B",
                   help="values to sweep for a key (repeatable)")
    add_executor_arguments(p, default="local")
    p.set_defaults(func=_sweep)

    group = add_group(sub, "tracking", "Experiment tracking utilities.")
    p = add_command(group, "replay", "Send a run's locally kept tracking records (kept while the "
                    "server was unreachable) to the tracking server.",
                    "stackgan-bench tracking replay runs/quick_stage1")
    p.add_argument("run", help="run folder")
    p.add_argument("--uri", default=None, help="tracking URI (default: the run's config, "
                   "MLFLOW_TRACKING_URI, else the local SQLite store)")
    p.set_defaults(func=_replay)


def _sweep(args) -> int:
    from harness.config.load import load_config
    from harness.errors import UserError
    from harness.experiments.executors import executor_from_args
    from harness.experiments.sweep import parse_grid, run_sweep

    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError as exc:
        raise UserError(f"--seeds {args.seeds!r}: expected comma-separated integers") from exc
    grid = parse_grid(args.grid)
    base = load_config(args.config, args.overrides, resolve_code=True)
    executor = None  # the default pool: one worker per core
    if args.executor == "serial":
        from harness.experiments.executors import LocalExecutor
        from harness.experiments.local_executor import cpu_slots

        executor_from_args(args, base.runs_dir)  # refuses pool/cluster options with serial
        executor = LocalExecutor(cpu_slots(1))  # one worker process, all the cores
    elif args.executor == "slurm" or args.workers or args.devices:
        executor = executor_from_args(args, base.runs_dir)
    out = run_sweep(args.config, seeds, grid, args.overrides, executor)
    for row in out["table"]:
        point = ", ".join(f"{k}={v}" for k, v in row["grid"].items()) or "(no grid)"
        print(f"{point}  [{row['n']} seeds]")
        for m, v in row.items():
            if isinstance(v, dict) and "mean" in v:
                print(f"  {m:14s} {v['mean']:.4f} ± {v['std']:.4f}")
    if out["failed"]:
        print(f"failed runs: {', '.join(out['failed'])} (their errors are above; whole logs in "
              "<run folder>.log or, for SLURM jobs, under <runs dir>/.slurm)")
        return 1
    return 0


def _replay(args) -> int:
    from pathlib import Path

    from harness.config.load import from_yaml_file
    from harness.tracking.mlflow_tracker import default_uri, replay

    cfg = from_yaml_file(Path(args.run) / "config.yaml")
    uri = args.uri or cfg.tracking.uri or default_uri(Path(args.run).parent)
    out = replay(args.run, uri, cfg.tracking.experiment)
    bad = out["malformed"] + out["rejected"]
    print(f"{args.run}: sent {out['sent']} tracking record(s)")
    if bad:
        print(f"  skipped {out['malformed']} malformed and {out['rejected']} refused record(s); "
              f"kept in {Path(args.run) / 'tracking-spool.rejected.jsonl'}")
    if out["offline"]:
        print(f"  tracking server {uri} unreachable ({out['reason']}); the rest is kept for "
              "the next replay")
        return 1
    return 0
