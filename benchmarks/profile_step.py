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

from reference_stackgan import ReferenceStep  # noqa: E402

from harness.config.load import load_config  # noqa: E402
from harness.core.allocator import retain_freed_memory  # noqa: E402
from harness.runner.summary import model_for_summary, synthetic_batch  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", type=int, choices=(1, 2), default=2)
    parser.add_argument("--batch", type=int, default=None, help="default 64 (Stage-I) or 16 (Stage-II)")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--retain", action="store_true",
                        help="keep freed memory in the process first (train.retain_freed_memory; "
                             "process-wide, so both steps run with it)")
    parser.add_argument("overrides", nargs="*", help="config overrides for our step")
    args = parser.parse_intermixed_args()
    if args.retain and not retain_freed_memory():
        raise SystemExit("--retain: this C library is not glibc")
    batch = args.batch or (64 if args.stage == 1 else 16)
    preset = "birds_stage1_pytorch" if args.stage == 1 else "birds_stage2_pytorch"
    overrides = [f"data.batch_size={batch}", *(["train.stage1_run=null"] if args.stage == 2 else []),
                 *args.overrides]
    cfg = load_config(preset, overrides)
    model, data = model_for_summary(cfg), synthetic_batch(cfg)
    reference = ReferenceStep(args.stage)
    size = next(iter(data["images"]))
    steps = {"ours": lambda: model.train_step(data, 1),
             "reference": lambda: reference(data["images"][size], data["embedding"])}
    for name, step in steps.items():
        step(), step()  # warm-up: oneDNN primitives; the heap takes two steps to settle
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        total = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e6
        print(f"\n== {name}: Stage-{'I' * args.stage} batch {batch}, {total:.2f} s self CPU in total")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
