"""Atomic checkpoints: temporary file, fsync, rename. Keeps the last K and the best."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from harness.atomic import write_text_atomic
from harness.errors import UserError
from harness.serialization import load_torch_checked, save_torch_atomic

FORMAT = "stackgan-bench/checkpoint/1"
_NAME = re.compile(r"step-(\d{9})\.pt$")


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    save_torch_atomic({"format": FORMAT, **state}, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    return load_torch_checked(path, FORMAT, "checkpoint")


class CheckpointStore:
    """``<run>/checkpoints/step-000001000.pt`` …, ``best.pt`` and ``best.json``."""

    def __init__(self, folder: str | os.PathLike, keep_last: int = 3):
        self.folder = Path(folder)
        self.keep_last = max(1, keep_last)

    def steps(self) -> list[int]:
        if not self.folder.exists():
            return []
        return sorted(int(m.group(1)) for p in self.folder.iterdir() if (m := _NAME.match(p.name)))

    def path(self, step: int) -> Path:
        return self.folder / f"step-{step:09d}.pt"

    def latest(self) -> Path | None:
        steps = self.steps()
        return self.path(steps[-1]) if steps else None

    def save(self, state: dict, step: int) -> Path:
        path = self.path(step)
        save_checkpoint(state, path)
        for old in self.steps()[: -self.keep_last]:
            self.path(old).unlink(missing_ok=True)
        return path

    def save_best(self, state: dict, step: int, metric: str, value: float) -> None:
        save_checkpoint(state, self.folder / "best.pt")
        write_text_atomic(self.folder / "best.json",
                          json.dumps({"step": step, "metric": metric, "value": value}))

    def best_value(self) -> float | None:
        meta = self.folder / "best.json"
        return json.loads(meta.read_text())["value"] if meta.exists() else None


def find_run_checkpoint(run_or_file: str | os.PathLike) -> Path:
    """A checkpoint file, or a run folder's final/latest checkpoint."""
    path = Path(run_or_file)
    if path.is_file():
        return path
    final = path / "checkpoints" / "final.pt"
    if final.exists():
        return final
    latest = CheckpointStore(path / "checkpoints").latest()
    if latest is None:
        raise UserError(f"{path}: no checkpoint found (expected a run folder or a .pt file)")
    return latest
