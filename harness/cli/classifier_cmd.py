"""``stackgan-bench classifier train``."""

from __future__ import annotations

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


def _train_classifier(args) -> int:
    from harness.eval.classifier import train_classifier

    metrics = train_classifier(args.data, args.out, ClassifierOptions(
        preset=args.preset, split=args.split, steps=args.steps, seed=args.seed,
        init_checkpoint=args.init_checkpoint))
    print(json.dumps(metrics, indent=2))
    print(f"held-out accuracy {metrics['held_out_accuracy']:.1%} over {metrics['classes']} classes "
          f"(chance {metrics['chance']:.1%})")
    return 0
