"""Image sets as torch-fidelity inputs: Datasets yielding uint8 3×H×W tensors.

- ``ImageFolderInput``: a ``sample`` output folder (files listed in ``manifest.jsonl``, in that
  order) or any folder of images (sorted paths);
- ``RealSplitInput``: the real images of a dataset split, box-cropped like training images and
  resized (bicubic) to a square size — the ceiling every table reports beside the models.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from harness.data.crop import bbox_crop_box
from harness.data.dataset import load_image
from harness.data.sources import load_index
from harness.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _to_uint8_chw(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1).contiguous()


class ImageFolderInput(Dataset):
    def __init__(self, folder: str | Path, size: int | None = None):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise UserError(f"{self.folder}: image folder does not exist")
        manifest = self.folder / "manifest.jsonl"
        if manifest.exists():
            rows = [json.loads(ln) for ln in manifest.read_text().splitlines() if ln.strip()]
            self.paths = [self.folder / r["file"] for r in rows]
            self.rows = rows
        else:
            self.paths = sorted(p for p in self.folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            self.rows = [{"file": str(p.relative_to(self.folder))} for p in self.paths]
        if not self.paths:
            raise UserError(f"{self.folder}: no images (.png/.jpg) found")
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        img = load_image(self.paths[i])
        if self.size is not None and img.size != (self.size, self.size):
            img = img.resize((self.size, self.size), Image.BICUBIC)
        return _to_uint8_chw(img)


class RealSplitInput(Dataset):
    def __init__(self, root: str | Path, split: str, size: int, use_bbox: bool = True,
                 limit: int | None = None):
        self.index = load_index(root, split)
        self.size, self.use_bbox = size, use_bbox
        self.n = len(self.index) if limit is None else min(limit, len(self.index))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        img = load_image(self.index.image_paths[i])
        if self.use_bbox and self.index.bboxes is not None:
            img = img.crop(bbox_crop_box(self.index.bboxes[i], *img.size))
        return _to_uint8_chw(img.resize((self.size, self.size), Image.BICUBIC))


def load_real_tensor(root: str | Path, split: str, size: int, progress: bool = True) -> torch.Tensor:
    """All real images of a split, box-cropped and resized, as one N×3×size×size uint8 tensor."""
    from tqdm import tqdm

    real = RealSplitInput(root, split, size)
    return torch.stack([real[i] for i in tqdm(range(len(real)), desc=f"loading {split} images",
                                              disable=not progress, leave=False)])


def random_crop_flip(images_u8: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """One random size×size crop position and one flip decision for the whole batch."""
    load = images_u8.shape[-1]
    top = int(torch.randint(0, load - size + 1, (1,), generator=gen))
    left = int(torch.randint(0, load - size + 1, (1,), generator=gen))
    out = images_u8[:, :, top:top + size, left:left + size]
    return out.flip(-1) if bool(torch.rand((), generator=gen) < 0.5) else out
