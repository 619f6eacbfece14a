"""R-precision (the AttnGAN / DM-GAN protocol: Xu et al., CVPR 2018).

For each generated image, its true caption is ranked among 100 candidates (1 true + 99 captions
of other classes) by cosine similarity of an evaluator image/text encoder; R-precision is the
share of images whose true caption ranks first, reported as mean ± std over 10 folds. The
evaluator must be trained separately from the generator's text encoder (TISE showed that the
generator's own encoder overfits), so the two checkpoints' hashes must differ.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from harness.data.fingerprint import sha256_file
from harness.errors import UserError


def true_caption_ranks_first(image_emb: torch.Tensor, candidate_emb: torch.Tensor) -> torch.Tensor:
    """image_emb (N, D); candidate_emb (N, K, D) with the true caption at index 0 -> (N,) bool.
    A tie with another candidate counts as a miss."""
    img = F.normalize(image_emb.double(), dim=-1)
    cand = F.normalize(candidate_emb.double(), dim=-1)
    scores = torch.einsum("nd,nkd->nk", img, cand)
    return (scores[:, 1:] < scores[:, :1]).all(dim=1)


def fold_stats(hits: np.ndarray, folds: int) -> dict:
    parts = [p for p in np.array_split(hits.astype(float), folds) if len(p)]
    values = [float(p.mean()) for p in parts]
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "folds": len(values),
            "n": int(len(hits))}


def draw_candidates(true_classes: list[int], pool_classes: np.ndarray, k: int, seed: int
                    ) -> list[np.ndarray]:
    """For each image, k - 1 pool indices whose class differs from the image's (seeded)."""
    out = []
    for i, c in enumerate(true_classes):
        others = np.flatnonzero(pool_classes != c)
        if len(others) < k - 1:
            raise UserError(f"R-precision needs {k - 1} captions of other classes; the pool has "
                            f"{len(others)}")
        out.append(np.random.default_rng([seed, i]).choice(others, k - 1, replace=False))
    return out


@torch.no_grad()
def r_precision(images_u8: torch.Tensor, captions: list[str], classes: list[int],
                pool_captions: list[str], pool_classes: list[int], evaluator: str | os.PathLike,
                generator_encoder_sha256: str | None = None, k: int = 100, folds: int = 10,
                seed: int = 0, batch: int = 256, return_hits: bool = False) -> dict:
    """``return_hits``: also return the per-image outcome (``hits``, a bool array)."""
    from harness.eval.classifier import prepare
    from harness.text.models import build_image_encoder
    from harness.text.train import encode_texts, load_text_encoder

    digest = sha256_file(evaluator)
    if generator_encoder_sha256 and digest == generator_encoder_sha256:
        raise UserError(f"{evaluator}: is the generator's own text encoder; R-precision needs an "
                        "evaluator trained separately (another `text train --seed`)")
    text_model, cfg, ckpt = load_text_encoder(evaluator)
    image_model = build_image_encoder(cfg)
    image_model.load_state_dict(ckpt["image_state"])
    image_model.eval()
    img = torch.cat([image_model(prepare(images_u8[i:i + batch], cfg.image_size))
                     for i in range(0, len(images_u8), batch)])
    pool_classes_np = np.asarray(pool_classes)
    picks = draw_candidates(classes, pool_classes_np, k, seed)
    pool_emb = encode_texts(text_model, pool_captions, cfg.max_length)
    true_emb = encode_texts(text_model, captions, cfg.max_length)
    cand = torch.stack([torch.cat([true_emb[i:i + 1], pool_emb[torch.from_numpy(p)]])
                        for i, p in enumerate(picks)])
    hits = true_caption_ranks_first(img, cand).numpy()
    out = {**fold_stats(hits, folds), "candidates": k, "chance": 1 / k,
           "evaluator": str(evaluator), "evaluator_sha256": digest,
           "evaluator_seed": ckpt["options"]["seed"]}
    if return_hits:
        out["hits"] = hits
    return out
