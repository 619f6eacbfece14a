"""``sample``: images for test captions or free text, plus the manifest evaluation reads.

Each image's randomness (z and the CA noise of every stage) comes from its own seed, recorded in
the manifest, so any single image can be regenerated and the output does not depend on the
batch size.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

import torch
from PIL import Image
from tqdm import tqdm

from harness.atomic import atomic_directory
from harness.checkpoints import find_run_checkpoint
from harness.core import generate_batch, step_seed
from harness.data.dataset import TextImageDataset
from harness.data.samples_manifest import MANIFEST
from harness.data.sources import load_index
from harness.errors import UserError
from harness.runner.build import data_options, load_run, model_conditions


def caption_items(cfg, split: str, captions_per_image: int, limit: int | None,
                   conditions: tuple[str, ...] = ()) -> list[dict]:
    index = load_index(cfg.data.root, split, cfg.data.layout)
    emb = index.load_embeddings(cfg.data.embeddings_file)
    n = len(index) if limit is None else min(limit, len(index))
    # Box- or keypoint-conditioned models draw each test caption with its own image's box or
    # parts, as they appear in the evaluation view of that image (centred crop, no flip).
    views = TextImageDataset(replace(data_options(cfg, split, augment=False), need_embeddings=False),
                             index) if conditions else None
    items = []
    for i in range(n):
        caps = index.captions(i)
        found = views.images_and_conditions(i)[1] if views is not None else {}
        for c in range(min(captions_per_image, emb.shape[1], len(caps))):
            item = {"caption_id": f"{index.keys[i]}#{c}", "caption": caps[c],
                    "class_id": int(index.class_ids[i]), "image_key": index.keys[i],
                    "embedding": torch.from_numpy(emb[i, c]), **found}
            items.append(item)
    return items


def _text_items(cfg, captions_file: str, encoder: str | None) -> list[dict]:
    from harness.text.train import encode_texts, load_text_encoder

    path = Path(captions_file)
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except OSError as exc:
        raise UserError(f"{path}: cannot read captions ({exc.strerror or exc})") from exc
    if not lines:
        raise UserError(f"{path}: no captions in the file")
    if encoder is None:
        meta = Path(cfg.data.root) / "train" / f"{cfg.data.embeddings_file}.meta.json"
        if not meta.exists():
            raise UserError(f"{meta}: no record of the text encoder behind this run's embeddings; "
                            "pass --encoder")
        encoder = json.loads(meta.read_text())["encoder"]
    model, enc_cfg, _ = load_text_encoder(encoder)
    emb = encode_texts(model, lines, enc_cfg.max_length)
    return [{"caption_id": f"line{n + 1}", "caption": text, "class_id": -1, "embedding": emb[n]}
            for n, text in enumerate(lines)]


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """A generator output in [-1, 1] (3×H×W) as the H×W×3 bytes written to disk (the arithmetic
    of torchvision's ``save_image``)."""
    x = image.float().cpu() * 0.5 + 0.5
    return x.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8)


def _save_png(pixels: torch.Tensor, path: Path, digest) -> None:
    array = pixels.contiguous().numpy()
    digest.update(array.tobytes())
    Image.fromarray(array).save(path)


def sample_run(run_dir: str | os.PathLike, out: str | os.PathLike, split: str | None = None,
               captions_file: str | None = None, per_caption: int = 1,
               captions_per_image: int = 10, limit: int | None = None, seed: int = 0,
               encoder: str | None = None, batch_size: int = 64, device: str = "cpu",
               progress: bool = True, caption_ids: list[str] | None = None,
               protocol: str | None = None) -> dict:
    """Images for a split's captions (or a text file's), ``per_caption`` each. ``caption_ids``
    (``<image key>#<caption number>``) restricts a split to those captions, in that order.
    ``protocol``: the evaluation protocol these numbers follow, recorded in sample.json."""
    if per_caption < 1:
        raise UserError("--per-caption must be at least 1")
    from harness.locks import exclusive

    out = Path(out)
    # Samples written into a run folder take the run's lock (no training or evaluation of it
    # runs meanwhile); elsewhere, a lock beside the output folder.
    inside = Path(run_dir).resolve() in out.resolve().parents
    lock = (exclusive(run_dir, "samples") if inside else
            exclusive(out.parent, "samples", path=out.parent / f".{out.name}.lock"))
    with lock:
        return _sample_run(run_dir, out, split, captions_file, per_caption, captions_per_image,
                           limit, seed, encoder, batch_size, device, progress, caption_ids,
                           protocol)


def _sample_run(run_dir, out: Path, split, captions_file, per_caption, captions_per_image, limit,
                seed, encoder, batch_size, device, progress, caption_ids, protocol) -> dict:
    cfg, model, _ = load_run(run_dir, device)
    conditions = model_conditions(model)
    items = (caption_items(cfg, split, captions_per_image, limit, conditions) if split
             else _text_items(cfg, captions_file, encoder))
    if caption_ids is not None:
        by_id = {item["caption_id"]: item for item in items}
        missing = [c for c in caption_ids if c not in by_id]
        if missing:
            raise UserError(f"{run_dir}: captions not in the {split} split: {missing[:5]}")
        items = [by_id[c] for c in caption_ids]
    for name in conditions:
        for item in items:
            if name not in item:  # free text: the model's default box (or refusal)
                item[name] = model.default_condition(name)
    jobs = [(n, k, step_seed(seed, n, k)) for n in range(len(items)) for k in range(per_caption)]
    with atomic_directory(out) as tmp:
        (tmp / "images").mkdir()
        if model.stage1 is not None:
            (tmp / "stage1").mkdir()
        records = []
        # A digest of the pixels (not of the PNG bytes, which depend on the zlib build), image
        # then Stage-I image per manifest row: two samplings are the same images exactly when
        # it is equal.
        digest = hashlib.sha256()
        for start in tqdm(range(0, len(jobs), batch_size), desc="sampling", disable=not progress):
            chunk = jobs[start:start + batch_size]
            emb = torch.stack([items[n]["embedding"] for n, _, _ in chunk])
            given = {name: torch.stack([items[n][name] for n, _, _ in chunk]) for name in conditions}
            images = generate_batch(model, emb, [s for _, _, s in chunk], given)
            final = images.get("stage2", images["stage1"])
            for stage, batch in images.items():
                if not bool(torch.isfinite(batch).all()):
                    # to_uint8 would turn NaN into black images that still get a finite FID.
                    raise UserError(f"{run_dir}: the generator's {stage} output holds non-finite "
                                    f"values (captions {start}…{start + len(chunk) - 1}); its weights "
                                    "are broken, nothing was written")
            for j, (n, k, s) in enumerate(chunk):
                name = f"{n:06d}_{k}.png"
                _save_png(to_uint8(final[j]), tmp / "images" / name, digest)
                rec = {"file": f"images/{name}", "caption_id": items[n]["caption_id"],
                       "caption": items[n]["caption"], "class_id": items[n]["class_id"],
                       "noise_seed": s, "sample_index": k}
                if "box" in items[n]:
                    rec["box"] = [round(float(v), 6) for v in items[n]["box"]]
                if "parts" in items[n]:
                    rec["parts"] = [[round(float(v), 6) for v in p] for p in items[n]["parts"]]
                if "stage2" in images:
                    _save_png(to_uint8(images["stage1"][j]), tmp / "stage1" / name, digest)
                    rec["stage1_file"] = f"stage1/{name}"
                records.append(rec)
        (tmp / MANIFEST).write_text("".join(json.dumps(r) + "\n" for r in records))
        summary = {"run": str(Path(run_dir).resolve()), "protocol": protocol,
                   "checkpoint": str(find_run_checkpoint(run_dir).resolve()),
                   "source": f"split:{split}" if split else f"captions:{captions_file}",
                   "per_caption": per_caption, "seed": seed, "num_images": len(records),
                   "num_captions": len(items), "image_size": int(final.shape[-1]),
                   "pixels_sha256": digest.hexdigest()}
        (tmp / "sample.json").write_text(json.dumps(summary, indent=2))
    return summary
