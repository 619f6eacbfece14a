"""Image preprocessing of the two official code bases (hanzhanggit/StackGAN misc/,
StackGAN-Pytorch code/miscc/datasets.py).

- ``paper`` (TensorFlow): box crop, bicubic resize to a square of size·76/64 (squashing a
  clipped crop), lower resolutions as bicubic downsamples of the largest, then a random crop and
  a horizontal flip (p = 0.5) drawn independently per resolution.
- ``pytorch``: box crop, bilinear resize of the shorter side to size·76/64 (aspect kept),
  RandomCrop(size), RandomHorizontalFlip.
- ``torch7`` (Reed's Lua code: GAN-INT-CLS, GAWWN): the image squashed to a square load size with
  Torch7's ``image.scale`` in its default 'bilinear' mode (:func:`torch7_scale`), then a random
  crop and flip. Torch7 keeps the float result; it is stored as 8 bits here like every other
  preprocessing (a deviation of at most half a grey level).
Without augmentation the crop is centred and there is no flip (evaluation).
Pixels come out as float tensors in [-1, 1], channels first.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from PIL import Image

from harness.core.compute_dtype import as_compute, compute_dtype

PREPROCESSING = ("paper", "pytorch", "torch7")


def load_size(size: int) -> int:
    return int(size * 76 / 64)


def to_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    arr = np.array(img, dtype=np.uint8)  # a copy: PIL buffers are read-only
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    t = as_compute(torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1))
    return t.div_(127.5).sub_(1.0)


def _crop_and_flip(t: torch.Tensor, size: int, augment: bool, gen: torch.Generator | None,
                   geometry: dict | None = None):
    _, h, w = t.shape
    if augment:  # offsets 0 … L − S (TF never L − S, Lua never 0: docs/fidelity.md rows 24, 28)
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
    ``size`` crop described by ``geometry`` (clipped to the crop; mirrored when flipped). The
    GAWWN Lua loader keeps a cut box's width instead (docs/fidelity.md row 30)."""
    x0, y0, x1, y1 = box
    w, h = geometry["width"], geometry["height"]
    left, top = geometry["left"], geometry["top"]
    nx0, nx1 = [min(max((v * w - left) / size, 0.0), 1.0) for v in (x0, x1)]
    ny0, ny1 = [min(max((v * h - top) / size, 0.0), 1.0) for v in (y0, y1)]
    if geometry["flipped"]:
        nx0, nx1 = 1.0 - nx1, 1.0 - nx0
    return torch.tensor([nx0, ny0, nx1, ny1], dtype=compute_dtype())


@functools.lru_cache(maxsize=256)
def _torch7_axis(src_len: int, dst_len: int) -> np.ndarray:
    """Torch7 ``image.scale`` 'bilinear' along one axis (torch/image generic/image.c,
    ``scaleLinear_rowcol``) as a (dst_len, src_len) matrix. Enlarging interpolates linearly with
    both end pixels aligned (spacing (src - 1)/(dst - 1)); shrinking averages the span of
    src/dst input pixels under each output pixel, the two edge pixels weighted by the fraction
    covered. Positions use float32, as the C code does."""
    w = np.zeros((dst_len, src_len), dtype=np.float64)
    if dst_len == src_len:
        return np.eye(src_len)
    if dst_len > src_len:
        if src_len == 1:
            w[:, 0] = 1.0
            return w
        scale = np.float32(src_len - 1) / np.float32(dst_len - 1)
        for di in range(dst_len - 1):
            pos = np.float32(di) * scale
            i = int(pos)
            frac = float(pos - np.float32(i))
            w[di, i] += 1.0 - frac
            w[di, i + 1] += frac
        w[dst_len - 1, src_len - 1] = 1.0
        return w
    scale = np.float32(src_len) / np.float32(dst_len)
    start_i, start_f = 0, 0.0
    for di in range(dst_len):
        end = np.float32(di + 1) * scale
        end_i = int(end)
        end_f = float(end - np.float32(end_i))
        w[di, start_i] += 1.0 - start_f
        w[di, start_i + 1:end_i] += 1.0
        if end_i < src_len:
            w[di, end_i] += end_f
        w[di] /= w[di].sum()
        start_i, start_f = end_i, end_f
    return w


def torch7_scale(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """An H×W×C uint8 image resized as Torch7's ``image.scale(img, width, height)`` (rows, then
    columns, on floats), rounded back to uint8."""
    h, w, c = arr.shape
    rows = _torch7_axis(h, height)
    cols = _torch7_axis(w, width)
    tmp = (rows @ arr.reshape(h, w * c).astype(np.float64)).reshape(height, w, c)
    out = np.matmul(cols, tmp)  # (width, w) @ (height, w, c) -> (height, width, c)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def parts_after_crop(parts: np.ndarray, geometry: dict, size: int) -> torch.Tensor:
    """Part locations (x, y, visible) with x, y fractions of the resized image, in fractions of
    the ``size`` crop, clipped to it and mirrored when flipped. As in Reed's keypoint loader,
    parts outside the crop are moved to its edge and a flip does not swap left and right parts."""
    out = torch.tensor(parts, dtype=compute_dtype())
    w, h = geometry["width"], geometry["height"]
    out[:, 0] = ((out[:, 0] * w - geometry["left"]) / size).clamp(0.0, 1.0)
    out[:, 1] = ((out[:, 1] * h - geometry["top"]) / size).clamp(0.0, 1.0)
    if geometry["flipped"]:
        out[:, 0] = 1.0 - out[:, 0]
    return out


def resize_for_sizes(img: Image.Image, sizes: tuple[int, ...], variant: str,
                     loads: dict[int, int] | None = None) -> dict[int, np.ndarray]:
    """The deterministic part of preprocessing: the box-cropped ``img`` resized to each size's
    load size (``loads``, default size·76/64), as uint8 HWC arrays (what the released
    76/304images.pickle hold)."""
    if variant not in PREPROCESSING:
        raise ValueError(f"unknown preprocessing {variant!r}; known: {PREPROCESSING}")
    loads = {s: (loads or {}).get(s) or load_size(s) for s in sizes}
    img = img.convert("RGB")
    out = {}
    if variant == "torch7":
        arr = np.asarray(img, dtype=np.uint8)
        return {s: torch7_scale(arr, loads[s], loads[s]) for s in sizes}
    if variant == "paper":
        # TF used scipy.misc.imresize, which also stretched each float image to 0–255: gone from
        # scipy, and the released pickles are used where present (docs/fidelity.md row 3).
        largest = max(sizes)
        base = img.resize((loads[largest], loads[largest]), Image.BICUBIC)
        for s in sizes:
            scaled = base if s == largest else base.resize((loads[s], loads[s]), Image.BICUBIC)
            out[s] = np.array(scaled, dtype=np.uint8)
    else:
        w, h = img.size
        for s in sizes:
            target = loads[s]
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
