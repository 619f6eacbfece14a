"""Training images for the attribute classifier on synthbirds: birds of attribute combinations
that no species of the dataset has, drawn by the dataset's own renderer.

Why: every image of a synthbirds species shows the same attributes, so an attribute classifier
trained on the 150 training species learns *which species* an image shows and maps it to that
species' attributes (measured at 128 px: 100 % on training images, chance on the test species for
crown colour, bill shape and bill length). Birds whose crown, wings, bill … vary independently
leave it no such shortcut: it has to read each part. Held-out accuracy is still measured on the
dataset's real test images. A real dataset (CUB) has no renderer; its classifier trains on its
real per-image labels only.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from harness.errors import UserError

SPECIES_KEYS = ("crown", "wing", "underparts", "tail", "wing_pattern", "beak_shape", "beak_length",
                "size")


def synthbirds_manifest(root: str | Path) -> dict | None:
    """The dataset's synthbirds manifest, or None for any other dataset."""
    path = Path(root) / "manifest.json"
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None
    return manifest if manifest.get("dataset") == "synthbirds" else None


def novel_species(root: str | Path, count: int, seed: int, palette: str = "full") -> list:
    """``count`` species whose attribute combination is none of the dataset's species', their
    colours from the dataset's palette."""
    from harness.data.synthbirds.vocab import make_species

    path = Path(root) / "species.json"
    if not path.exists():
        raise UserError(f"{path}: missing; the synthbirds dataset lists its species there")
    taken = {tuple(s[k] for k in SPECIES_KEYS) for s in json.loads(path.read_text())}
    found, draw = [], 0
    while len(found) < count:
        # make_species draws up to 999 distinct combinations per seed; more seeds give more.
        for sp in make_species(999, seed * 1000 + draw, palette):
            key = tuple(getattr(sp, k) for k in SPECIES_KEYS)
            if key not in taken:
                taken.add(key)
                found.append(sp)
                if len(found) == count:
                    break
        draw += 1
    return found


class _Renders(Dataset):
    def __init__(self, species: list, render_size: int, load: int, seed: int, style: dict):
        self.species, self.render_size, self.load, self.seed = species, render_size, load, seed
        self.style = style

    def __len__(self) -> int:
        return len(self.species)

    def __getitem__(self, i: int):
        from harness.data.crop import bbox_crop_box
        from harness.data.synthbirds.build import JPEG_QUALITY
        from harness.data.synthbirds.render import render_bird

        rendered = render_bird(self.species[i], np.random.default_rng([self.seed, i]), self.render_size,
                               **self.style)
        # Through JPEG and the box crop, as the dataset's images are stored and read.
        buf = io.BytesIO()
        rendered.image.save(buf, format="JPEG", quality=JPEG_QUALITY)
        buf.seek(0)
        img = Image.open(buf).convert("RGB")
        img = img.crop(bbox_crop_box(rendered.bbox, *img.size)).resize((self.load, self.load),
                                                                         Image.BICUBIC)
        return torch.from_numpy(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy())


def render_novel_birds(root: str | Path, count: int, load: int, seed: int,
                       workers: int = 2) -> tuple[torch.Tensor, list[dict[str, str]]]:
    """``count`` box-cropped uint8 images at ``load``×``load``, one per novel species, and each
    image's attributes (kind -> value, as in the dataset's attribute file)."""
    manifest = synthbirds_manifest(root)
    if manifest is None:
        raise UserError(f"{root}: not a synthbirds dataset (no synthbirds manifest.json); "
                        "novel-species renders exist only for the built-in dataset")
    from dataclasses import fields

    from harness.data.synthbirds.build import SynthOptions

    options = manifest.get("options", {})
    style = SynthOptions(**{f.name: options[f.name] for f in fields(SynthOptions) if f.name in options})
    species = novel_species(root, count, seed, style.palette)
    size = int(options.get("size", 304))
    loader = DataLoader(_Renders(species, size, load, seed, style.style()), batch_size=64,
                        num_workers=workers)
    images = torch.cat(list(loader)) if species else torch.empty(0, 3, load, load, dtype=torch.uint8)
    return images, [sp.attributes() for sp in species]
