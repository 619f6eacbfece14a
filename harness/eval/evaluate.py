"""One evaluation request: a folder of generated images (with its manifest) against real images,
for any of IS, IS*, FID, KID and R-precision, returning values, settings and warnings."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.data.fingerprint import sha256_file
from harness.data.real_images import RealSplitInput
from harness.data.sources import dataset_fingerprint, load_index
from harness.errors import UserError
from harness.eval.engine import METRICS as FIDELITY_METRICS
from harness.eval.engine import EvalSettings, evaluate_sets
from harness.eval.inception_weights import resolve_inception_weights
from harness.eval.inputs import ImageFolderInput

ALL_METRICS = (*FIDELITY_METRICS, "rprec", "attr")


@dataclass
class EvalRequest:
    fake: str
    metrics: tuple[str, ...] = ("is", "fid", "kid")
    data: str | None = None
    real: str | None = None
    split: str = "test"
    extractor: str = "dataset-classifier"
    classifier: str | None = None
    inception_weights: str | None = None
    inception_sha256: str | None = None
    rprec_encoder: str | None = None
    attr_classifier: str | None = None
    size: int | None = None
    splits: int = 10
    kid_subset_size: int = 1000
    seed: int = 0
    batch_size: int = 64
    real_indices: tuple[int, ...] | None = None  # the reference: these images of the split only


def default_size(req: EvalRequest) -> int:
    """The size images are judged at when none is given: the extractor's own input size, never
    the input's (a file declaring 12000 x 12000 pixels must not size the evaluation)."""
    if req.extractor == "dataset-classifier" and req.classifier:
        from harness.eval.classifier import ClassifierOptions, load_classifier

        return ClassifierOptions(**load_classifier(req.classifier)[1]["options"]).image_size
    if req.extractor == "inception-v3-compat":
        return 299
    return 64


def evaluate(req: EvalRequest) -> dict:
    unknown = [m for m in req.metrics if m not in ALL_METRICS]
    if unknown:
        raise UserError(f"unknown metric(s) {unknown}; known: {', '.join(ALL_METRICS)}")
    size = req.size or default_size(req)
    fake = ImageFolderInput(req.fake, size)
    result = {"values": {}, "warnings": [], "settings": {"resize": size, "resize_filter": "bicubic"}}
    fidelity = tuple(m for m in req.metrics if m in FIDELITY_METRICS)
    if fidelity:
        _fidelity(req, fake, size, fidelity, result)
    if "rprec" in req.metrics:
        _rprecision(req, fake, result)
    if "attr" in req.metrics:
        _attributes(req, fake, result)
    return result


def _attributes(req: EvalRequest, fake: ImageFolderInput, result: dict) -> None:
    from harness.eval.attributes import attribute_accuracy, named_attributes, read_attributes

    if not req.attr_classifier or not req.data:
        raise UserError("attribute accuracy needs --attr-classifier CKPT (`stackgan-bench "
                        "attributes train`) and --data DATASET")
    if not all("caption_id" in r for r in fake.rows):
        raise UserError(f"{req.fake}: attribute accuracy needs a `sample` folder (caption ids)")
    table = read_attributes(req.data)
    named = named_attributes(table, [r["caption_id"] for r in fake.rows])
    images = torch.stack([fake[i] for i in range(len(fake))])
    out = attribute_accuracy(images, named, table, req.attr_classifier, shuffle_seed=req.seed)
    result["values"]["attr_mean"], result["values"]["attr_std"] = out["mean"], out["std"]
    if "shuffled" in out:  # the same images against other images' captions: following them?
        result["values"].update({"attr_shuffled": out["shuffled"], "attr_gain": out["gain"],
                                 "attr_gain_lo": out["gain_ci"][0], "attr_gain_hi": out["gain_ci"][1]})
        result["attr_per_kind"] = out["per_kind"]  # not a logged value: a diagnosis table
    result["settings"]["attr"] = {"classifier": req.attr_classifier,
                                  "classifier_sha256": sha256_file(req.attr_classifier),
                                  "n": out["n"],
                                  "classifier_held_out_accuracy": out["classifier_held_out_accuracy"]}


def real_as_samples(data: str, split: str, size: int, captions_per_image: int,
                    cache_root: str | None = None, images: list[int] | None = None) -> Path:
    """The real images of a split (or the ``images`` of it) written like a `sample` output (one
    row per caption), so the ceiling is measured by exactly the same code as the models. Cached
    by content."""
    from PIL import Image

    from harness.atomic import atomic_directory
    from harness.eval.engine import default_cache_root

    key = hashlib.sha256(json.dumps({"data": dataset_fingerprint(data), "split": split,
                                     "size": size, "captions": captions_per_image,
                                     **({"images": list(images)} if images is not None else {})},
                                    sort_keys=True).encode()).hexdigest()[:20]
    out = Path(cache_root or default_cache_root()) / "ceiling" / key
    if (out / "manifest.jsonl").exists():
        return out
    index = load_index(data, split)
    chosen = list(range(len(index))) if images is None else list(images)
    real = RealSplitInput(data, split, size, indices=chosen)
    with atomic_directory(out, overwrite=out.exists()) as tmp:
        (tmp / "images").mkdir()
        rows = []
        for j, i in enumerate(chosen):
            name = f"images/{i:06d}.png"
            Image.fromarray(real[j].permute(1, 2, 0).numpy()).save(tmp / name)
            for c, caption in enumerate(index.captions(i)[:captions_per_image]):
                rows.append({"file": name, "caption_id": f"{index.keys[i]}#{c}", "caption": caption,
                             "class_id": int(index.class_ids[i])})
        (tmp / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def ceiling_request(request: EvalRequest, captions_per_image: int,
                    per_caption: int | None = None) -> EvalRequest:
    """The ceiling: real test images the dataset classifier never trained on (its held-out
    share of each class), split in two by position: the first half evaluated exactly like a
    model's samples, the second half the FD/KD reference (a split-half value, not the set
    against itself). Without a dataset classifier (Inception features), all the split's images,
    halved the same way.

    With ``per_caption`` (a model's images per caption), IS is taken over splits of the size a
    model's evaluation uses (every test image × ``captions_per_image`` × ``per_caption`` images
    in ``request.splits`` splits): IS over a split of n images is at most n, so the ceiling's
    few held-out images in as many splits as a model's would cap it far below the models' scale
    (the claims miniature: 75 images in 10 splits cap IS at 7.5, where a model's splits hold 75)."""
    from dataclasses import replace

    from harness.eval.classifier import held_out_indices

    if not request.data:
        raise UserError("the ceiling needs --data DATASET")
    split_images = len(load_index(request.data, request.split))
    if request.extractor == "dataset-classifier" and request.classifier:
        held = held_out_indices(request.classifier, request.data, request.split)
    else:
        held = list(range(split_images))
    evaluated, reference = held[0::2], held[1::2]
    if len(reference) < 2:
        raise UserError(f"{request.data}: too few held-out {request.split} images for a ceiling")
    fake = real_as_samples(request.data, request.split, request.size or 64, captions_per_image,
                           images=evaluated)
    splits = request.splits
    if per_caption is not None:
        model_images = split_images * captions_per_image * per_caption
        split_size = model_images / request.splits
        splits = max(1, min(request.splits, round(len(evaluated) * captions_per_image / split_size)))
    return replace(request, fake=str(fake), real_indices=tuple(reference), splits=splits)


def _fidelity(req: EvalRequest, fake: ImageFolderInput, size: int, metrics, result: dict) -> None:
    settings = EvalSettings(extractor=req.extractor, isc_splits=req.splits,
                            kid_subset_size=req.kid_subset_size, seed=req.seed,
                            batch_size=req.batch_size)
    if req.extractor == "dataset-classifier":
        if not req.classifier:
            raise UserError("--classifier PATH is needed with the dataset-classifier extractor "
                            "(make one with `stackgan-bench classifier train`)")
        settings.weights_path, settings.weights_sha256 = req.classifier, sha256_file(req.classifier)
    else:
        weights = resolve_inception_weights(req.inception_weights, req.inception_sha256)
        if not weights.available:
            result["values"].update({m: None for m in metrics})
            result["unavailable"] = {m: weights.unavailable_reason for m in metrics}
            return
        settings.weights_path, settings.weights_sha256 = str(weights.path), weights.sha256
        settings.standard_weights = weights.standard
        if not weights.standard:
            result["warnings"].append(f"non-standard Inception weights (SHA-256 {weights.sha256})")
    real, description = None, None
    if req.data:
        real = RealSplitInput(req.data, req.split, size, indices=req.real_indices)
        description = {"data": dataset_fingerprint(req.data), "split": req.split, "size": size,
                       "bbox": True, "n": len(real), "resize_filter": "bicubic"}
        if req.real_indices is not None:
            description["indices"] = hashlib.sha256(
                json.dumps(list(req.real_indices)).encode()).hexdigest()[:16]
    elif req.real:
        real = ImageFolderInput(req.real, size)
    out = evaluate_sets(fake, real, metrics, settings, description)
    result["values"].update(out["values"])
    result["warnings"] += out["warnings"]
    result["settings"].update(out["settings"])


def _rprecision(req: EvalRequest, fake: ImageFolderInput, result: dict) -> None:
    from harness.eval.rprecision import r_precision

    if not req.rprec_encoder or not req.data:
        raise UserError("R-precision needs --rprec-encoder CKPT (an evaluator text encoder trained "
                        "separately from the generator's) and --data DATASET (the caption pool)")
    rows = fake.rows
    if not all("caption" in r and "class_id" in r for r in rows):
        raise UserError(f"{req.fake}: R-precision needs a `sample` folder whose manifest gives each "
                        "image's caption and class")
    index = load_index(req.data, req.split)
    pool_captions, pool_classes = [], []
    for i in range(len(index)):
        caps = index.captions(i)
        pool_captions += caps
        pool_classes += [int(index.class_ids[i])] * len(caps)
    meta = (index.split_dir or Path(req.data) / req.split) / "char-CNN-RNN-embeddings.pickle.meta.json"
    generator_sha = json.loads(meta.read_text()).get("encoder_sha256") if meta.exists() else None
    images = torch.stack([fake[i] for i in range(len(fake))])
    out = r_precision(images, [r["caption"] for r in rows], [int(r["class_id"]) for r in rows],
                      pool_captions, pool_classes, req.rprec_encoder, generator_sha, seed=req.seed)
    result["values"]["rprec_mean"], result["values"]["rprec_std"] = out["mean"], out["std"]
    result["settings"]["rprec"] = {k: v for k, v in out.items() if k not in ("mean", "std")}
