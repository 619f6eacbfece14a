#!/usr/bin/env python3
"""Seconds per training step of ours or of the plain reference, in this fresh process: the
process-wide settings (glibc's allocator thresholds) are part of what is timed, as they are in a
training process. Prints one JSON line. Used by benchmarks/test_bench_reference.py.

    python benchmarks/step_process.py {ours,reference} --stage 2 [--retain] [--steps 3] [overrides]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from step_setup import add_step_arguments, build_steps  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=("ours", "reference"))
    parser.add_argument("--steps", type=int, default=3, help="timed steps after two warm-up steps")
    add_step_arguments(parser)
    args = parser.parse_intermixed_args()
    _, steps = build_steps(args, (args.which,))
    step = steps[args.which]
    step(0), step(0)  # warm-up: oneDNN primitives; a retained heap takes two steps to settle
    seconds, faults = [], []
    for i in range(1, args.steps + 1):
        f0, t0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
        step(i)
        seconds.append(time.perf_counter() - t0)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    print(json.dumps({"seconds": statistics.median(seconds), "faults": statistics.median(faults),
                      "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
