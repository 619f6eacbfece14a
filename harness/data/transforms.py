"""Image preprocessing of the two official code bases (REFERENCE §2).

- ``paper`` (TensorFlow): box crop, bicubic resize to a square of size·76/64 (squashing a
  clipped crop), lower resolutions as bicubic downsamples of the largest, then a random crop and
  a horizontal flip (p = 0.5) drawn independently per resolution.
- ``pytorch``: box crop, bilinear resize of the shorter side to size·76/64 (aspect kept),
  RandomCrop(size), RandomHorizontalFlip.
Without augmentation the crop is centred and there is no flip (evaluation).
Pixels come out as float tensors in [-1, 1], channels first.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

PREPROCESSING = ("paper", "pytorch")


def load_size(size: int) -> int:
    return int(size * 76 / 64)


def to_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    arr = np.array(img, dtype=np.uint8)  # a copy: PIL buffers are read-only
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float()
    return t.div_(127.5).sub_(1.0)


def _crop_and_flip(t: torch.Tensor, size: int, augment: bool, gen: torch.Generator | None,
                   geometry: dict | None = None):
    _, h, w = t.shape
    if augment:
        top = int(torch.randint(0, h - size + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - size + 1, (1,), generator=gen))
    else:
        top, left = (h - size) // 2, (w - size) // 2
    t = t[:, top:top + size, left:left + size]
    flipped = augment and bool(torch.rand((), generator=gen) < 0.5)
    if flipped:
        t = t.flip(-1)
    if geometry is not None:
        geometry[size] = {"height": h, "width": w, "top": top, "left": left, "flipped": flipped}
    return t.contiguous()


def box_after_crop(box: tuple[float, float, float, float], geometry: dict, size: int) -> torch.Tensor:
    """A box given as fractions ``(x0, y0, x1, y1)`` of the resized image, in fractions of the
    ``size`` crop described by ``geometry`` (clipped to the crop; mirrored when flipped)."""
    x0, y0, x1, y1 = box
    w, h = geometry["width"], geometry["height"]
    left, top = geometry["left"], geometry["top"]
    nx0, nx1 = [min(max((v * w - left) / size, 0.0), 1.0) for v in (x0, x1)]
    ny0, ny1 = [min(max((v * h - top) / size, 0.0), 1.0) for v in (y0, y1)]
    if geometry["flipped"]:
        nx0, nx1 = 1.0 - nx1, 1.0 - nx0
    return torch.tensor([nx0, ny0, nx1, ny1], dtype=torch.float32)


def resize_for_sizes(img: Image.Image, sizes: tuple[int, ...], variant: str) -> dict[int, np.ndarray]:
    """The deterministic part of preprocessing: the box-cropped ``img`` resized to each size's
    load size, as uint8 HWC arrays (what the released 76/304images.pickle hold)."""
    if variant not in PREPROCESSING:
        raise ValueError(f"unknown preprocessing {variant!r}; known: {PREPROCESSING}")
    img = img.convert("RGB")
    out = {}
    if variant == "paper":
        largest = max(sizes)
        base = img.resize((load_size(largest), load_size(largest)), Image.BICUBIC)
        for s in sizes:
            scaled = base if s == largest else base.resize((load_size(s), load_size(s)),
                                                            Image.BICUBIC)
            out[s] = np.array(scaled, dtype=np.uint8)
    else:
        w, h = img.size
        for s in sizes:
            target = load_size(s)
            if w <= h:
                new = (target, max(target, int(target * h / w)))
            else:
                new = (max(target, int(target * w / h)), target)
            out[s] = np.array(img.resize(new, Image.BILINEAR), dtype=np.uint8)
    return out


def crop_resized(resized: dict[int, np.ndarray], augment: bool,
                 gen: torch.Generator | None = None,
                 geometry: dict | None = None) -> dict[int, torch.Tensor]:
    """The random part: crop (random or centred) and flip each resized array. ``geometry``, when
    given, receives each size's crop offsets and flip (to carry a bounding box along)."""
    return {s: _crop_and_flip(to_tensor(arr), s, augment, gen, geometry)
            for s, arr in resized.items()}


def preprocess_preresized(arrays: dict[int, np.ndarray], sizes: tuple[int, ...], augment: bool,
                          gen: torch.Generator | None = None) -> dict[int, torch.Tensor]:
    """From the released 76/304 pre-resized arrays (already cropped and resized)."""
    return {s: _crop_and_flip(to_tensor(arrays[load_size(s)]), s, augment, gen) for s in sizes}
