"""``stackgan-bench experiment plan|run``: the runs of the paper's tables at a scale."""

from __future__ import annotations

from harness.cli.common import add_command, add_group
from harness.experiments.executors import add_executor_arguments


def _add_common(p) -> None:
    p.add_argument("experiments", nargs="+", metavar="EXPERIMENT",
                   help="experiment names (table1, table2) or YAML files")
    p.add_argument("--scale", required=True, help="smoke | quick | small | paper (scales.yaml in "
                   "harness/experiments/definitions)")
    p.add_argument("--data", action="append", default=[], metavar="DATASET=DIR",
                   help="folder of a dataset (cub, oxford102, coco), overriding the scale's")
    p.add_argument("--runs-dir", default=None, help="where the run folders go (default runs/<scale>)")
    p.add_argument("--seeds", default=None, help="comma-separated seeds (default: the scale's)")
    p.add_argument("--only", action="append", default=[], metavar="RUN_ID",
                   help="only these runs (and the Stage-I runs they need); repeatable")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="extra",
                   help="an override for every run, e.g. train.max_steps=1 (repeatable)")


def register(sub) -> None:
    group = add_group(sub, "experiment", "The runs behind the paper's tables (experiments/*.yaml).")
    p = add_command(group, "plan", "List the runs of experiments at a scale: order, preset, "
                    "overrides, and which cannot run there and why.",
                    "stackgan-bench experiment plan table1 table2 --scale quick")
    _add_common(p)
    p.set_defaults(func=_plan)
    p = add_command(group, "run", "Train the runs of experiments at a scale in order; finished "
                    "runs are kept, interrupted ones resume.",
                    "stackgan-bench experiment run table2 --scale smoke --executor local --workers 2")
    _add_common(p)
    add_executor_arguments(p)
    p.set_defaults(func=_run)


def build_plan(args):
    from harness.errors import UserError
    from harness.experiments.plan import plan_runs
    from harness.experiments.spec import load_experiment, load_scales, merge_runs

    scales = load_scales()
    if args.scale not in scales:
        raise UserError(f"--scale {args.scale!r}: choose one of {', '.join(scales)}")
    data = {}
    for item in args.data:
        key, sep, value = item.partition("=")
        if not sep or not value:
            raise UserError(f"--data {item!r}: expected DATASET=DIR")
        data[key] = value
    seeds = None
    if args.seeds:
        try:
            seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
        except ValueError as exc:
            raise UserError(f"--seeds {args.seeds!r}: expected comma-separated integers") from exc
    runs = merge_runs([load_experiment(e) for e in args.experiments])
    if args.only:
        unknown = [r for r in args.only if r not in runs]
        if unknown:
            raise UserError(f"--only {unknown}: not runs of these experiments; runs: {', '.join(runs)}")
        wanted = set(args.only) | {runs[r].stage1 for r in args.only if runs[r].stage1}
        runs = {k: v for k, v in runs.items() if k in wanted}
    return plan_runs(runs, scales[args.scale], args.runs_dir or f"runs/{args.scale}", data,
                     args.extra, seeds, tracking_experiment=f"stackgan-bench-{args.scale}")


def _plan(args) -> int:
    from harness.experiments.train_plan import run_status

    for p in build_plan(args):
        if p.skipped:
            print(f"{p.name:28s} skipped: {p.skipped}")
        else:
            print(f"{p.name:28s} {run_status(p):7s} {p.preset} {' '.join(p.spec.set)}")
    return 0


def _run(args) -> int:
    from harness.experiments.executors import executor_from_args
    from harness.experiments.train_plan import execute
    from harness.locks import exclusive

    runs_dir = args.runs_dir or f"runs/{args.scale}"
    executor = executor_from_args(args, runs_dir)
    with exclusive(runs_dir, "runs experiments"):
        outcomes = execute(build_plan(args), executor=executor)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    print(", ".join(f"{n} {s}" for s, n in counts.items()))
    return 130 if "stopped" in counts else 1 if "failed" in counts else 0
