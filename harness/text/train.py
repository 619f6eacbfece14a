"""Trains the char-CNN-RNN jointly with an image encoder (DS-SJE, Reed et al., CVPR 2016) and scores it.

Each step takes one image and one of its captions from each of B distinct training classes.
Quality is measured on the test split, whose classes are unseen in training: caption->image
top-1 retrieval over the test classes (each caption against the mean image embedding of each
class) and image->class top-1 (each image against the mean caption embedding of each class,
Reed et al.'s zero-shot classification); chance is 1 / number of test classes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from harness.atomic import write_text_atomic
from harness.core.compute_dtype import as_compute
from harness.data.real_images import load_real_tensor
from harness.data.sources import DatasetIndex, dataset_fingerprint, load_index
from harness.data.transforms import load_size
from harness.errors import UserError
from harness.serialization import load_torch_checked, save_torch_atomic
from harness.text.alphabet import encode_batch
from harness.text.models import PRESETS, CharCNNRNN, EncoderConfig, build_image_encoder, sje_loss

CHECKPOINT_FORMAT = "stackgan-bench/text-encoder/2"  # /2: the output scale
# The embeddings' per-dimension SD on the training captions, set after training. Trained jointly
# with an image encoder, the dot-product loss leaves the text side's scale arbitrary (any factor
# can move to the image side): measured 0.018 per dimension (norm 0.69 of 1024) at the quick
# scale, where the conditioning FCs of every model (default init) then pass text about 100 times
# weaker than their noise; scaled to 1, Stage-I's attribute gain rose from 0.006 to 0.031
# (docs/captions.md).
EMBEDDING_SD = 1.0


@dataclass(frozen=True)
class TextTrainOptions:
    """Options of ``text train``; the CLI takes its defaults from here."""

    preset: str = "small"
    steps: int | None = None  # None: the preset's default
    batch_classes: int = 40
    lr: float = 7e-4
    lr_decay: float = 0.98  # per epoch (one pass over the training images)
    grad_clip: float = 5.0
    seed: int = 0
    check_data: bool = True
    # The image encoder's input size (default: the preset's). An R-precision evaluator judges
    # images at the size it was trained at.
    image_size: int | None = None

    def encoder_config(self) -> EncoderConfig:
        cfg = PRESETS[self.preset]
        return cfg if self.image_size is None else replace(cfg, image_size=self.image_size)

    def resolved_steps(self) -> int:
        return self.steps if self.steps is not None else DEFAULT_STEPS[self.preset]


DEFAULT_STEPS = {"small": 3000, "paper": 60000}


def _to_float(images_u8: torch.Tensor) -> torch.Tensor:
    return as_compute(images_u8).div(127.5).sub(1)


def _augment(batch_u8: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    x = _to_float(batch_u8)
    n, _, h, w = x.shape
    out = torch.empty(n, 3, size, size)
    for k in range(n):
        top = int(torch.randint(0, h - size + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - size + 1, (1,), generator=gen))
        crop = x[k, :, top:top + size, left:left + size]
        out[k] = crop.flip(-1) if bool(torch.rand((), generator=gen) < 0.5) else crop
    return out


def _center(batch_u8: torch.Tensor, size: int) -> torch.Tensor:
    x = _to_float(batch_u8)
    off = (x.shape[-1] - size) // 2
    return x[:, :, off:off + size, off:off + size]


def cache_key(fingerprint: str, cfg: EncoderConfig, options: TextTrainOptions) -> str:
    payload = {"format": CHECKPOINT_FORMAT, "data": fingerprint, "encoder": cfg.to_dict(),
               "train": asdict(replace(options, check_data=True)), "steps": options.resolved_steps()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@torch.no_grad()
def encode_texts(model: CharCNNRNN, texts: list[str], max_length: int, batch: int = 512) -> torch.Tensor:
    model.eval()
    out = [model(encode_batch(texts[i:i + batch], max_length)) for i in range(0, len(texts), batch)]
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def evaluate(text_model, image_model, cfg: EncoderConfig, index: DatasetIndex,
             images_u8: torch.Tensor) -> dict:
    """Test-split retrieval accuracy over the split's classes, with chance level."""
    image_model.eval()
    img = torch.cat([image_model(_center(images_u8[i:i + 256], cfg.image_size))
                     for i in range(0, len(images_u8), 256)])
    captions, caption_class = [], []
    for i in range(len(index)):
        caps = index.captions(i)
        captions += caps
        caption_class += [int(index.class_ids[i])] * len(caps)
    txt = encode_texts(text_model, captions, cfg.max_length)
    classes = np.unique(index.class_ids)
    cls_pos = {c: k for k, c in enumerate(classes)}
    img_cls = torch.tensor([cls_pos[int(c)] for c in index.class_ids])
    txt_cls = torch.tensor([cls_pos[c] for c in caption_class])
    img_proto = torch.stack([img[img_cls == k].mean(0) for k in range(len(classes))])
    txt_proto = torch.stack([txt[txt_cls == k].mean(0) for k in range(len(classes))])
    cap2img = ((txt @ img_proto.t()).argmax(1) == txt_cls).float().mean().item()
    img2cls = ((img @ txt_proto.t()).argmax(1) == img_cls).float().mean().item()
    return {"caption_to_image_top1": cap2img, "image_to_class_top1": img2cls,
            "chance": 1.0 / len(classes), "test_classes": len(classes),
            "test_images": len(index), "test_captions": len(captions)}


def train_text_encoder(data_root: str | os.PathLike, out_dir: str | os.PathLike,
                       options: TextTrainOptions = TextTrainOptions(), force: bool = False,
                       progress: bool = True) -> dict:
    """Train, evaluate and save ``encoder.pt`` + ``metrics.json``; returns the metrics.

    A finished run with the same dataset fingerprint, encoder config and options is reused.
    """
    if options.preset not in PRESETS:
        raise UserError(f"unknown preset {options.preset!r}; known: {', '.join(PRESETS)}")
    cfg = options.encoder_config()
    data_root, out_dir = Path(data_root), Path(out_dir)
    if options.check_data:
        from harness.data.check import check_dataset

        report = check_dataset(data_root, progress=progress)
        if not report.ok:
            raise UserError(f"{data_root}: the dataset fails `data check`; fix it first.\n"
                            + report.summary())
    fingerprint = dataset_fingerprint(data_root)
    key = cache_key(fingerprint, cfg, options)
    ckpt_path = out_dir / "encoder.pt"
    if ckpt_path.exists() and not force:
        try:
            existing = load_checkpoint(ckpt_path)
        except UserError:  # an older format: trained again
            existing = {}
        if existing.get("cache_key") == key:
            print(f"{ckpt_path}: up to date for this dataset and config; reusing it")
            return existing["metrics"]

    seed_everything(options.seed)
    train_idx, test_idx = load_index(data_root, "train"), load_index(data_root, "test")
    train_imgs = load_real_tensor(data_root, "train", load_size(cfg.image_size), progress)
    test_imgs = load_real_tensor(data_root, "test", load_size(cfg.image_size), progress)

    text_model, image_model = CharCNNRNN(cfg), build_image_encoder(cfg)
    params = list(text_model.parameters()) + list(image_model.parameters())
    optim = torch.optim.RMSprop(params, lr=options.lr)
    by_class: dict[int, np.ndarray] = {}
    for i, c in enumerate(train_idx.class_ids):
        by_class.setdefault(int(c), []).append(i)
    classes = sorted(by_class)
    b = min(options.batch_classes, len(classes))
    steps_per_epoch = max(1, math.ceil(len(train_idx) / b))
    scheduler = torch.optim.lr_scheduler.StepLR(optim, steps_per_epoch, options.lr_decay)
    gen = torch.Generator().manual_seed(options.seed)
    steps = options.resolved_steps()
    started = time.time()
    losses = []
    bar = tqdm(range(steps), desc="training text encoder", unit="step", disable=not progress)
    for step in bar:
        text_model.train()
        image_model.train()
        chosen = torch.randperm(len(classes), generator=gen)[:b].tolist()
        img_ids, caps = [], []
        for k in chosen:
            members = by_class[classes[k]]
            i = members[int(torch.randint(0, len(members), (1,), generator=gen))]
            img_ids.append(i)
            c = train_idx.captions(i)
            caps.append(c[int(torch.randint(0, len(c), (1,), generator=gen))])
        image_emb = image_model(_augment(train_imgs[img_ids], cfg.image_size, gen))
        text_emb = text_model(encode_batch(caps, cfg.max_length))
        loss = sje_loss(image_emb, text_emb)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, options.grad_clip)
        optim.step()
        scheduler.step()
        losses.append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
    train_seconds = time.time() - started

    text_model.output_scale.fill_(output_scale_for(text_model, train_idx, cfg.max_length))
    metrics = evaluate(text_model, image_model, cfg, test_idx, test_imgs)
    metrics.update({"final_loss": float(np.mean(losses[-50:])), "steps": steps,
                    "train_seconds": round(train_seconds, 1), "data_fingerprint": fingerprint,
                    "output_scale": float(text_model.output_scale)})
    checkpoint = {
        "format": CHECKPOINT_FORMAT, "cache_key": key, "config": cfg.to_dict(),
        "options": asdict(options), "metrics": metrics, "data_fingerprint": fingerprint,
        "text_state": text_model.state_dict(), "image_state": image_model.state_dict(),
    }
    save_torch_atomic(checkpoint, ckpt_path)
    write_text_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=2))
    return metrics


@torch.no_grad()
def output_scale_for(model: CharCNNRNN, index: DatasetIndex, max_length: int,
                     images: int = 500) -> float:
    """The factor that gives the embeddings a mean per-dimension SD of ``EMBEDDING_SD`` over
    the captions of (up to) ``images`` training images spread over the split."""
    picks = np.linspace(0, len(index) - 1, min(images, len(index))).round().astype(int)
    texts = [c for i in picks for c in index.captions(int(i))]
    emb = encode_texts(model, texts, max_length) / model.output_scale
    sd = float(emb.std(dim=0).mean())
    # Rounded to 3 significant digits (SD 1 within 0.5 %): the SD of a trained encoder's outputs
    # carries the last-bit differences of other CPU kernels magnified (3e-8 relative measured in
    # float64, 100x its loss's), and every model trained on the embeddings would inherit them.
    return float(f"{EMBEDDING_SD / sd:.3g}") if sd > 0 else 1.0


def load_checkpoint(path: str | os.PathLike) -> dict:
    return load_torch_checked(path, CHECKPOINT_FORMAT, "encoder checkpoint")


def load_text_encoder(path: str | os.PathLike) -> tuple[CharCNNRNN, EncoderConfig, dict]:
    ckpt = load_checkpoint(path)
    cfg = EncoderConfig.from_dict(ckpt["config"])
    model = CharCNNRNN(cfg)
    model.load_state_dict(ckpt["text_state"])
    model.eval()
    return model, cfg, ckpt
