"""Seeds, determinism switches, RNG state capture, and the provenance every run records."""

from __future__ import annotations

import os
import platform
import random
import subprocess
from pathlib import Path

import numpy as np
import torch


def seed_all(seed: int) -> None:
    """Every generator from ``train.seed`` (Reed's Lua code draws its seed at random,
    docs/fidelity.md row 12)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_determinism(deterministic: bool) -> None:
    """Deterministic kernels (and cuBLAS workspace) or, when off, cuDNN autotuning for speed."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True


def worker_init_fn(worker_id: int) -> None:
    # Samples draw from their own seeded generators; this only keeps stray numpy/python use
    # in workers reproducible too.
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def rng_states() -> dict:
    """Every RNG state, as tensors and plain data so that checkpoints load with weights_only."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states = {"python": random.getstate(),
              "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
              "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def code_version() -> dict[str, str]:
    """The git commit of the installed source and whether it had uncommitted changes."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip() != ""
        return {"git_commit": commit, "git_dirty": str(dirty).lower()}
    except (OSError, subprocess.SubprocessError):
        from harness import __version__

        return {"git_commit": f"unknown (package {__version__})", "git_dirty": "unknown"}


def library_versions() -> dict[str, str]:
    import PIL
    import torchvision

    versions = {"python": platform.python_version(), "torch": torch.__version__,
                "torchvision": torchvision.__version__, "numpy": np.__version__,
                "pillow": PIL.__version__, "platform": platform.platform()}
    try:
        import mlflow

        versions["mlflow"] = mlflow.__version__
    except ImportError:
        pass
    return versions
