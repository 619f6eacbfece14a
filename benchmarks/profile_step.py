#!/usr/bin/env python3
"""Profile one training step of ours against the plain reference step (issue 30):
the top ops by self CPU time for each, after two warm-up steps, same shapes.

    python benchmarks/profile_step.py --stage 2 --batch 16 [--top 10] [--retain]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from step_setup import add_step_arguments, build_steps  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=10)
    add_step_arguments(parser)
    args = parser.parse_intermixed_args()
    batch, steps = build_steps(args)
    for name, step in steps.items():
        step(0), step(0)  # warm-up: oneDNN primitives; the heap takes two steps to settle
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step(1)
        total = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e6
        print(f"\n== {name}: Stage-{'I' * args.stage} batch {batch}, {total:.2f} s self CPU in total")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
