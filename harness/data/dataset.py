"""The text-image training dataset shared by StackGAN and the baselines.

A sample holds the image at each configured resolution, the caption embedding per the text
strategy, the raw caption text, the class id and, for the ``other_class`` strategy, a mismatched
("wrong") image. Random choices use torch's generator, so DataLoader seeding governs them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from harness.data.crop import bbox_crop_box
from harness.data.sources import EMBEDDINGS_FILE, DatasetIndex, load_index
from harness.data.transforms import (
    box_after_crop,
    crop_resized,
    load_size,
    preprocess_preresized,
    resize_for_sizes,
)
from harness.errors import UserError

TEXT_STRATEGIES = ("mean4", "one")  # TF: mean of 4 of 10 captions; PyTorch: one at random
WRONG_STRATEGIES = ("other_class", "in_batch", "none")


@dataclass(frozen=True)
class DataOptions:
    root: str
    split: str = "train"
    layout: str | None = None  # detected from the folder when None
    image_sizes: tuple[int, ...] = (64,)
    preprocessing: str = "paper"
    text_strategy: str = "mean4"
    wrong_strategy: str = "other_class"
    augment: bool = True
    use_bbox: bool = True  # birds only; ignored where the dataset has no boxes
    preresized: str = "auto"  # auto | never | require: the released 76/304images.pickle
    embeddings_file: str = EMBEDDINGS_FILE
    need_embeddings: bool = True
    # Keep each image's decoded, cropped and resized arrays in memory after first use: exact
    # (only the random crop/flip follows), and it removes JPEG decoding from every later epoch.
    cache_images: bool = False
    # Also return each image's bounding box as fractions (x0, y0, x1, y1) of the final crop,
    # following its random crop and flip (GAWWN is conditioned on it).
    with_boxes: bool = False

    def validate(self) -> None:
        if self.text_strategy not in TEXT_STRATEGIES:
            raise UserError(f"text_strategy {self.text_strategy!r}: choose one of {TEXT_STRATEGIES}")
        if self.wrong_strategy not in WRONG_STRATEGIES:
            raise UserError(
                f"wrong_strategy {self.wrong_strategy!r}: choose one of {WRONG_STRATEGIES}")
        if self.preresized not in ("auto", "never", "require"):
            raise UserError(f"preresized {self.preresized!r}: choose auto, never or require")
        if not self.image_sizes or any(s < 8 for s in self.image_sizes):
            raise UserError(f"image_sizes {self.image_sizes!r}: need one or more sizes >= 8")


def load_image(path) -> Image.Image:
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except FileNotFoundError as exc:
        raise UserError(f"{path}: image file is missing") from exc
    except (OSError, UnidentifiedImageError) as exc:
        raise UserError(f"{path}: unreadable or corrupt image ({exc})") from exc


class TextImageDataset(Dataset):
    def __init__(self, options: DataOptions, index: DatasetIndex | None = None):
        options.validate()
        self.options = options
        self.index = index or load_index(options.root, options.split, options.layout)
        self.embeddings = (self.index.load_embeddings(options.embeddings_file)
                           if options.need_embeddings else None)
        self.preresized = None
        if options.preresized != "never":
            wanted = {load_size(s) for s in options.image_sizes}
            arrays = {}
            for size in wanted:
                arr = self.index.load_preresized(size) if size in (76, 304) else None
                if arr is not None:
                    arrays[size] = arr
            if arrays.keys() == wanted:
                self.preresized = arrays
            elif options.preresized == "require":
                raise UserError(f"{self.index.split_dir}: pre-resized pickles for sizes "
                                f"{sorted(wanted)} are required but missing")
        if options.with_boxes:
            if self.index.bboxes is None:
                raise UserError(f"{options.root}: has no bounding boxes, which this model is "
                                "conditioned on (CUB and synthbirds have them)")
            # The released pre-resized arrays do not record the source size a box needs.
            self.preresized = None
        self.class_ids = self.index.class_ids
        self._cache: dict[int, tuple[dict[int, np.ndarray], tuple | None]] = {}
        if options.wrong_strategy == "other_class" and len(np.unique(self.class_ids)) < 2:
            raise UserError(f"{options.root}: the 'other_class' wrong-image strategy needs at "
                            "least two classes in the split")

    def __len__(self) -> int:
        return len(self.index)

    def _resized(self, i: int) -> tuple[dict[int, np.ndarray], tuple | None]:
        cached = self._cache.get(i)
        if cached is not None:
            return cached
        img = load_image(self.index.image_paths[i])
        region = (0, 0, *img.size)
        if self.options.use_bbox and self.index.bboxes is not None:
            region = bbox_crop_box(self.index.bboxes[i], *img.size)
            img = img.crop(region)
        box = None
        if self.options.with_boxes:
            x, y, w, h = (float(v) for v in self.index.bboxes[i])
            left, top, right, bottom = region
            box = ((x - left) / (right - left), (y - top) / (bottom - top),
                   (x + w - left) / (right - left), (y + h - top) / (bottom - top))
        result = (resize_for_sizes(img, tuple(self.options.image_sizes), self.options.preprocessing),
                  box)
        if self.options.cache_images:
            self._cache[i] = result
        return result

    def images(self, i: int, gen: torch.Generator | None = None) -> dict[int, torch.Tensor]:
        return self.images_and_box(i, gen)[0]

    def images_and_box(self, i: int, gen: torch.Generator | None = None
                       ) -> tuple[dict[int, torch.Tensor], torch.Tensor | None]:
        """The images at every size and, with ``with_boxes``, the box in the largest one."""
        sizes = tuple(self.options.image_sizes)
        if self.preresized is not None:
            arrays = {k: v[i] for k, v in self.preresized.items()}
            return preprocess_preresized(arrays, sizes, self.options.augment, gen), None
        resized, box = self._resized(i)
        geometry: dict = {}
        images = crop_resized(resized, self.options.augment, gen, geometry)
        if box is None:
            return images, None
        largest = max(sizes)
        return images, box_after_crop(box, geometry[largest], largest)

    def _embedding(self, i: int, gen) -> tuple[torch.Tensor, list[int]]:
        emb = self.embeddings[i]
        n = emb.shape[0]
        if self.options.text_strategy == "mean4" and n > 1:
            chosen = torch.randperm(n, generator=gen)[: min(4, n)].tolist()
        else:
            chosen = [int(torch.randint(0, n, (1,), generator=gen))]
        return torch.from_numpy(emb[chosen].mean(axis=0)), chosen

    def _wrong_index(self, i: int, gen) -> int:
        n = len(self)
        for _ in range(1000):
            j = int(torch.randint(0, n, (1,), generator=gen))
            if self.class_ids[j] != self.class_ids[i]:
                return j
        raise RuntimeError("could not draw an image of another class")

    def __getitem__(self, key) -> dict:
        """``key`` is an index, or ``(index, sample_seed)``: then every random choice of this
        sample comes from a generator seeded with ``sample_seed``, independent of worker RNGs
        (which makes resumed and multi-worker runs bit-identical)."""
        if isinstance(key, tuple | list):
            i, sample_seed = int(key[0]), int(key[1])
            gen = torch.Generator().manual_seed(sample_seed)
        else:
            i, gen = int(key), None
        images, box = self.images_and_box(i, gen)
        sample = {"index": i, "class_id": int(self.class_ids[i]), "images": images}
        if box is not None:
            sample["box"] = box
        captions = self.index.captions(i)
        if self.embeddings is not None:
            sample["embedding"], chosen = self._embedding(i, gen)
        else:
            chosen = [int(torch.randint(0, len(captions), (1,), generator=gen))]
        sample["caption_ids"] = torch.tensor(chosen + [-1] * (4 - len(chosen)))
        sample["caption"] = captions[chosen[0]] if chosen[0] < len(captions) else ""
        if self.options.wrong_strategy == "other_class":
            j = self._wrong_index(i, gen)
            sample["wrong_images"], wrong_box = self.images_and_box(j, gen)
            sample["wrong_index"] = j
            if wrong_box is not None:
                sample["wrong_box"] = wrong_box
        return sample
