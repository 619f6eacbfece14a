"""``stackgan-bench attributes train``."""

from __future__ import annotations

import json

from harness.cli.common import add_command, add_group
from harness.eval.attributes import AttributeOptions


def register(sub) -> None:
    group = add_group(sub, "attributes", "The attribute classifier behind attribute accuracy.")
    p = add_command(group, "train", "Train the attribute classifier (one head per attribute kind) "
                    "on real training-split images; held-out accuracy on the test split's unseen "
                    "species.",
                    "stackgan-bench attributes train --data data/synthbirds --out runs/attributes")
    p.add_argument("--data", required=True, help="dataset folder with attribute labels (synthbirds)")
    p.add_argument("--out", required=True, help="output folder (attributes.pt)")
    p.add_argument("--steps", type=int, default=800, help="steps (default 800)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--size", type=int, default=64, help="image size it judges (default 64)")
    p.add_argument("--renders", type=int, default=None,
                   help="synthbirds only: birds of attribute combinations no species has, added to "
                        "the training images so the classifier reads parts instead of species "
                        "(default: as many as the real training images; 0: none)")
    p.add_argument("--degrade", type=float, default=AttributeOptions.degrade,
                   help="share of training crops degraded like generated images (down-up sampling, "
                        f"noise, blur) so that it reads them (default {AttributeOptions.degrade}; 0: none)")
    p.set_defaults(func=_train_attributes)


def _train_attributes(args) -> int:
    from harness.eval.attributes import AttributeOptions, train_attribute_classifier

    metrics = train_attribute_classifier(args.data, args.out, AttributeOptions(
        steps=args.steps, seed=args.seed, image_size=args.size, renders=args.renders,
        degrade=args.degrade))
    print(json.dumps(metrics, indent=2))
    return 0
