"""``stackgan-bench gate``."""

from __future__ import annotations

from harness.cli.common import add_command


def register(sub) -> None:
    p = add_command(sub, "gate", "Regression gate: run the smoke experiment at its fixed seed in a fresh "
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
