"""``stackgan-bench reproduce``."""

from __future__ import annotations

from harness.cli.common import add_command
from harness.experiments.executors import add_executor_arguments


def register(sub) -> None:
    p = add_command(sub, "reproduce", "Everything the paper's tables need, in order, at a preset scale: "
                    "dataset, text encoder and embeddings, evaluation models, every Table 1 / Table 2 "
                    "run, sampling and evaluation, human-study materials, the report. Steps whose inputs "
                    "are unchanged are skipped, so it continues where it stopped.",
                    "stackgan-bench reproduce --preset quick\n  stackgan-bench reproduce --preset paper "
                    "--executor slurm --slurm-partition gpu --slurm-gpus 1")
    p.add_argument("--preset", required=True,
                   help="smoke | quick | claims | small | paper (scales.yaml in "
                   "harness/experiments/definitions)")
    p.add_argument("--data", default=None, help="a real CUB-layout dataset folder (default: the "
                   "preset's built-in synthbirds)")
    p.add_argument("--only", choices=("table1", "table2"), default=None)
    p.add_argument("--runs-dir", default=None, help="default runs/<preset>")
    p.add_argument("--reports-dir", default=None, help="default <runs dir>/reports")
    p.add_argument("--set", action="append", default=[], dest="extra", metavar="KEY=VALUE",
                   help="an override for every training run (repeatable)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--decide", action="store_true",
                   help="after the preset's seeds, add seeds to the runs of claim pairs whose "
                   "difference is not yet known to within half their margin δ, the most "
                   "informative per CPU-second first (stops on precision, never on p); "
                   "<runs>/decide.json says what was added and why it stopped")
    p.add_argument("--max-seeds", type=int, default=10, help="with --decide: seeds per run at most "
                   "(default 10)")
    p.add_argument("--budget", type=float, default=None, metavar="HOURS",
                   help="with --decide: hours of training and evaluation to add at most")
    add_executor_arguments(p)
    p.set_defaults(func=_reproduce)


def _reproduce(args) -> int:
    from harness.errors import UserError
    from harness.experiments.executors import executor_from_args
    from harness.reproduce.pipeline import ReproduceOptions, reproduce

    if not args.decide and (args.budget is not None or args.max_seeds != 10):
        raise UserError("--max-seeds and --budget go with --decide")
    if args.max_seeds < 2 or (args.budget is not None and args.budget <= 0):
        raise UserError("--max-seeds must be at least 2 and --budget positive")
    executor = executor_from_args(args, args.runs_dir or f"runs/{args.preset}", not args.no_progress)
    log = reproduce(ReproduceOptions(preset=args.preset, data=args.data, only=args.only,
                                     runs_root=args.runs_dir, reports_root=args.reports_dir,
                                     extra=args.extra, progress=not args.no_progress,
                                     executor=executor, decide=args.decide,
                                     max_seeds=args.max_seeds, budget_hours=args.budget))
    slow = sorted(((v, k) for k, v in log.timings.items() if k != "total"), reverse=True)[:5]
    if slow:
        print("slowest steps: " + ", ".join(f"{k} {v:.0f} s" for v, k in slow))
    return 0
