"""Attribute accuracy: does each generated image show the attributes its caption names?

An attribute classifier (one softmax head per attribute kind — crown colour, wing colour,
underparts colour, tail colour, wing pattern, bill shape, bill length, size) is trained on the
real images of the training split, whose species are disjoint from the test split's; its
held-out accuracy per kind is measured on real test images. The score of a generated image is
the fraction of the attributes named in its caption that the classifier sees in the image.
Needs per-image attribute labels and per-caption attribute lists (synthbirds writes both, in
CUB's attribute file format plus ``attributes/caption_attributes.jsonl``).

On synthbirds the classifier also trains on birds of attribute combinations no species of the
dataset has (``attribute_renders``): without them it learns species, not parts. Its heads read
the last block both averaged and max-pooled over space: a part (a crown, a bill) is a small
region, which an average over the whole image dilutes. Measured at 128 px on the claims dataset
(width 16, 1200 steps): held-out crown colour 0.29 -> 0.96 (chance 0.07), bill shape 0.15 -> 0.53
(chance 0.25), tail colour 0.25 -> 0.84 with the renders.

It also trains on degraded copies (``degrade``): generated images are noisy and of low
resolution, and a classifier trained on clean renders only could not read them. Measured on the
miniature (quick scale, 500 steps, 64 px): real test images 0.91, with Gaussian noise of SD 16
levels 0.39 and of SD 32 0.24, at the shuffled-caption level (0.25); a model's samples then
showed a gain of a few hundredths whatever they drew (docs/captions.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from harness.errors import UserError
from harness.eval.classifier import SmallClassifier, prepare
from harness.serialization import load_torch_checked, save_torch_atomic

FORMAT = "stackgan-bench/attribute-classifier/2"


@dataclass(frozen=True)
class AttributeOptions:
    steps: int = 800
    batch_size: int = 64
    lr: float = 3e-3  # the peak of a one-cycle schedule
    width: int = 32
    image_size: int = 64
    seed: int = 0
    # Novel-species renders added to the training images (synthbirds only): None = as many as
    # the real training images, 0 = none.
    renders: int | None = None
    # The share of training crops degraded like generated images (down-up sampling by 2 or 4,
    # Gaussian noise of SD up to DEGRADE_NOISE levels, light blur); 0 = clean images only.
    degrade: float = 0.8


DEGRADE_NOISE = 32.0  # 8-bit levels


@dataclass
class AttributeTable:
    kinds: list[str]  # e.g. crown_color
    values: dict[str, list[str]]  # kind -> value names
    by_id: dict[int, tuple[str, str]]  # attribute id -> (kind, value)
    image_values: dict[str, dict[str, str]]  # image key -> kind -> value
    caption_ids: dict[str, list[list[int]]]  # image key -> per caption, attribute ids named


def read_attributes(root: str | os.PathLike) -> AttributeTable:
    cub = Path(root) / "CUB_200_2011"
    names = cub / "attributes" / "attributes.txt"
    labels = cub / "attributes" / "image_attribute_labels.txt"
    captions = cub / "attributes" / "caption_attributes.jsonl"
    for path in (names, labels, captions):
        if not path.exists():
            raise UserError(f"{path}: missing; attribute accuracy needs per-image attribute labels "
                            "and per-caption attribute lists (synthbirds provides them)")
    by_id, values = {}, {}
    for line in names.read_text().splitlines():
        attr_id, name = line.split(maxsplit=1)
        kind, value = name.removeprefix("has_").split("::")
        by_id[int(attr_id)] = (kind, value)
        values.setdefault(kind, []).append(value)
    keys = {}
    for line in (cub / "images.txt").read_text().splitlines():
        image_id, rel = line.split()
        keys[image_id] = rel.rsplit(".", 1)[0]
    image_values: dict[str, dict[str, str]] = {}
    for line in labels.read_text().splitlines():
        image_id, attr_id, present, *_ = line.split()
        if present == "1":
            kind, value = by_id[int(attr_id)]
            image_values.setdefault(keys[image_id], {})[kind] = value
    caption_ids = {}
    for line in captions.read_text().splitlines():
        rec = json.loads(line)
        caption_ids[rec["key"]] = rec["captions"]
    return AttributeTable(sorted(values), values, by_id, image_values, caption_ids)


class AttributeClassifier(nn.Module):
    def __init__(self, head_sizes: list[int], width: int):
        super().__init__()
        self.trunk = SmallClassifier(1, width)
        dim = 2 * self.trunk.fc.in_features
        self.heads = nn.ModuleList(nn.Linear(dim, n) for n in head_sizes)

    def forward(self, x):
        h = self.trunk.features(x)
        pool = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], 1)
        return [head(pool) for head in self.heads]


def _value_labels(table: AttributeTable, values: list[dict[str, str]]) -> torch.Tensor:
    return torch.tensor([[table.values[k].index(v[k]) if k in v else -100 for k in table.kinds]
                         for v in values])


def _labels(table: AttributeTable, keys: list[str]) -> torch.Tensor:
    return _value_labels(table, [table.image_values.get(key, {}) for key in keys])


def degrade_batch(images_u8: torch.Tensor, share: float, gen: torch.Generator) -> torch.Tensor:
    """``share`` of the images (uint8 N×3×H×W) degraded as generated images are: each chosen
    image down- and up-sampled by 1, 2 or 4 (bilinear, antialiased), given Gaussian noise of an SD
    drawn up to ``DEGRADE_NOISE`` levels, and blurred (σ 0.5–1.5 px) one time in three; uint8 out."""
    from torchvision.transforms.functional import gaussian_blur

    from harness.core.compute_dtype import compute_dtype

    n, _, h, w = images_u8.shape
    chosen = torch.rand(n, generator=gen) < share
    factor = torch.tensor([1, 2, 2, 4])[torch.randint(0, 4, (n,), generator=gen)]
    sigma = torch.rand(n, generator=gen) * DEGRADE_NOISE
    blur = torch.rand(n, generator=gen) < 1 / 3
    blur_sigma = 0.5 + torch.rand(n, generator=gen)
    noise = torch.randn(images_u8.shape, generator=gen, dtype=compute_dtype())
    out = images_u8.clone()
    for i in torch.nonzero(chosen).flatten().tolist():
        x = images_u8[i:i + 1].to(compute_dtype())
        f = int(factor[i])
        if f > 1:
            x = F.interpolate(x, size=(h // f, w // f), mode="bilinear", antialias=True, align_corners=False)
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        if bool(blur[i]):
            x = gaussian_blur(x, kernel_size=5, sigma=float(blur_sigma[i]))
        x = x + float(sigma[i]) * noise[i:i + 1]
        out[i] = x.round().clamp(0, 255).to(torch.uint8)[0]
    return out


def train_attribute_classifier(data_root, out_dir, options: AttributeOptions = AttributeOptions(),
                               progress: bool = True) -> dict:
    from harness.data.real_images import load_real_tensor
    from harness.data.sources import load_index
    from harness.eval.inputs import random_crop_flip
    from harness.runner.seeding import seed_all

    seed_all(options.seed)
    table = read_attributes(data_root)
    size, load = options.image_size, int(options.image_size * 76 / 64)
    splits = {}
    for split in ("train", "test"):
        splits[split] = (load_real_tensor(data_root, split, load, progress),
                         _labels(table, load_index(data_root, split).keys))
    images, labels = splits["train"]
    renders = _render_count(data_root, options, len(images))
    if renders:
        from harness.eval.attribute_renders import render_novel_birds

        extra, values = render_novel_birds(data_root, renders, load, options.seed)
        images, labels = torch.cat([images, extra]), torch.cat([labels, _value_labels(table, values)])
    model = AttributeClassifier([len(table.values[k]) for k in table.kinds], options.width)
    opt = torch.optim.Adam(model.parameters(), lr=options.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=options.lr, total_steps=options.steps)
    gen = torch.Generator().manual_seed(options.seed)
    for _ in tqdm(range(options.steps), desc="training attribute classifier", disable=not progress):
        model.train()
        pick = torch.randint(0, len(images), (options.batch_size,), generator=gen)
        crops = random_crop_flip(images[pick], size, gen)
        if options.degrade > 0:
            crops = degrade_batch(crops, options.degrade, gen)
        x = prepare(crops, size)
        outs = model(x)
        loss = sum(F.cross_entropy(o, labels[pick, g], ignore_index=-100) for g, o in enumerate(outs))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
    model.eval()
    test_images, test_labels = splits["test"]
    with torch.no_grad():
        preds = predict(model, test_images, size)
    per_kind = {k: float((preds[:, g] == test_labels[:, g]).float().mean())
                for g, k in enumerate(table.kinds)}
    chance = {k: 1 / len(table.values[k]) for k in table.kinds}
    metrics = {"held_out_accuracy": per_kind, "chance": chance,
               "held_out": "real test images (species unseen in training)",
               "training_images": {"real": len(splits["train"][0]), "novel_species_renders": renders}}
    save_torch_atomic({"format": FORMAT, "options": asdict(options), "kinds": table.kinds,
                       "values": table.values, "metrics": metrics, "state": model.state_dict()},
                      Path(out_dir) / "attributes.pt")
    return metrics


def _render_count(data_root, options: AttributeOptions, real: int) -> int:
    from harness.eval.attribute_renders import synthbirds_manifest

    if options.renders == 0 or synthbirds_manifest(data_root) is None:
        if options.renders:
            raise UserError(f"{data_root}: novel-species renders (renders={options.renders}) need "
                            "the synthbirds dataset; a real dataset trains on its own labels")
        return 0
    return real if options.renders is None else options.renders


@torch.no_grad()
def predict(model: AttributeClassifier, images_u8: torch.Tensor, size: int) -> torch.Tensor:
    outs = [model(prepare(images_u8[i:i + 256], size)) for i in range(0, len(images_u8), 256)]
    return torch.stack([torch.cat([o[g] for o in outs]).argmax(1) for g in range(len(outs[0]))], 1)


def load_attribute_classifier(path) -> tuple[AttributeClassifier, dict]:
    ckpt = load_torch_checked(path, FORMAT, "attribute classifier")
    options = AttributeOptions(**ckpt["options"])
    model = AttributeClassifier([len(ckpt["values"][k]) for k in ckpt["kinds"]], options.width)
    model.load_state_dict(ckpt["state"])
    model.eval()
    return model, ckpt


GAIN_RESAMPLES = 2000


def derangement(n: int, seed: int) -> np.ndarray:
    """A permutation without fixed points: every image gets another image's caption."""
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n)
        if n < 2 or not np.any(perm == np.arange(n)):
            return perm


Checks = list[list[tuple[str, bool]]]  # per image, (kind, seen) per attribute its caption names


def _checks(preds: torch.Tensor, named: list[list[int]], table: AttributeTable) -> Checks:
    """Per image, (kind, seen) for each attribute its caption names: does the classifier see it."""
    out = []
    for i, ids in enumerate(named):
        row = []
        for attr_id in ids:
            kind, value = table.by_id[attr_id]
            row.append((kind, table.values[kind][int(preds[i, table.kinds.index(kind)])] == value))
        out.append(row)
    return out


def _scores(checks: Checks) -> np.ndarray:
    """Per image, the fraction of its caption's attributes the classifier sees (NaN: none named)."""
    return np.asarray([float(np.mean([seen for _, seen in row])) if row else float("nan")
                       for row in checks], dtype=float)


def attribute_accuracy(images_u8: torch.Tensor, named: list[list[int]], table: AttributeTable,
                       classifier_path, return_scores: bool = False, shuffle_seed: int = 0) -> dict:
    """Mean over images of the fraction of caption-named attributes the image shows, and the
    same images scored against shuffled captions (each image another image's caption, a
    derangement): the level a model that ignores its captions reaches with these very images.
    ``gain`` = own − shuffled, with a paired bootstrap 95 % percentile interval over images
    (``GAIN_RESAMPLES``). ``return_scores``: also each image's score (NaN where its caption
    names no attribute)."""
    model, ckpt = load_attribute_classifier(classifier_path)
    if ckpt["kinds"] != table.kinds:
        raise UserError(f"{classifier_path}: trained on other attribute kinds than the dataset's")
    preds = predict(model, images_u8, AttributeOptions(**ckpt["options"]).image_size)
    own = _checks(preds, named, table)
    per_image = _scores(own)
    scores = per_image[per_image == per_image]
    if not len(scores):
        raise UserError("no image's caption names any attribute")
    out = {"mean": float(np.mean(scores)), "std": float(np.std(scores)), "n": len(scores),
           "classifier_held_out_accuracy": ckpt["metrics"]["held_out_accuracy"]}
    if len(named) >= 2:
        other = derangement(len(named), shuffle_seed)
        other_checks = _checks(preds, [named[j] for j in other], table)
        shuffled = _scores(other_checks)
        both = (per_image == per_image) & (shuffled == shuffled)
        diff = per_image[both] - shuffled[both]
        rng = np.random.default_rng(shuffle_seed)
        boots = diff[rng.integers(0, len(diff), (GAIN_RESAMPLES, len(diff)))].mean(axis=1)
        lo, hi = np.percentile(boots, [2.5, 97.5])
        out.update({"shuffled": float(np.mean(shuffled[shuffled == shuffled])),
                    "gain": float(diff.mean()), "gain_ci": (float(lo), float(hi))})
        out["per_kind"] = _per_kind(own, other_checks, table.kinds)
    if return_scores:
        out["scores"] = per_image.tolist()
    return out


def _per_kind(own: Checks, shuffled: Checks, kinds: list[str]) -> dict[str, dict]:
    """Per attribute kind (crown colour, wing colour, ...): the share of the named values the
    classifier sees, with the images' own captions and with the shuffled ones. Which parts a
    model draws from its caption and which it ignores."""
    def by_kind(checks):
        seen: dict[str, list[bool]] = {k: [] for k in kinds}
        for row in checks:
            for kind, hit in row:
                seen[kind].append(hit)
        return seen

    mine, other = by_kind(own), by_kind(shuffled)
    return {k: {"own": float(np.mean(mine[k])), "shuffled": float(np.mean(other[k])), "n": len(mine[k])}
            for k in kinds if mine[k] and other[k]}


def named_attributes(table: AttributeTable, caption_ids: list[str]) -> list[list[int]]:
    """Attribute ids named by each caption id ``<image key>#<caption index>``."""
    out = []
    for cid in caption_ids:
        key, _, idx = cid.rpartition("#")
        if key not in table.caption_ids or not idx.isdigit():
            raise UserError(f"caption id {cid!r} is not a dataset caption (attribute accuracy needs "
                            "samples of the dataset's captions, e.g. `sample --split test`)")
        out.append(table.caption_ids[key][int(idx)])
    return out
