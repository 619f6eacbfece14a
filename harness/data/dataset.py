"""The text-image training dataset shared by StackGAN and the baselines.

A sample holds the image at each configured resolution, the caption embedding per the text
strategy, the raw caption text, the class id and, for the ``other_class`` strategy, a mismatched
("wrong") image. Random choices use torch's generator, so DataLoader seeding governs them.
"""

from __future__ import annotations

import warnings
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
    parts_after_crop,
    preprocess_preresized,
    resize_for_sizes,
)
from harness.errors import UserError

# The caption embedding of a training sample: name -> (captions averaged, drawn with
# replacement, captions held out at the end of each image's list).
TEXT_STRATEGIES = {
    "mean4": (4, False, 0),  # TF StackGAN: 4 of the 10, without replacement
    "one": (1, False, 0),  # StackGAN-Pytorch: one at random
    "mean4_replace": (4, True, 0),  # GAN-INT-CLS, main_cls_int.lua: 4 draws with replacement
    "mean3": (3, False, 0),  # GAN-CLS on COCO, main_cls.lua: 3 of the 5, without replacement
    "mean4_holdout1": (4, False, 1),  # GAWWN: 4 of the first 9 (num_holdout = 1)
}
# other_class: the dataset adds an image of another class (TF StackGAN, Reed); in_batch: the
# model shifts the batch (StackGAN-Pytorch); shuffled_text: the model pairs each real image with
# in-batch shuffled text (GAWWN); none: no mismatched pairs.
WRONG_STRATEGIES = ("other_class", "in_batch", "shuffled_text", "none")


@dataclass(frozen=True)
class DataOptions:
    root: str
    split: str = "train"
    layout: str | None = None  # detected from the folder when None
    image_sizes: tuple[int, ...] = (64,)
    preprocessing: str = "paper"
    load_size: int | None = None  # the square the image is resized to (default size·76/64)
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
    # Also return CUB's 15 part locations as (x, y, visible), x and y fractions of the final
    # crop (clipped to it, mirrored with the flip; the keypoint GAWWN).
    with_parts: bool = False

    def validate(self) -> None:
        if self.text_strategy not in TEXT_STRATEGIES:
            raise UserError(f"text_strategy {self.text_strategy!r}: choose one of {tuple(TEXT_STRATEGIES)}")
        if self.wrong_strategy not in WRONG_STRATEGIES:
            raise UserError(
                f"wrong_strategy {self.wrong_strategy!r}: choose one of {WRONG_STRATEGIES}")
        if self.preresized not in ("auto", "never", "require"):
            raise UserError(f"preresized {self.preresized!r}: choose auto, never or require")
        if not self.image_sizes or any(s < 8 for s in self.image_sizes):
            raise UserError(f"image_sizes {self.image_sizes!r}: need one or more sizes >= 8")
        if self.load_size is not None and (len(self.image_sizes) != 1
                                           or self.load_size < self.image_sizes[0]):
            raise UserError(f"data.load_size {self.load_size}: needs one image size, at most "
                            f"the load size (image sizes {self.image_sizes})")


# The largest image any reader decodes: 4096 x 4096 (CUB's, Oxford-102's and COCO's images are
# at most 640 px a side). The header is read first, so a small file declaring a huge size is
# refused before its pixels are decoded (a 17.6 KB PNG declaring 12000 x 12000 took 21 GB).
MAX_IMAGE_PIXELS = 4096 * 4096


def load_image(path) -> Image.Image:
    try:
        with warnings.catch_warnings():  # PIL warns above 89 MP; such a file is refused below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            width, height = im.size
            if width * height > MAX_IMAGE_PIXELS:
                raise UserError(f"{path}: declares {width}x{height} pixels, more than the "
                                f"{MAX_IMAGE_PIXELS:,} this harness reads (MAX_IMAGE_PIXELS)")
            im.load()
            return im.convert("RGB")
    except FileNotFoundError as exc:
        raise UserError(f"{path}: image file is missing") from exc
    except Image.DecompressionBombError as exc:
        raise UserError(f"{path}: declares more than {MAX_IMAGE_PIXELS:,} pixels, the most this "
                        f"harness reads (PIL: {exc})") from exc
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
        if options.preresized == "require" and not options.use_bbox:
            raise UserError(f"{self.index.split_dir}: the released pre-resized pickles hold "
                            "box-cropped images; with use_bbox=false they cannot be used")
        # The released 76/304images.pickle hold box-cropped images (hanzhanggit/StackGAN
        # misc/preprocess_birds.py): a model trained on whole images (GAN-INT-CLS, GAWWN) must
        # decode the JPEGs instead, and so must any other load size or preprocessing than the
        # TF code's.
        if options.preresized != "never" and options.use_bbox and options.load_size is None \
                and options.preprocessing == "paper":
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
        if options.with_boxes or options.with_parts:
            if self.index.bboxes is None:
                raise UserError(f"{options.root}: has no bounding boxes, which this model is "
                                "conditioned on (CUB and synthbirds have them)")
            # The released pre-resized arrays do not record the source size a box needs.
            self.preresized = None
        self.parts = self.index.load_parts() if options.with_parts else None
        self.class_ids = self.index.class_ids
        self._cache: dict[int, tuple[dict[int, np.ndarray], tuple | None]] = {}
        if options.wrong_strategy == "other_class" and len(np.unique(self.class_ids)) < 2:
            raise UserError(f"{options.root}: the 'other_class' wrong-image strategy needs at "
                            "least two classes in the split")

    def __len__(self) -> int:
        return len(self.index)

    def _resized(self, i: int) -> tuple[dict[int, np.ndarray], dict[str, np.ndarray]]:
        cached = self._cache.get(i)
        if cached is not None:
            return cached
        img = load_image(self.index.image_paths[i])
        region = (0, 0, *img.size)
        if self.options.use_bbox and self.index.bboxes is not None:
            region = bbox_crop_box(self.index.bboxes[i], *img.size)
            img = img.crop(region)
        left, top, right, bottom = region
        extras: dict[str, np.ndarray] = {}
        if self.options.with_boxes:
            x, y, w, h = (float(v) for v in self.index.bboxes[i])
            extras["box"] = np.array([(x - left) / (right - left), (y - top) / (bottom - top),
                                      (x + w - left) / (right - left), (y + h - top) / (bottom - top)])
        if self.parts is not None:
            parts = self.parts[i].astype(np.float64).copy()
            parts[:, 0] = (parts[:, 0] - left) / (right - left)
            parts[:, 1] = (parts[:, 1] - top) / (bottom - top)
            extras["parts"] = parts
        sizes = tuple(self.options.image_sizes)
        loads = {sizes[0]: self.options.load_size} if self.options.load_size else None
        result = (resize_for_sizes(img, sizes, self.options.preprocessing, loads), extras)
        if self.options.cache_images:
            self._cache[i] = result
        return result

    def images(self, i: int, gen: torch.Generator | None = None) -> dict[int, torch.Tensor]:
        return self.images_and_conditions(i, gen)[0]

    def images_and_conditions(self, i: int, gen: torch.Generator | None = None
                              ) -> tuple[dict[int, torch.Tensor], dict[str, torch.Tensor]]:
        """The images at every size and, with ``with_boxes``/``with_parts``, the box and the
        part locations in the largest one (``box``, ``parts``)."""
        sizes = tuple(self.options.image_sizes)
        if self.preresized is not None:
            arrays = {k: v[i] for k, v in self.preresized.items()}
            return preprocess_preresized(arrays, sizes, self.options.augment, gen), {}
        resized, extras = self._resized(i)
        geometry: dict = {}
        images = crop_resized(resized, self.options.augment, gen, geometry)
        largest = max(sizes)
        conditions = {}
        if "box" in extras:
            conditions["box"] = box_after_crop(tuple(extras["box"]), geometry[largest], largest)
        if "parts" in extras:
            conditions["parts"] = parts_after_crop(extras["parts"], geometry[largest], largest)
        return images, conditions

    def _embedding(self, i: int, gen) -> tuple[torch.Tensor, list[int]]:
        emb = self.embeddings[i]
        count, replace, holdout = TEXT_STRATEGIES[self.options.text_strategy]
        pool = max(1, emb.shape[0] - holdout)
        if count == 1 or pool == 1:
            chosen = [int(torch.randint(0, pool, (1,), generator=gen))]
        elif replace:
            chosen = torch.randint(0, pool, (count,), generator=gen).tolist()
        else:
            chosen = torch.randperm(pool, generator=gen)[: min(count, pool)].tolist()
        return torch.from_numpy(emb[chosen].mean(axis=0)), chosen

    def _wrong_index(self, i: int, gen) -> int:
        # TF shifts a batch's same-class draws by one randint(100, 200) (and may still collide);
        # Reed's Lua draws a class, then a file. A uniform image of another class here
        # (docs/fidelity.md rows 4 and 27).
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
        images, conditions = self.images_and_conditions(i, gen)
        sample = {"index": i, "class_id": int(self.class_ids[i]), "images": images, **conditions}
        captions = self.index.captions(i)
        if self.embeddings is not None:
            sample["embedding"], chosen = self._embedding(i, gen)
        else:
            chosen = [int(torch.randint(0, len(captions), (1,), generator=gen))]
        sample["caption_ids"] = torch.tensor(chosen + [-1] * (4 - len(chosen)))
        sample["caption"] = captions[chosen[0]] if chosen[0] < len(captions) else ""
        if self.options.wrong_strategy == "other_class":
            j = self._wrong_index(i, gen)
            sample["wrong_images"], wrong_conditions = self.images_and_conditions(j, gen)
            sample["wrong_index"] = j
            sample.update({f"wrong_{k}": v for k, v in wrong_conditions.items()})
        return sample
