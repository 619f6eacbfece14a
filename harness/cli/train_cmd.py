"""``stackgan-bench train``."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="Train one StackGAN stage from a config preset or file.",
        description="Train one StackGAN stage. Overrides are key.sub=value; unknown keys are "
        "refused. Stage-II names its Stage-I run with train.stage1_run=RUN.",
        epilog="example:\n  stackgan-bench train --config harness/config/presets/quick_stage1.yaml "
        "data.root=data/synthbirds train.seed=1",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="preset name (harness/config/presets/) or YAML file")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    p.add_argument("--resume", action="store_true",
                   help="continue the run's latest checkpoint (config changes are refused)")
    p.add_argument("--nproc", type=int, default=1,
                   help="data-parallel processes on this machine, through torchrun (default 1); "
                   "the global batch data.batch_size is split across them")
    p.set_defaults(func=_train)


def _train(args) -> int:
    import os
    import subprocess
    import sys

    from harness.config.load import load_config
    from harness.runner.trainer import train

    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        # Refuse a bad config before starting N copies.
        load_config(args.config, args.overrides, resolve_code=True)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={args.nproc}", "-m", "harness.cli.main", "train",
               "--config", args.config, *args.overrides] + (["--resume"] if args.resume else [])
        return subprocess.call(cmd)

    cfg = load_config(args.config, args.overrides, resolve_code=True)
    result = train(cfg, resume=args.resume)
    print(f"{result.run_dir}: {result.steps} steps"
          + (f" (stopped by signal {result.stopped_by_signal})" if result.stopped_by_signal else ""))
    return 0 if result.stopped_by_signal is None else 128 + result.stopped_by_signal
