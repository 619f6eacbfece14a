"""``stackgan-bench sweep`` and ``stackgan-bench tracking replay``."""

from __future__ import annotations

import argparse

from harness.cli.common import add_command, add_group


def register(sub) -> None:
    p = sub.add_parser(
        "sweep", help="Train a config over seeds and grid values as nested MLflow runs.",
        description="Runs every (grid point, seed) as a child run under one parent MLflow run, "
        "in parallel up to the cores available, then prints mean ± std across seeds per metric. "
        "--emit slurm writes a job-array script instead.",
        epilog="example:\n  stackgan-bench sweep --config smoke_stage1 --seeds 0,1,2 "
        "--grid model.kl_weight=1,2",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="preset name (configs/) or YAML file")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides for every run")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=A,B",
                   help="values to sweep for a key (repeatable)")
    p.add_argument("--parallel", type=int, default=None, help="processes at once (default: cores)")
    p.add_argument("--emit", choices=("slurm",), default=None, help="write a cluster script instead")
    p.add_argument("--out", default="sweep.sbatch", help="script path for --emit (default sweep.sbatch)")
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
    from harness.errors import UserError
    from harness.runner.sweep import emit_slurm, expand, parse_grid, run_sweep

    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError as exc:
        raise UserError(f"--seeds {args.seeds!r}: expected comma-separated integers") from exc
    grid = parse_grid(args.grid)
    if args.emit == "slurm":
        from harness.config.load import load_config

        base = load_config(args.config, args.overrides)
        tasks = expand(f"{base.name}-sweep", seeds, grid, args.overrides)
        emit_slurm(args.config, tasks, args.out)
        print(f"{args.out}: Slurm job array of {len(tasks)} runs (sbatch {args.out})")
        return 0
    out = run_sweep(args.config, seeds, grid, args.overrides, args.parallel)
    for row in out["table"]:
        point = ", ".join(f"{k}={v}" for k, v in row["grid"].items()) or "(no grid)"
        print(f"{point}  [{row['n']} seeds]")
        for m, v in row.items():
            if isinstance(v, dict) and "mean" in v:
                print(f"  {m:14s} {v['mean']:.4f} ± {v['std']:.4f}")
    if out["failed"]:
        print(f"failed runs: {', '.join(out['failed'])} (see their .log files)")
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
