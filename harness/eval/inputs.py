"""Image sets as torch-fidelity inputs: Datasets yielding uint8 3×H×W tensors.

- ``ImageFolderInput``: a ``sample`` output folder (files listed in ``manifest.jsonl``, in that
  order) or any folder of images (sorted paths);
(Real dataset images come from ``harness.data.real_images``.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from harness.data.dataset import load_image
from harness.data.samples_manifest import MANIFEST, read_manifest
from harness.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _to_uint8_chw(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1).contiguous()


class ImageFolderInput(Dataset):
    def __init__(self, folder: str | Path, size: int | None = None):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise UserError(f"{self.folder}: image folder does not exist")
        if (self.folder / MANIFEST).exists():
            rows = read_manifest(self.folder)
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


def random_crop_flip(images_u8: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """One random size×size crop position and one flip decision for the whole batch."""
    load = images_u8.shape[-1]
    top = int(torch.randint(0, load - size + 1, (1,), generator=gen))
    left = int(torch.randint(0, load - size + 1, (1,), generator=gen))
    out = images_u8[:, :, top:top + size, left:left + size]
    return out.flip(-1) if bool(torch.rand((), generator=gen) < 0.5) else out
