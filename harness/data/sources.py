"""Indexes of the supported on-disk datasets: which images, captions, classes, boxes, embeddings.

One ``DatasetIndex`` per split, built by a name-based registry of layouts:
- ``cub``: StackGAN ``Data/birds`` (CUB-200-2011, and synthbirds, which is written in it);
- ``oxford102``: StackGAN ``Data/flowers`` (no boxes);
- ``coco``: COCO 2014 (``annotations/captions_{train,val}2014.json``, ``{train,val}2014/``),
  with StackGAN-Pytorch's ``{train,val}/filenames.pickle`` and embeddings when present.
``detect_layout`` chooses the layout from the folder's contents.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.core.compute_dtype import numpy_compute_dtype
from harness.data.fingerprint import MANIFEST_NAME
from harness.data.safe_pickle import safe_load_pickle
from harness.errors import UserError

EMBEDDINGS_FILE = "char-CNN-RNN-embeddings.pickle"
PRERESIZED_FILES = {76: "76images.pickle", 304: "304images.pickle"}


@dataclass
class DatasetIndex:
    root: Path
    split: str
    layout: str
    keys: list[str]
    image_paths: list[Path]
    class_ids: np.ndarray  # (N,) int
    caption_paths: list[Path] | None = None  # one text file of captions per image (CUB/Oxford)
    inline_captions: list[list[str]] | None = None  # captions held in memory (COCO)
    bboxes: np.ndarray | None = None  # (N, 4) x, y, w, h
    parts: np.ndarray | None = None  # (N, 15, 3) x, y, visible: CUB's part locations, on demand
    captions_per_image: int = 10
    split_dir: Path | None = None
    _caption_cache: dict[int, list[str]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.keys)

    def captions(self, i: int) -> list[str]:
        if self.inline_captions is not None:
            return self.inline_captions[i]
        if i not in self._caption_cache:
            path = self.caption_paths[i]
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise UserError(f"{path}: cannot read captions ({exc.strerror or exc})") from exc
            lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
            if not lines:
                raise UserError(f"{path}: caption file is empty")
            self._caption_cache[i] = lines
        return self._caption_cache[i]

    def embeddings_path(self, name: str = EMBEDDINGS_FILE) -> Path:
        return (self.split_dir or self.root / self.split) / name

    def load_embeddings(self, name: str = EMBEDDINGS_FILE) -> np.ndarray:
        """(N, captions, dim) in the compute dtype (float32; float64 under the gate, where the
        embeddings are written in float64); the released file is a list of (10, 1024) arrays."""
        path = self.embeddings_path(name)
        if not path.exists():
            raise UserError(
                f"{path}: no caption embeddings; run `stackgan-bench text embed --data {self.root} "
                "--encoder CKPT` or place the released file there")
        data = safe_load_pickle(path)
        try:
            arr = np.asarray(data, dtype=numpy_compute_dtype())
        except (ValueError, TypeError) as exc:
            raise UserError(f"{path}: embeddings are not a regular array ({exc})") from exc
        if arr.ndim == 2:  # one embedding per image
            arr = arr[:, None, :]
        if arr.ndim != 3 or arr.shape[0] != len(self):
            raise UserError(f"{path}: embeddings have shape {arr.shape}, expected "
                            f"({len(self)}, captions, dim) to match {len(self)} filenames")
        return arr

    def load_parts(self) -> np.ndarray:
        """(N, 15, 3) part locations (x, y, visible), read once."""
        if self.parts is None:
            if self.layout != "cub":
                raise UserError(f"{self.root}: a {self.layout} dataset has no part locations "
                                "(the keypoint GAWWN needs CUB's parts/part_locs.txt)")
            by_key = load_cub_parts(self.root)
            missing = [k for k in self.keys if k not in by_key]
            if missing:
                raise UserError(f"{self.root / 'CUB_200_2011/parts/part_locs.txt'}: no parts for "
                                f"{len(missing)} images, e.g. {missing[0]}")
            self.parts = np.stack([by_key[k] for k in self.keys])
        return self.parts

    def load_preresized(self, size: int) -> np.ndarray | None:
        path = (self.split_dir or self.root / self.split) / PRERESIZED_FILES[size]
        if not path.exists():
            return None
        arr = _numbers(safe_load_pickle(path), path, "an array of uint8 images")
        if arr.shape[:1] != (len(self),) or arr.shape[1:3] != (size, size):
            raise UserError(f"{path}: shape {arr.shape}, expected ({len(self)}, {size}, {size}, 3)")
        return arr.astype(np.uint8)


def _numbers(data, path: Path, expected: str, dtype=None) -> np.ndarray:
    """``data`` (from a pickle) as a numeric array, or a message naming the file."""
    if isinstance(data, dict | str | bytes) or data is None:
        raise UserError(f"{path}: holds a {type(data).__name__}, expected {expected}")
    try:
        arr = np.asarray(data) if dtype is None else np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as exc:
        raise UserError(f"{path}: expected {expected} ({exc})") from exc
    if arr.dtype.kind not in "iufb":
        raise UserError(f"{path}: holds {arr.dtype} values, expected {expected}")
    return arr


def _read_table(path: Path, min_cols: int) -> list[list[str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < min_cols:
            raise UserError(f"{path}:{n}: expected at least {min_cols} fields, got {line!r}")
        rows.append(parts)
    return rows


def load_cub_bboxes(root: Path) -> dict[str, np.ndarray]:
    """image key (``<class_dir>/<stem>``) -> (x, y, w, h), joining bounding_boxes.txt to images.txt."""
    cub = root / "CUB_200_2011"
    images = {r[0]: r[1] for r in _read_table(cub / "images.txt", 2)}
    boxes = {}
    for row in _read_table(cub / "bounding_boxes.txt", 5):
        image_id = row[0]
        if image_id not in images:
            raise UserError(f"{cub / 'bounding_boxes.txt'}: image id {image_id} is not in images.txt")
        key = images[image_id].rsplit(".", 1)[0]
        try:
            boxes[key] = np.array([float(v) for v in row[1:5]], dtype=np.float64)
        except ValueError as exc:
            raise UserError(f"{cub / 'bounding_boxes.txt'}: bad box for image {image_id}") from exc
    return boxes


CUB_NUM_PARTS = 15


def load_cub_parts(root: Path) -> dict[str, np.ndarray]:
    """image key -> (15, 3) part locations (x, y, visible) from CUB_200_2011/parts/part_locs.txt
    (``<image_id> <part_id> <x> <y> <visible>``), joined to images.txt."""
    cub = root / "CUB_200_2011"
    path = cub / "parts" / "part_locs.txt"
    if not path.exists():
        raise UserError(f"{path}: missing; the keypoint GAWWN needs CUB's part locations")
    images = {r[0]: r[1].rsplit(".", 1)[0] for r in _read_table(cub / "images.txt", 2)}
    parts: dict[str, np.ndarray] = {}
    for n, row in enumerate(_read_table(path, 5), 1):
        key = images.get(row[0])
        try:
            part = int(row[1])
            values = [float(v) for v in row[2:5]]
        except ValueError:
            raise UserError(f"{path}:{n}: expected <image_id> <part_id> <x> <y> <visible>") from None
        if key is None or not 1 <= part <= CUB_NUM_PARTS:
            raise UserError(f"{path}:{n}: unknown image id {row[0]} or part id {row[1]}")
        parts.setdefault(key, np.zeros((CUB_NUM_PARTS, 3)))[part - 1] = values
    return parts


def _split_files(root: Path, split: str) -> tuple[Path, list[str], np.ndarray]:
    split_dir = root / split
    fn_path = split_dir / "filenames.pickle"
    if not fn_path.exists():
        raise UserError(f"{fn_path}: missing; a {split} split needs filenames.pickle")
    keys = safe_load_pickle(fn_path)
    if not isinstance(keys, list | tuple) or not all(isinstance(k, str) for k in keys):
        raise UserError(f"{fn_path}: expected a list of strings")
    ci_path = split_dir / "class_info.pickle"
    if ci_path.exists():
        class_ids = _numbers(safe_load_pickle(ci_path), ci_path, "a list of integer class ids",
                             np.int64).reshape(-1)
        if len(class_ids) != len(keys):
            raise UserError(f"{ci_path}: {len(class_ids)} class ids for {len(keys)} filenames")
    else:  # as StackGAN-Pytorch: every image its own class
        class_ids = np.arange(len(keys), dtype=np.int64)
    return split_dir, list(keys), class_ids


def load_cub(root: Path, split: str) -> DatasetIndex:
    split_dir, keys, class_ids = _split_files(root, split)
    boxes = load_cub_bboxes(root)
    missing = [k for k in keys if k not in boxes]
    if missing:
        raise UserError(f"{root / 'CUB_200_2011/bounding_boxes.txt'}: no box for {len(missing)} "
                        f"images, e.g. {missing[0]}")
    return DatasetIndex(
        root=root, split=split, layout="cub", keys=keys,
        image_paths=[root / "CUB_200_2011" / "images" / f"{k}.jpg" for k in keys],
        caption_paths=[root / "text_c10" / f"{k}.txt" for k in keys],
        class_ids=class_ids, bboxes=np.stack([boxes[k] for k in keys]) if keys else None,
        split_dir=split_dir)


def load_oxford(root: Path, split: str) -> DatasetIndex:
    split_dir, keys, class_ids = _split_files(root, split)
    text_by_stem: dict[str, Path] | None = None
    image_paths, caption_paths = [], []
    for k in keys:
        stem = Path(k).name
        direct = root / f"{k}.jpg"
        image_paths.append(direct if direct.exists() else root / "jpg" / f"{stem}.jpg")
        text = root / "text_c10" / f"{k}.txt"
        if not text.exists():
            # Released keys and text_c10/class_XXXXX/ folders do not always agree: match by stem.
            if text_by_stem is None:
                text_by_stem = {p.stem: p for p in (root / "text_c10").glob("*/*.txt")}
            text = text_by_stem.get(stem, text)
        caption_paths.append(text)
    return DatasetIndex(root=root, split=split, layout="oxford102", keys=keys,
                        image_paths=image_paths, caption_paths=caption_paths,
                        class_ids=class_ids, split_dir=split_dir)


def load_coco(root: Path, split: str) -> DatasetIndex:
    coco_split = {"test": "val"}.get(split, split)
    ann_path = root / "annotations" / f"captions_{coco_split}2014.json"
    try:
        ann = json.loads(ann_path.read_text(encoding="utf-8"))
        images = {img["id"]: img["file_name"] for img in ann["images"]}
        caps: dict[int, list[str]] = {i: [] for i in images}
        for a in ann["annotations"]:
            caps[a["image_id"]].append(a["caption"].strip())
    except OSError as exc:
        raise UserError(f"{ann_path}: cannot read ({exc.strerror or exc})") from exc
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"{ann_path}: not a COCO captions file ({exc})") from exc
    by_stem = {Path(fn).stem: i for i, fn in images.items()}
    split_dir = root / coco_split
    fn_path = split_dir / "filenames.pickle"
    if fn_path.exists():
        keys = [Path(k).name for k in safe_load_pickle(fn_path)]
        unknown = [k for k in keys if k not in by_stem]
        if unknown:
            raise UserError(f"{fn_path}: {len(unknown)} names not in {ann_path.name}, e.g. {unknown[0]}")
    else:
        keys = [Path(images[i]).stem for i in sorted(images)]
    ids = [by_stem[k] for k in keys]
    per_image = min((len(caps[i]) for i in ids), default=5)
    return DatasetIndex(
        root=root, split=coco_split, layout="coco", keys=keys,
        image_paths=[root / f"{coco_split}2014" / images[i] for i in ids],
        inline_captions=[caps[i][:per_image] for i in ids],
        class_ids=np.arange(len(keys), dtype=np.int64), captions_per_image=per_image,
        split_dir=split_dir)


LAYOUTS: dict[str, Callable[[Path, str], DatasetIndex]] = {
    "cub": load_cub, "oxford102": load_oxford, "coco": load_coco,
}


def detect_layout(root: Path) -> str:
    if (root / "CUB_200_2011").is_dir():
        return "cub"
    if list((root / "annotations").glob("captions_*2014.json")):
        return "coco"
    if (root / "text_c10").is_dir():
        return "oxford102"
    raise UserError(
        f"{root}: not a dataset folder: expected CUB_200_2011/ (birds), text_c10/ (flowers) or "
        "annotations/captions_*2014.json (COCO); make one with `stackgan-bench data synth --out DIR`")


def load_index(root: str | Path, split: str, layout: str | None = None) -> DatasetIndex:
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: dataset folder does not exist")
    layout = layout or detect_layout(root)
    if layout not in LAYOUTS:
        raise UserError(f"unknown dataset layout {layout!r}; known: {', '.join(LAYOUTS)}")
    return LAYOUTS[layout](root, split)


def dataset_fingerprint(root: str | Path) -> str:
    """The dataset's content fingerprint: from its manifest if it has one, else computed."""
    root = Path(root)
    manifest = root / MANIFEST_NAME
    if manifest.exists():
        try:
            return json.loads(manifest.read_text())["fingerprint"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise UserError(f"{manifest}: unreadable manifest ({exc})") from exc
    from harness.data.fingerprint import fingerprint_from_hashes, hash_tree

    return fingerprint_from_hashes(hash_tree(root))
