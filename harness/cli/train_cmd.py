"""``stackgan-bench train``, ``model summary`` and ``sample``."""

from __future__ import annotations

import argparse
import json

from harness.cli.common import add_command, add_group


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

    group = add_group(sub, "model", "Inspect model configurations; import released checkpoints.")
    p = add_command(group, "summary", "Per network: parameters (total, trainable) and the FLOPs "
                    "of one training step at the configured batch size.",
                    "stackgan-bench model summary --config birds_stage1_pytorch --json")
    p.add_argument("--config", required=True, help="preset name (harness/config/presets/) or YAML file")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count (faster)")
    p.set_defaults(func=_summary)

    p = add_command(group, "import", "A run folder from the authors' released checkpoints, which "
                    "sample, eval --run, human make and the reports accept like a trained run.",
                    "stackgan-bench model import stackgan-pytorch --netG netG_epoch_600.pth "
                    "--netD netD_epoch_last.pth --config birds_stage2_pytorch --out runs/official-birds")
    p.add_argument("source", choices=("stackgan-pytorch",),
                   help="whose files: stackgan-pytorch (hanzhanggit/StackGAN-Pytorch state dicts)")
    p.add_argument("--netG", required=True, help="netG_epoch_N.pth (Stage-I G, or Stage-II G "
                   "holding STAGE1_G.*)")
    p.add_argument("--netD", default=None, help="netD_epoch_last.pth (optional)")
    p.add_argument("--config", required=True, help="a pytorch-variant preset of the same stage and "
                   "sizes, e.g. birds_stage1_pytorch, birds_stage2_pytorch, coco_stage2")
    p.add_argument("--out", required=True, help="the run folder to write (must not exist)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides (e.g. data.root=DIR)")
    p.set_defaults(func=_import)

    p = sub.add_parser(
        "sample", help="Write images for test captions or a captions file, with a manifest.",
        description="Sample K images per caption from a trained run. The manifest (manifest.jsonl) "
        "maps caption id, caption text, class and noise seed to each file.",
        epilog="example:\n  stackgan-bench sample --run runs/quick_stage2 --split test "
        "--per-caption 2 --out samples/quick",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run folder")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--split", help="dataset split whose captions to use (e.g. test)")
    src.add_argument("--captions", help="text file, one caption per line (embedded with the "
                     "run's text encoder)")
    p.add_argument("--protocol", choices=("all-captions", "stackgan-tf"), default=None,
                   help="with --split: all-captions (each caption once, the default) or stackgan-tf "
                   "(the first caption of each image, 8 images each: the official TF evaluation)")
    p.add_argument("--per-caption", type=int, default=None, help="images per caption (default 1)")
    p.add_argument("--captions-per-image", type=int, default=None,
                   help="with --split: how many of each image's captions (default all 10)")
    p.add_argument("--limit", type=int, default=None, help="with --split: first N images only")
    p.add_argument("--encoder", default=None, help="text encoder for --captions (default: the "
                   "one recorded with the dataset's embeddings)")
    p.add_argument("--seed", type=int, default=0, help="noise seed base (default 0)")
    p.add_argument("--out", required=True, help="output folder (must not exist)")
    p.set_defaults(func=_sample)


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


def _import(args) -> int:
    from harness.runner.import_official import import_stackgan_pytorch

    out = import_stackgan_pytorch(args.netG, args.config, args.out, args.netD, args.overrides)
    print(f"{out}: imported {args.netG}" + (f" and {args.netD}" if args.netD else ""))
    return 0


def _summary(args) -> int:
    from harness.config.load import load_config
    from harness.runner.summary import summarize

    info = summarize(load_config(args.config, args.overrides), with_flops=not args.no_flops)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['config']}: {info['family']} {info['variant']}, Stage-{info['stage']}, "
          f"{info['output_size']}x{info['output_size']}, batch {info['batch_size']}")
    for name, c in info["networks"].items():
        print(f"  {name:28s} {c['total']:>13,d} parameters ({c['trainable']:,d} trainable)")
    if "train_step_flops" in info:
        print(f"  one training step: {info['train_step_flops'] / 1e9:,.1f} GFLOP")
    return 0


def _sample(args) -> int:
    from harness.eval.protocols import resolve
    from harness.runner.sample import sample_run

    protocol = resolve(args.protocol, args.captions_per_image, args.per_caption)
    manifest = sample_run(args.run, args.out, split=args.split, captions_file=args.captions,
                          per_caption=protocol.per_caption,
                          captions_per_image=protocol.captions_per_image,
                          limit=args.limit, seed=args.seed, encoder=args.encoder,
                          protocol=protocol.name if args.split else None)
    print(f"{args.out}: {manifest['num_images']} images for {manifest['num_captions']} captions")
    return 0
