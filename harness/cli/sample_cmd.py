"""``stackgan-bench sample``."""

from __future__ import annotations

import argparse


def register(sub) -> None:
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
