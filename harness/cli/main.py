"""The ``stackgan-bench`` command: subcommands grouped by concern, each with an example.

Each group module exposes ``register(subparsers)`` and sets ``func`` on its parsers; the
defaults of every option come from the same dataclasses the Python API uses.
"""

from __future__ import annotations

import argparse
import sys

from harness import __version__
from harness.cli import (
    attributes_cmd,
    classifier_cmd,
    data_cmd,
    eval_cmd,
    experiment_cmd,
    gate_cmd,
    human_cmd,
    model_cmd,
    report_cmd,
    reproduce_cmd,
    sample_cmd,
    sweep_cmd,
    text_cmd,
    tracking_cmd,
    train_cmd,
)
from harness.errors import UserError

# One module per command or command group, in the order `--help` lists them.
GROUPS = (data_cmd, text_cmd, train_cmd, model_cmd, sample_cmd, sweep_cmd, tracking_cmd,
          classifier_cmd, attributes_cmd, eval_cmd, experiment_cmd, human_cmd, reproduce_cmd,
          report_cmd, gate_cmd)

EPILOG = """examples:
  stackgan-bench data synth --out data/synthbirds
  stackgan-bench data check data/synthbirds
  stackgan-bench text train --data data/synthbirds --out runs/text-encoder
  stackgan-bench text embed --data data/synthbirds --encoder runs/text-encoder/encoder.pt
  stackgan-bench train --config quick_stage1
  stackgan-bench sample --run runs/quick_stage1 --split test --per-caption 2 --out samples/q1
  stackgan-bench experiment run table1 table2 --scale smoke
  stackgan-bench reproduce --preset quick
  stackgan-bench gate
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stackgan-bench",
        description="Benchmark and reproducibility harness for text-to-image GANs (StackGAN).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        group.register(sub)
    return parser


def parse(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    parser = parser or build_parser()
    # argparse takes a command's key=value overrides only in one run of positionals: after an
    # option (`model import … --out X data.root=DIR`) they would be "unrecognized". They are
    # overrides wherever they stand.
    args, rest = parser.parse_known_args(argv)
    if rest:
        if isinstance(getattr(args, "overrides", None), list) and all(
                "=" in r and not r.startswith("-") for r in rest):
            args.overrides.extend(rest)
        else:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(argv, parser)
    if not getattr(args, "func", None):
        # A group without its subcommand: show that group's help.
        (getattr(args, "group_parser", None) or parser).print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"stackgan-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stackgan-bench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
