"""Step stamps: each reproduce step records the hash of its inputs when it finishes; a step
whose inputs hash the same (and whose outputs still exist) is skipped. Inputs include the code
a step runs (the source of the packages it depends on), so a code change redoes what it affects.
"""

from __future__ import annotations

import hashlib
import json
import time
from functools import cache
from pathlib import Path

from harness.atomic import write_text_atomic
from harness.data.fingerprint import fingerprint_from_hashes, hash_tree

REPO = Path(__file__).resolve().parents[2]


def inputs_hash(inputs) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


@cache
def code_hash(*packages: str) -> str:
    """Hash of the Python sources under the given repository folders (e.g. ``stackgan``)."""
    h = hashlib.sha256()
    for pkg in sorted(packages):
        for path in sorted((REPO / pkg).rglob("*.py")):
            h.update(path.relative_to(REPO).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def _update(h, obj) -> None:
    import torch

    if isinstance(obj, torch.Tensor):
        h.update(str((obj.dtype, tuple(obj.shape))).encode())
        h.update(obj.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            h.update(repr(k).encode())
            _update(h, obj[k])
    elif isinstance(obj, list | tuple):
        for v in obj:
            _update(h, v)
    else:
        h.update(repr(obj).encode())


def weights_hash(checkpoint: str | Path) -> str:
    """Hash of a training checkpoint's model state (networks, optimisers, schedulers): equal for
    two deterministic runs, unlike the file, which also records wall-clock timings."""
    from harness.checkpoints import load_checkpoint

    h = hashlib.sha256()
    _update(h, load_checkpoint(checkpoint)["model"])
    return h.hexdigest()


def source_fingerprint(root: str | Path) -> str:
    """The dataset's identity without the caption embeddings (which reproduce may write into
    it): a synthbirds manifest's fingerprint, else a hash of every other file."""
    root = Path(root)
    manifest = root / "manifest.json"
    if manifest.exists():
        return json.loads(manifest.read_text())["fingerprint"]
    hashes = {k: v for k, v in hash_tree(root).items() if "embeddings.pickle" not in k}
    return fingerprint_from_hashes(hashes)


class Stamps:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def _path(self, step: str) -> Path:
        return self.folder / (step.replace("/", "_").replace(":", "_") + ".json")

    def get(self, step: str) -> dict | None:
        path = self._path(step)
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return None  # a damaged stamp only means the step runs again

    def current(self, step: str, key: str, outputs: list[str | Path] = ()) -> bool:
        stamp = self.get(step)
        return bool(stamp and stamp.get("key") == key and all(Path(o).exists() for o in outputs))

    def record(self, step: str, key: str, info: dict | None = None) -> None:
        write_text_atomic(self._path(step), json.dumps(
            {"step": step, "key": key, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
             **(info or {})}, indent=2, default=str))
