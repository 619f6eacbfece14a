"""``stackgan-bench report``."""

from __future__ import annotations

from pathlib import Path

from harness.cli.common import add_command


def register(sub) -> None:
    p = add_command(sub, "report", "Tables (Markdown, CSV, LaTeX) beside the paper's, the paper's "
                    "claims checked, figures and index.html in <runs dir>/reports/<experiment>/, "
                    "from the MLflow runs of a preset.", "stackgan-bench report --preset quick")
    p.add_argument("--preset", required=True)
    p.add_argument("--only", choices=("table1", "table2"), default=None)
    p.add_argument("--experiment", action="append", default=None, metavar="NAME_OR_PATH",
                   help="an experiment file to report (repeatable; default table1 and table2), "
                   "e.g. examples/text_dcgan/table1_with_dcgan.yaml")
    p.add_argument("--runs-dir", default=None, help="default runs/<preset>")
    p.add_argument("--reports-dir", default=None, help="default <runs dir>/reports")
    p.set_defaults(func=_report)


def _report(args) -> int:
    from reports.build import build_report

    names = args.experiment or ([args.only] if args.only else ["table1", "table2"])
    runs = Path(args.runs_dir or f"runs/{args.preset}")
    out = build_report(names, args.preset, runs, args.reports_dir or runs / "reports")
    for name, folder in out["reports"].items():
        print(f"{name}: {folder}/index.html")
    return 0
