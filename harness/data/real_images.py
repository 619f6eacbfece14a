"""Real images of a dataset split, box-cropped like training images and resized (PIL bicubic)
to a square, as uint8 3×H×W tensors: the text encoder, the classifiers and the metrics' real
sets (the ceiling every table shows) all read real images through this one path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from harness.data.crop import bbox_crop_box
from harness.data.dataset import load_image
from harness.data.sources import load_index


class RealSplitInput(Dataset):
    """The images of a split (or of ``indices`` into it), box-cropped and resized."""

    def __init__(self, root: str | Path, split: str, size: int, use_bbox: bool = True,
                 limit: int | None = None, indices: list[int] | None = None):
        self.index = load_index(root, split)
        self.size, self.use_bbox = size, use_bbox
        self.indices = list(range(len(self.index))) if indices is None else list(indices)
        self.n = len(self.indices) if limit is None else min(limit, len(self.indices))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        i = self.indices[i]
        img = load_image(self.index.image_paths[i])
        if self.use_bbox and self.index.bboxes is not None:
            img = img.crop(bbox_crop_box(self.index.bboxes[i], *img.size))
        arr = np.array(img.resize((self.size, self.size), Image.BICUBIC), dtype=np.uint8)
        return torch.from_numpy(arr).permute(2, 0, 1).contiguous()



def load_real_tensor(root: str | Path, split: str, size: int, progress: bool = True,
                     workers: int = 2) -> torch.Tensor:
    """All real images of a split as one N×3×size×size uint8 tensor (decoded in parallel)."""
    real = RealSplitInput(root, split, size)
    loader = DataLoader(real, batch_size=64, num_workers=min(workers, os.cpu_count() or 1))
    parts = list(tqdm(loader, desc=f"loading {split} images", unit="batch", disable=not progress,
                      leave=False))
    return torch.cat(parts) if parts else torch.empty(0, 3, size, size, dtype=torch.uint8)
