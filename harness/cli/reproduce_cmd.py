"""``stackgan-bench reproduce``, ``report`` and ``gate``."""

from __future__ import annotations

import argparse

from harness.experiments.executors import add_executor_arguments


def _parser(sub, name: str, help_text: str, example: str):
    return sub.add_parser(name, help=help_text, description=help_text, epilog=f"example:\n  {example}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def register(sub) -> None:
    p = _parser(sub, "reproduce", "Everything the paper's tables need, in order, at a preset scale: "
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
    p.add_argument("--reports-dir", default="reports", help="default reports")
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

    p = _parser(sub, "report", "Tables (Markdown, CSV, LaTeX) beside the paper's, the paper's "
                "claims checked, figures and index.html in reports/<experiment>/, from the MLflow "
                "runs of a preset.", "stackgan-bench report --preset quick")
    p.add_argument("--preset", required=True)
    p.add_argument("--only", choices=("table1", "table2"), default=None)
    p.add_argument("--experiment", action="append", default=None, metavar="NAME_OR_PATH",
                   help="an experiment file to report (repeatable; default table1 and table2), "
                   "e.g. examples/text_dcgan/table1_with_dcgan.yaml")
    p.add_argument("--runs-dir", default=None, help="default runs/<preset>")
    p.add_argument("--reports-dir", default="reports")
    p.set_defaults(func=_report)

    p = _parser(sub, "gate", "Regression gate: run the smoke experiment at its fixed seed in a fresh "
                "folder and compare every loss curve and metric with the committed baseline; exit 1 "
                "with a table of what moved. --update records a new baseline.",
                "stackgan-bench gate")
    p.add_argument("--baseline", default=None, help="default: the package's "
                   "harness/reproduce/gate_baseline.json")
    p.add_argument("--update", action="store_true", help="rewrite the baseline with this run")
    p.add_argument("--set", action="append", default=[], dest="extra", metavar="KEY=VALUE",
                   help="an override for every training run (e.g. to see the gate catch a change)")
    p.add_argument("--runs", nargs="+", default=None, metavar="RUN_ID",
                   help="gate only these runs (and the Stage-I runs they need), e.g. cub-s1-64")
    p.add_argument("--progress", action="store_true", help="show the smoke experiment's steps")
    p.set_defaults(func=_gate)


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


def _report(args) -> int:
    from reports.build import build_report

    names = args.experiment or ([args.only] if args.only else ["table1", "table2"])
    out = build_report(names, args.preset,
                       args.runs_dir or f"runs/{args.preset}", args.reports_dir)
    for name, folder in out["reports"].items():
        print(f"{name}: {folder}/index.html")
    return 0


def _gate(args) -> int:
    from harness.reproduce.gate import BASELINE, format_moved, run_gate

    baseline = args.baseline or BASELINE
    result = run_gate(baseline, update=args.update, extra=args.extra, only_runs=args.runs,
                      progress=args.progress)
    if result is None:
        print(f"{baseline}: baseline recorded")
        return 0
    print(result.platform_note)
    if not result.comparable:
        print("gate NOT RUN: the baseline was recorded with another torch (see above)")
        return 2
    if result.passed:
        print(f"gate passed: {result.compared} values match the baseline")
        return 0
    print(f"gate FAILED: {len(result.moved)} of {result.compared} values moved")
    print(format_moved(result))
    return 1
