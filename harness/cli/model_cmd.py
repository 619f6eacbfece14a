"""``stackgan-bench model summary`` and ``model import``."""

from __future__ import annotations

import json

from harness.cli.common import add_command, add_group


def register(sub) -> None:
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
