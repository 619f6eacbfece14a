"""``data check``: validate a dataset folder and list every problem with the file it is in."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from harness.data.fingerprint import MANIFEST_NAME, sha256_bytes
from harness.data.safe_pickle import safe_load_pickle
from harness.data.sources import EMBEDDINGS_FILE, PRERESIZED_FILES, DatasetIndex, load_index
from harness.errors import UserError

SPLITS = ("train", "test")


@dataclass
class CheckReport:
    root: Path
    problems: list[str] = field(default_factory=list)
    checked_images: int = 0
    splits: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, path, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def summary(self) -> str:
        head = (f"{self.root}: {self.checked_images} images in "
                + ", ".join(f"{k} {v}" for k, v in self.splits.items()))
        if self.ok:
            return head + "\nno problems found"
        lines = [head, f"{len(self.problems)} problem(s):"] + [f"  {p}" for p in self.problems]
        return "\n".join(lines)


def _check_image(args: tuple[str, list[float] | None, str | None]) -> tuple[str, list[str]]:
    path, bbox, expected_sha = args
    problems = []
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return path, ["image file is missing"]
    except OSError as exc:
        return path, [f"cannot read ({exc.strerror or exc})"]
    if expected_sha is not None and sha256_bytes(data) != expected_sha:
        problems.append("content differs from the manifest (file changed since generation)")
    try:
        import io

        with Image.open(io.BytesIO(data)) as im:
            im.load()  # decodes every byte: a truncated JPEG raises here
            width, height = im.size
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        return path, problems + [f"unreadable or corrupt image ({exc})"]
    if bbox is not None:
        x, y, w, h = bbox
        if w <= 0 or h <= 0:
            problems.append(f"bounding box {bbox} has no area")
        elif x < 0 or y < 0 or x + w > width + 0.5 or y + h > height + 0.5:
            problems.append(f"bounding box {bbox} lies outside the {width}x{height} image")
    return path, problems


def check_dataset(root: str | os.PathLike, layout: str | None = None, workers: int | None = None,
                  progress: bool = True) -> CheckReport:
    root = Path(root)
    report = CheckReport(root)
    manifest_hashes: dict[str, str] = {}
    if (root / MANIFEST_NAME).exists():
        try:
            manifest_hashes = json.loads((root / MANIFEST_NAME).read_text()).get("files", {})
        except json.JSONDecodeError as exc:
            report.add(root / MANIFEST_NAME, f"not valid JSON ({exc})")

    indexes: dict[str, DatasetIndex] = {}
    for split in SPLITS:
        try:
            indexes[split] = load_index(root, split, layout)
        except UserError as exc:
            report.problems.append(str(exc))
    if not indexes:
        return report

    jobs = []
    for split, index in indexes.items():
        report.splits[split] = len(index)
        for i, path in enumerate(index.image_paths):
            rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else None
            bbox = index.bboxes[i].tolist() if index.bboxes is not None else None
            jobs.append((str(path), bbox, manifest_hashes.get(rel)))
        _check_captions(index, report)
        _check_arrays(index, report)

    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(jobs), desc="checking images", unit="img", disable=not progress)
    if workers > 1 and len(jobs) > 64:
        with mp.get_context("spawn").Pool(workers) as pool:
            results = []
            for res in pool.imap(_check_image, jobs, chunksize=32):
                results.append(res)
                bar.update()
    else:
        results = []
        for job in jobs:
            results.append(_check_image(job))
            bar.update()
    bar.close()
    report.checked_images = len(results)
    for path, problems in results:
        for p in problems:
            report.add(path, p)

    if len(indexes) == 2 and indexes["train"].layout != "coco":
        overlap = set(indexes["train"].class_ids.tolist()) & set(indexes["test"].class_ids.tolist())
        if overlap:
            report.add(root / "test" / "class_info.pickle",
                       f"{len(overlap)} classes are in both train and test, e.g. {sorted(overlap)[:5]}")
    return report


def _check_captions(index: DatasetIndex, report: CheckReport) -> None:
    if index.caption_paths is None:
        short = [k for k, c in zip(index.keys, index.inline_captions, strict=True) if len(c) < 5]
        if short:
            report.add(index.root / "annotations", f"{len(short)} images have fewer than 5 "
                       f"captions, e.g. {short[0]}")
        return
    for path in index.caption_paths:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            report.add(path, "caption file is missing")
            continue
        except (OSError, UnicodeDecodeError) as exc:
            report.add(path, f"cannot read captions ({exc})")
            continue
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if len(lines) != index.captions_per_image:
            report.add(path, f"has {len(lines)} caption lines, expected {index.captions_per_image}")


def _check_arrays(index: DatasetIndex, report: CheckReport) -> None:
    split_dir = index.split_dir or index.root / index.split
    emb_path = split_dir / EMBEDDINGS_FILE
    if emb_path.exists():
        try:
            arr = np.asarray(safe_load_pickle(emb_path), dtype=np.float32)
            if arr.ndim not in (2, 3) or arr.shape[0] != len(index):
                report.add(emb_path, f"embeddings have shape {arr.shape} but filenames.pickle "
                           f"lists {len(index)} images")
            elif not np.isfinite(arr).all():
                report.add(emb_path, "embeddings contain NaN or Inf")
        except (UserError, ValueError, TypeError) as exc:
            report.add(emb_path, f"cannot load embeddings ({exc})")
    for size, name in PRERESIZED_FILES.items():
        path = split_dir / name
        if path.exists():
            try:
                index.load_preresized(size)
            except UserError as exc:
                report.problems.append(str(exc))
