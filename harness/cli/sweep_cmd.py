"""``stackgan-bench sweep``."""

from __future__ import annotations

import argparse

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
