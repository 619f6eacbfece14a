"""``stackgan-bench text …``: train the char-CNN-RNN text encoder and embed captions."""

from __future__ import annotations

import argparse
import json

from harness.cli.common import add_command, add_group
from harness.text.models import PRESETS
from harness.text.train import DEFAULT_STEPS, TextTrainOptions

_D = TextTrainOptions()


def register(sub) -> None:
    group = add_group(sub, "text", "Train the char-CNN-RNN text encoder and embed captions.")

    p = add_command(group, "train", "Train a char-CNN-RNN with an image encoder (DS-SJE loss) "
                    "and report test-split retrieval accuracy against chance.",
                    "stackgan-bench text train --data data/synthbirds --out runs/text-encoder")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--out", required=True, help="output folder (encoder.pt, metrics.json)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=_D.preset,
                   help=f"encoder sizes (default {_D.preset}; 'paper' is the paper's text side)")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps (default per preset: "
                   + ", ".join(f"{k} {v}" for k, v in DEFAULT_STEPS.items()) + ")")
    p.add_argument("--batch-classes", type=int, default=_D.batch_classes,
                   help=f"distinct classes per batch (default {_D.batch_classes})")
    p.add_argument("--lr", type=float, default=_D.lr, help=f"RMSprop learning rate (default {_D.lr})")
    p.add_argument("--seed", type=int, default=_D.seed, help=f"seed (default {_D.seed})")
    p.add_argument("--force", action="store_true", help="retrain even if an up-to-date encoder exists")
    p.add_argument("--embed", action="store_true",
                   help="afterwards write the dataset's caption embeddings with this encoder")
    p.set_defaults(func=_train)

    p = add_command(group, "embed", "Write char-CNN-RNN-embeddings.pickle (N x 10 x 1024, the "
                    "released format) for each split.",
                    "stackgan-bench text embed --data data/synthbirds --encoder runs/text-encoder/encoder.pt")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--encoder", required=True, help="encoder.pt written by `text train`")
    p.add_argument("--name", default="char-CNN-RNN-embeddings.pickle",
                   help="file name inside each split folder")
    p.add_argument("--force", action="store_true",
                   help="overwrite an existing file (also one not written by this command)")
    p.set_defaults(func=_embed)


def _train(args: argparse.Namespace) -> int:
    from harness.text.train import train_text_encoder

    opts = TextTrainOptions(preset=args.preset, steps=args.steps, batch_classes=args.batch_classes,
                            lr=args.lr, seed=args.seed)
    metrics = train_text_encoder(args.data, args.out, opts, force=args.force)
    print(json.dumps(metrics, indent=2))
    print(f"caption->image top-1 over {metrics['test_classes']} test classes: "
          f"{metrics['caption_to_image_top1']:.1%} (chance {metrics['chance']:.1%}); "
          f"image->class top-1: {metrics['image_to_class_top1']:.1%}")
    if args.embed:
        from harness.text.embed import embed_dataset

        embed_dataset(args.data, f"{args.out}/encoder.pt")
    return 0


def _embed(args: argparse.Namespace) -> int:
    from harness.text.embed import embed_dataset

    embed_dataset(args.data, args.encoder, name=args.name, force=args.force)
    return 0
