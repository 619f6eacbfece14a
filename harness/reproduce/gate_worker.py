"""The gate's smoke experiment, run in a fresh process under portable numerics.

``python -m harness.reproduce.gate_worker WORKDIR [--set K=V …] [--runs ID …] [--human]
[--report]`` runs ``reproduce --preset smoke`` inside WORKDIR with paths relative to it and writes
``WORKDIR/gate-result.json``: every compared value, the keys of what decided their bits, and
which steps ran. It is started by :func:`harness.reproduce.gate.run_smoke` with the environment
of :mod:`harness.reproduce.numerics`; run by hand it still computes, but without that
environment its torch values follow this CPU's kernels.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

DATA_DIR = Path("data") / "synthbirds-smoke"
RUNS_DIR = Path("runs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.reproduce.gate_worker")
    parser.add_argument("workdir")
    parser.add_argument("--set", action="append", default=[], dest="extra")
    parser.add_argument("--runs", nargs="+", default=None)
    parser.add_argument("--human", action="store_true")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)

    from harness.reproduce.numerics import apply_portable_torch, blas_key, cpu_description, torch_key

    apply_portable_torch()
    from harness.atomic import write_text_atomic
    from harness.reproduce.gate import RESULT_NAME, snapshot
    from harness.reproduce.pipeline import Pipeline, ReproduceOptions

    # Relative paths: the configs, and so the step stamps, do not depend on where WORKDIR is.
    os.chdir(args.workdir)
    pipe = Pipeline(ReproduceOptions(preset="smoke", runs_root=str(RUNS_DIR), reports_root="reports",
                                     extra=args.extra, progress=args.progress, report=args.report,
                                     human=args.human, only_runs=args.runs))
    pipe.data_root = DATA_DIR
    if not args.progress:
        pipe.log.say = lambda text: None
    planned = pipe.run_and_plan()
    values = snapshot(RUNS_DIR)
    values["data/fingerprint"] = json.loads((DATA_DIR / "manifest.json").read_text())["fingerprint"]
    result = {
        "platform": {"torch": torch_key(), "blas": blas_key(), "cpu": cpu_description()},
        "values": values,
        "runs": [p.name for p in planned if not p.skipped],
        "ran": pipe.log.ran, "skipped": pipe.log.skipped,
        "seconds": round(pipe.log.timings["total"], 1),
    }
    write_text_atomic(RESULT_NAME, json.dumps(result, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
