import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for the py2pickle helper

from harness.data.synthbirds.build import SynthOptions, build_synthbirds  # noqa: E402

TINY = SynthOptions(classes=12, per_class=4, size=96, seed=3, test_classes=4)


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """A small synthbirds built once per session; copy it before changing it."""
    out = tmp_path_factory.mktemp("synth") / "birds"
    build_synthbirds(out, TINY, workers=1, progress=False)
    return out


@pytest.fixture
def synth_copy(tiny_synth, tmp_path) -> Path:
    dst = tmp_path / "birds"
    shutil.copytree(tiny_synth, dst)
    return dst


def write_random_embeddings(root: Path, dim: int, seed: int = 0) -> Path:
    """Random (N, 10, dim) caption embeddings for both splits of a dataset folder."""
    import numpy as np

    from harness.data.safe_pickle import dump_pickle
    from harness.data.sources import load_index

    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        n = len(load_index(root, split))
        dump_pickle(rng.standard_normal((n, 10, dim)).astype(np.float32),
                    root / split / "char-CNN-RNN-embeddings.pickle")
    return root


@pytest.fixture(scope="session")
def smoke_data(tiny_synth, tmp_path_factory) -> Path:
    """tiny_synth with random 1024-d caption embeddings, for training tests."""
    dst = tmp_path_factory.mktemp("smoke") / "birds"
    shutil.copytree(tiny_synth, dst)
    return write_random_embeddings(dst, 1024)


def smoke_config(root, runs_dir, *overrides, preset="smoke_stage1"):
    from harness.config.load import load_config

    return load_config(preset, [f"data.root={root}", f"runs_dir={runs_dir}",
                                "tracking.enabled=false", "data.check=false", *overrides])


@pytest.fixture(scope="session")
def classifier_ckpt(tmp_path_factory):
    """An untrained small dataset classifier (5 classes, 64-d pooled features) in its format."""
    from dataclasses import asdict

    import torch

    from harness.eval.classifier import FORMAT, ClassifierOptions, SmallClassifier
    from harness.serialization import save_torch_atomic

    torch.manual_seed(0)
    model = SmallClassifier(5, width=8)
    path = tmp_path_factory.mktemp("clf") / "classifier.pt"
    save_torch_atomic({"format": FORMAT, "options": asdict(ClassifierOptions(width=8)),
                       "classes": [1, 2, 3, 4, 5], "metrics": {}, "state": model.state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def two_runs(smoke_data, tmp_path_factory):
    """Two trained smoke runs, modelA (StackGAN Stage-I) and modelB (GAN-INT-CLS), for the
    human-study tests; they only read them."""
    from harness.runner.trainer import train

    runs = tmp_path_factory.mktemp("runs")
    train(smoke_config(smoke_data, runs, "name=modelA"), progress=False)
    train(smoke_config(smoke_data, runs, "name=modelB", preset="smoke_gan_int_cls"), progress=False)
    return runs


def required(name: str) -> bool:
    """Whether CI asked for a test's system dependency (``STACKGAN_BENCH_REQUIRE_BROWSER=1``):
    a missing one then fails instead of skipping. "", "0", "false" and "no" mean not asked."""
    import os

    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")
