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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=("ours", "reference"))
    parser.add_argument("--stage", type=int, choices=(1, 2), default=2)
    parser.add_argument("--batch", type=int, default=None, help="default 64 (Stage-I) or 16 (Stage-II)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after two warm-up steps")
    parser.add_argument("--retain", action="store_true",
                        help="keep freed memory in the process (train.retain_freed_memory)")
    parser.add_argument("overrides", nargs="*", help="config overrides for our step")
    args = parser.parse_intermixed_args()

    from reference_stackgan import ReferenceStep

    from harness.config.load import load_config
    from harness.core.allocator import retain_freed_memory
    from harness.runner.summary import model_for_summary, synthetic_batch

    if args.retain and not retain_freed_memory():
        raise SystemExit("--retain: this C library is not glibc")
    batch = args.batch or (64 if args.stage == 1 else 16)
    preset = "birds_stage1_pytorch" if args.stage == 1 else "birds_stage2_pytorch"
    cfg = load_config(preset, [f"data.batch_size={batch}",
                               *(["train.stage1_run=null"] if args.stage == 2 else []), *args.overrides])
    data = synthetic_batch(cfg)
    if args.which == "ours":
        model = model_for_summary(cfg)
        step = lambda i: model.train_step(data, i)  # noqa: E731
    else:
        reference = ReferenceStep(args.stage)
        size = next(iter(data["images"]))
        step = lambda i: reference(data["images"][size], data["embedding"])  # noqa: E731
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
