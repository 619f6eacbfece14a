"""The two training steps the speed scripts compare (ours and the plain reference), built the
same way for each: the command-line arguments, the allocator setting, the config and a batch.
Used by benchmarks/profile_step.py and benchmarks/step_process.py."""
from __future__ import annotations

import argparse
from collections.abc import Callable


def add_step_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", type=int, choices=(1, 2), default=2)
    parser.add_argument("--batch", type=int, default=None, help="default 64 (Stage-I) or 16 (Stage-II)")
    parser.add_argument("--retain", action="store_true",
                        help="keep freed memory in this process first (train.retain_freed_memory; "
                             "process-wide: every step of the process runs with it)")
    parser.add_argument("overrides", nargs="*", help="config overrides for our step")


def build_steps(args: argparse.Namespace, which: tuple[str, ...] = ("ours", "reference")
                ) -> tuple[int, dict[str, Callable[[int], object]]]:
    """The batch size and ``{name: step(i)}`` for ``which`` of ours and the reference, on the
    same synthetic batch, after applying ``--retain``."""
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
    size = next(iter(data["images"]))
    steps = {}
    if "ours" in which:
        model = model_for_summary(cfg)
        steps["ours"] = lambda i: model.train_step(data, i)
    if "reference" in which:
        reference = ReferenceStep(args.stage)
        steps["reference"] = lambda i: reference(data["images"][size], data["embedding"])
    return batch, steps
