"""``stackgan-bench data …``: make and validate datasets."""

from __future__ import annotations

import argparse

from harness.cli.common import add_command, add_group
from harness.data.synthbirds.build import SynthOptions

_D = SynthOptions()


def register(sub) -> None:
    group = add_group(sub, "data", "Make and validate datasets.")

    p = add_command(group, "synth", "Render the built-in synthbirds dataset (CUB layout, no "
                    "downloads); bit-for-bit deterministic for a seed.",
                    "stackgan-bench data synth --out data/synthbirds --per-class 20")
    p.add_argument("--out", required=True, help="folder to create (must not exist)")
    p.add_argument("--classes", type=int, default=_D.classes, help=f"species (default {_D.classes})")
    p.add_argument("--per-class", type=int, default=_D.per_class,
                   help=f"images per species (default {_D.per_class}, about CUB's)")
    p.add_argument("--size", type=int, default=_D.size, help=f"image side in pixels (default {_D.size})")
    p.add_argument("--seed", type=int, default=_D.seed, help=f"seed (default {_D.seed})")
    p.add_argument("--test-classes", type=int, default=None,
                   help="classes in the test split (default: a quarter, 50 of 200 as CUB)")
    p.add_argument("--scene", choices=("varied", "plain"), default=_D.scene,
                   help="varied: sky, foliage, water, branch or meadow (default); plain: a pale "
                   "backdrop (the CPU scales' miniature)")
    p.add_argument("--fill", type=float, nargs=2, default=list(_D.fill), metavar=("MIN", "MAX"),
                   help=f"the share of the frame the bird spans (default {_D.fill[0]} {_D.fill[1]})")
    p.add_argument("--palette", choices=("full", "salient"), default=_D.palette,
                   help="the part colours: full (CUB's 15, default) or salient (8 far apart)")
    p.add_argument("--parts", choices=("natural", "salient"), default=_D.parts,
                   help="natural (default) or salient: the crown cap and tail drawn bigger")
    p.add_argument("--captions", choices=("all", "colours"), default=_D.captions,
                   help="what captions name: all (part colours, bill, wing pattern, size; default) "
                   "or colours (the four part colours only)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.set_defaults(func=_synth)

    p = add_command(group, "check", "Validate a dataset folder; list every problem with its "
                    "file. Exit 0 when clean, 1 otherwise.", "stackgan-bench data check data/synthbirds")
    p.add_argument("dir", help="dataset folder (CUB/synthbirds, Oxford-102 or COCO layout)")
    p.add_argument("--layout", choices=("cub", "oxford102", "coco"), default=None,
                   help="force a layout instead of detecting it")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.set_defaults(func=_check)


def _synth(args: argparse.Namespace) -> int:
    from harness.data.synthbirds.build import build_synthbirds

    opts = SynthOptions(classes=args.classes, per_class=args.per_class, size=args.size,
                        seed=args.seed, test_classes=args.test_classes, scene=args.scene,
                        fill=tuple(args.fill), palette=args.palette, parts=args.parts,
                        captions=args.captions)
    manifest = build_synthbirds(args.out, opts, workers=args.workers, overwrite=args.overwrite)
    print(f"{args.out}: {manifest['num_images']} images of {manifest['num_classes']} species "
          f"({len(manifest['train_classes'])} train / {len(manifest['test_classes'])} test classes)"
          f"\nfingerprint {manifest['fingerprint']}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from harness.data.check import check_dataset

    report = check_dataset(args.dir, layout=args.layout, workers=args.workers)
    print(report.summary())
    return 0 if report.ok else 1
