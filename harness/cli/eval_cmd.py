"""``stackgan-bench classifier train`` and ``stackgan-bench eval``."""

from __future__ import annotations

import argparse
import json

from harness.cli.common import add_command, add_group
from harness.eval.classifier import DEFAULT_STEPS, ClassifierOptions

_C = ClassifierOptions()


def register(sub) -> None:
    group = add_group(sub, "classifier", "The dataset classifier used as the IS/FID/KID extractor.")
    p = add_command(group, "train", "Train the dataset classifier on real images of the "
                    "evaluation classes and record its held-out accuracy.",
                    "stackgan-bench classifier train --data data/synthbirds --out runs/classifier")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--out", required=True, help="output folder (classifier.pt, metrics.json)")
    p.add_argument("--preset", choices=("small", "inception"), default=_C.preset,
                   help="small CNN at 64×64 (CPU) or Inception-v3 at 299×299 (GPU)")
    p.add_argument("--split", default=_C.split, help=f"whose classes it learns (default {_C.split})")
    p.add_argument("--steps", type=int, default=None,
                   help="steps (default per preset: "
                   + ", ".join(f"{k} {v}" for k, v in DEFAULT_STEPS.items()) + ")")
    p.add_argument("--seed", type=int, default=_C.seed, help=f"seed (default {_C.seed})")
    p.add_argument("--init-checkpoint", default=None,
                   help="inception preset: a local torchvision Inception-v3 state dict to start from")
    p.set_defaults(func=_train_classifier)

    p = sub.add_parser(
        "eval", help="IS / FID / KID of a folder of generated images against real images.",
        description="Evaluates any folder of images (a `sample` output, or generators trained "
        "elsewhere) with torch-fidelity as the engine; prints the values with the settings behind "
        "them. Real-set features are cached under a key of every setting that changes them.",
        epilog="example:\n  stackgan-bench eval --fake samples/q2 --data data/synthbirds "
        "--classifier runs/classifier/classifier.pt --metrics is,fid,kid --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fake", required=True, help="folder of generated images")
    real = p.add_mutually_exclusive_group()
    real.add_argument("--real", help="folder of real images")
    real.add_argument("--data", help="dataset folder whose real images to use")
    p.add_argument("--split", default="test", help="with --data: the split (default test)")
    p.add_argument("--metrics", default="is,fid,kid", help="comma-separated: is, fid, kid")
    p.add_argument("--extractor", choices=("dataset-classifier", "inception-v3-compat"),
                   default="dataset-classifier", help="feature extractor (default dataset-classifier)")
    p.add_argument("--classifier", help="dataset classifier checkpoint (for dataset-classifier)")
    p.add_argument("--inception-weights", help="local pt_inception-2015-12-05-6726825d.pth")
    p.add_argument("--inception-sha256", help="expected SHA-256 of the weights, or 'any'")
    p.add_argument("--size", type=int, default=None,
                   help="resize every image to this square size (default: the fake images' size)")
    p.add_argument("--splits", type=int, default=10, help="IS splits (default 10)")
    p.add_argument("--kid-subset-size", type=int, default=1000, help="KID subset size (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of shuffling and KID subsets")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_eval)


def _train_classifier(args) -> int:
    from harness.eval.classifier import train_classifier

    metrics = train_classifier(args.data, args.out, ClassifierOptions(
        preset=args.preset, split=args.split, steps=args.steps, seed=args.seed,
        init_checkpoint=args.init_checkpoint))
    print(json.dumps(metrics, indent=2))
    print(f"held-out accuracy {metrics['held_out_accuracy']:.1%} over {metrics['classes']} classes "
          f"(chance {metrics['chance']:.1%})")
    return 0


def _eval(args) -> int:
    from harness.data.fingerprint import sha256_file
    from harness.data.sources import dataset_fingerprint
    from harness.errors import UserError
    from harness.eval.engine import EvalSettings, evaluate_sets
    from harness.eval.inception_weights import resolve_inception_weights
    from harness.eval.inputs import ImageFolderInput, RealSplitInput

    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    fake = ImageFolderInput(args.fake, args.size)
    size = args.size or int(fake[0].shape[-1])
    fake.size = size
    settings = EvalSettings(extractor=args.extractor, isc_splits=args.splits,
                            kid_subset_size=args.kid_subset_size, seed=args.seed,
                            batch_size=args.batch_size, extra={"resize": size, "resize_filter": "bicubic"})
    if args.extractor == "dataset-classifier":
        if not args.classifier:
            raise UserError("--classifier PATH is needed with the dataset-classifier extractor "
                            "(make one with `stackgan-bench classifier train`)")
        settings.weights_path, settings.weights_sha256 = args.classifier, sha256_file(args.classifier)
    else:
        weights = resolve_inception_weights(args.inception_weights, args.inception_sha256)
        if not weights.available:
            result = {"values": {m: None for m in metrics}, "unavailable": weights.unavailable_reason}
            print(json.dumps(result, indent=2) if args.json else
                  f"metrics unavailable: {weights.unavailable_reason}")
            return 1
        settings.weights_path, settings.weights_sha256 = str(weights.path), weights.sha256
        settings.standard_weights = weights.standard
    real, description = None, None
    if args.data:
        real = RealSplitInput(args.data, args.split, size)
        description = {"data": dataset_fingerprint(args.data), "split": args.split, "size": size,
                       "bbox": True, "n": len(real), "resize_filter": "bicubic"}
    elif args.real:
        real = ImageFolderInput(args.real, size)
    result = evaluate_sets(fake, real, metrics, settings, description)
    if not settings.standard_weights:
        result["warnings"].append(f"non-standard Inception weights (SHA-256 {settings.weights_sha256})")
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result["values"].items():
            print(f"{k:10s} {v:.6g}")
        for w in result["warnings"]:
            print(f"warning: {w}")
    return 0
