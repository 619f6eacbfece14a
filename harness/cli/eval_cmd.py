"""``stackgan-bench eval``."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from harness.eval.protocols import PROTOCOLS


def register(sub) -> None:
    p = sub.add_parser(
        "eval", help="IS / IS* / FID / KID / R-precision of generated images.",
        description="Evaluates a run (sampling its test captions, then logging every value and "
        "its settings to the run in MLflow) or any folder of images (a `sample` output, or "
        "generators trained elsewhere). torch-fidelity is the engine for IS/FID/KID; real-set "
        "features are cached under a key of every setting that changes them.",
        epilog="examples:\n  stackgan-bench eval --run runs/quick_stage2 --data data/synthbirds "
        "--classifier runs/classifier/classifier.pt\n  stackgan-bench eval --fake samples/q2 "
        "--data data/synthbirds --classifier runs/classifier/classifier.pt --metrics is,fid,kid --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="a run folder: sample its --split captions, evaluate, log to MLflow")
    src.add_argument("--fake", help="folder of generated images")
    src.add_argument("--ceiling", action="store_true",
                     help="evaluate the real --split images of --data the same way (the ceiling)")
    src.add_argument("--validate", action="store_true",
                     help="metric validity: the real --split images of --data the classifier "
                     "never trained on, controlled degradations of them (↓2↑, ↓4↑, blur, JPEG, "
                     "colour, shuffled captions, noise) and graded ladders down to noise, every "
                     "metric with a 95%% bootstrap CI and every step's paired difference, at --size")
    real = p.add_mutually_exclusive_group()
    real.add_argument("--real", help="folder of real images")
    real.add_argument("--data", help="dataset folder whose real images (and captions) to use")
    p.add_argument("--split", default="test", help="the split (default test)")
    p.add_argument("--protocol", choices=tuple(PROTOCOLS), default=None,
                   help="with --run / --ceiling: all-captions (each caption of each test image once, "
                   "the default) or stackgan-tf (the official TF evaluation: the first caption of "
                   "each test image, 8 images each)")
    p.add_argument("--per-caption", type=int, default=None,
                   help="with --run: images per caption (a custom protocol)")
    p.add_argument("--captions-per-image", type=int, default=None,
                   help="with --run / --ceiling: the first N captions of each test image (a custom "
                   "protocol)")
    p.add_argument("--metrics", default="is,fid,kid",
                   help="comma-separated: is, is_star, fid, kid, rprec, attr")
    p.add_argument("--extractor", choices=("dataset-classifier", "inception-v3-compat"),
                   default="dataset-classifier", help="feature extractor (default dataset-classifier)")
    p.add_argument("--classifier", help="dataset classifier checkpoint (for dataset-classifier)")
    p.add_argument("--inception-weights", help="local pt_inception-2015-12-05-6726825d.pth")
    p.add_argument("--inception-sha256", help="expected SHA-256 of the weights, or 'any'")
    p.add_argument("--rprec-encoder", help="evaluator text encoder for R-precision (trained apart "
                   "from the generator's)")
    p.add_argument("--attr-classifier", help="attribute classifier (`attributes train`) for attr")
    p.add_argument("--size", type=int, default=None,
                   help="resize every image to this square size (default: the extractor's input size: "
                        "the dataset classifier's training size, 299 for Inception, else 64)")
    p.add_argument("--splits", type=int, default=10, help="IS splits (default 10)")
    p.add_argument("--kid-subset-size", type=int, default=1000, help="KID subset size (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of sampling, shuffling, KID subsets")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--bootstrap", type=int, default=2000,
                   help="with --validate: bootstrap resamples per CI (default 2000)")
    p.add_argument("--out", default=None,
                   help="with --validate: folder for validity.json / validity.md (default validity-SIZE)")
    p.set_defaults(func=_eval)


def _validate(args) -> int:
    from harness.errors import UserError
    from harness.eval.validity import (
        ValidityRequest,
        format_table,
        log_report,
        validate_metrics,
        write_report,
    )

    if not args.data or not args.size or not args.classifier:
        raise UserError("--validate needs --data DATASET, --size S and --classifier CKPT (trained at S)")
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    report = validate_metrics(ValidityRequest(
        data=args.data, size=args.size, classifier=args.classifier, rprec_encoder=args.rprec_encoder,
        attr_classifier=args.attr_classifier, metrics=metrics, bootstrap=args.bootstrap,
        seed=args.seed, split=args.split))
    out = args.out or f"validity-{args.size}"
    write_report(report, out)
    log_report(report, out)
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    print(f"written to {out}/validity.json and validity.md")
    return 0


def _eval(args) -> int:
    from harness.eval.evaluate import EvalRequest, evaluate

    if args.validate:
        return _validate(args)
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    from harness.errors import UserError
    from harness.eval.evaluate import ceiling_request
    from harness.eval.protocols import resolve

    protocol = resolve(args.protocol, args.captions_per_image, args.per_caption)
    request = EvalRequest(
        fake=args.fake, metrics=metrics, data=args.data, real=args.real, split=args.split,
        extractor=args.extractor, classifier=args.classifier, inception_weights=args.inception_weights,
        inception_sha256=args.inception_sha256, rprec_encoder=args.rprec_encoder,
        attr_classifier=args.attr_classifier, size=args.size,
        splits=args.splits, kid_subset_size=args.kid_subset_size, seed=args.seed,
        batch_size=args.batch_size)
    if args.run:  # sampled, evaluated and logged under the run's lock (harness.eval.run_eval)
        from harness.eval.run_eval import evaluate_run

        result = evaluate_run(args.run, request, protocol)
    elif args.ceiling:
        if not args.data:
            raise UserError("--ceiling needs --data DATASET")
        result = evaluate(ceiling_request(replace(request, size=args.size or 64),
                                          protocol.captions_per_image, protocol.per_caption))
        result["settings"].update(protocol.settings())
    else:
        result = evaluate(request)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for k, v in result["values"].items():
            print(f"{k:14s} " + ("unavailable" if v is None else f"{v:.6g}"))
        for m, why in result.get("unavailable", {}).items():
            print(f"{m} unavailable: {why}")
        for w in result["warnings"]:
            print(f"warning: {w}")
    return 1 if result.get("unavailable") else 0
