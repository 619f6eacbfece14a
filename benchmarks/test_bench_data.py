"""Data speed: synthbirds generation images/s and loader samples/s (2-core CPU figures in the
closing notes). Run: pytest benchmarks -m benchmark"""

import shutil

import numpy as np
import pytest
import torch

from harness.data.dataset import DataOptions, TextImageDataset
from harness.data.safe_pickle import dump_pickle
from harness.data.sources import load_index
from harness.data.synthbirds.build import SynthOptions, build_synthbirds

pytestmark = pytest.mark.benchmark

GEN = SynthOptions(classes=20, per_class=20, size=304, seed=0)  # 400 images at the paper's size


def test_generation_images_per_second(benchmark, tmp_path):
    counter = iter(range(1000))

    def run():
        out = tmp_path / f"g{next(counter)}"
        build_synthbirds(out, GEN, progress=False)
        shutil.rmtree(out)

    benchmark.pedantic(run, rounds=2, iterations=1)
    n = GEN.classes * GEN.per_class
    benchmark.extra_info["images_per_second"] = n / benchmark.stats.stats.median
    print(f"\nsynthbirds generation: {n / benchmark.stats.stats.median:.1f} images/s")


@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench") / "birds"
    build_synthbirds(root, GEN, progress=False)
    for split in ("train", "test"):
        n = len(load_index(root, split))
        dump_pickle(np.zeros((n, 10, 1024), np.float32), root / split / "char-CNN-RNN-embeddings.pickle")
    return root


@pytest.mark.parametrize("sizes", [(64,), (64, 256)], ids=["stage1", "stage2"])
def test_loader_samples_per_second(benchmark, birds, sizes):
    ds = TextImageDataset(DataOptions(str(birds), image_sizes=sizes))
    loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, num_workers=2,
                                         persistent_workers=False)

    def run():
        return sum(len(b["index"]) for b in loader)

    n = benchmark.pedantic(run, rounds=2, iterations=1)
    rate = n / benchmark.stats.stats.median
    benchmark.extra_info["samples_per_second"] = rate
    print(f"\nloader {sizes}: {rate:.1f} samples/s")
