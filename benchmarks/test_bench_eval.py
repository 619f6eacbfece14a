"""Evaluation speed on this CPU (numbers in the closing notes). Run:
    pytest benchmarks/test_bench_eval.py -m benchmark -s
The standard Inception weights are not available offline: a randomly initialised state dict in
the same format stands in; speed and agreement do not depend on the weights' values."""

import time

import pytest
import torch
import torch_fidelity
from torch.utils.data import Dataset

from harness.eval import inception_fast
from harness.eval.engine import EvalSettings, evaluate_sets

pytestmark = pytest.mark.benchmark


class Images(Dataset):
    def __init__(self, n, seed, size=128):
        g = torch.Generator().manual_seed(seed)
        self.t = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)

    def __len__(self):
        return len(self.t)

    def __getitem__(self, i):
        return self.t[i]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return inception_fast.random_weights_file(tmp_path_factory.mktemp("w") / "inception.pth")


def test_eval_faster_than_default_torch_fidelity(weights, tmp_path):
    fake, real = Images(96, 1), Images(96, 2)
    start = time.perf_counter()
    default = torch_fidelity.calculate_metrics(
        input1=fake, input2=real, cuda=False, isc=True, fid=True, feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=weights, verbose=False, cache=False, save_cpu_ram=True)
    t_default = time.perf_counter() - start
    settings = EvalSettings(extractor="inception-v3-compat", weights_path=weights, cache_root=str(tmp_path),
                            seed=2020)
    start = time.perf_counter()
    ours = evaluate_sets(fake, real, ("is", "fid"), settings)["values"]
    t_ours = time.perf_counter() - start
    speedup = t_default / t_ours
    print(f"\n192 images (IS + FID): default torch-fidelity {t_default:.1f} s "
          f"({192 / t_default:.2f} images/s), ours {t_ours:.1f} s ({192 / t_ours:.2f} images/s): "
          f"{speedup:.2f}x; IS {ours['is_mean']:.6f} vs {default['inception_score_mean']:.6f}, "
          f"FID {ours['fid']:.6f} vs {default['frechet_inception_distance']:.6f}")
    # With stand-in weights the logits are large enough to saturate the softmax, and
    # torch-fidelity's IS is then NaN (0 * log 0) in both; logits agreement is a unit test.
    if default["inception_score_mean"] == default["inception_score_mean"]:
        assert ours["is_mean"] == pytest.approx(default["inception_score_mean"], rel=1e-4)
    assert ours["fid"] == pytest.approx(default["frechet_inception_distance"], rel=1e-4)
    assert speedup >= 1.3


def test_second_evaluation_skips_the_real_pass(weights, tmp_path):
    fake, real = Images(32, 3), Images(96, 4)  # a real set larger than the samples, as usual
    settings = EvalSettings(extractor="inception-v3-compat", weights_path=weights, cache_root=str(tmp_path))
    desc = {"data": "bench", "split": "test", "size": 128, "n": 96}
    times = []
    for _ in range(2):
        start = time.perf_counter()
        evaluate_sets(fake, real, ("fid",), settings, desc)
        times.append(time.perf_counter() - start)
    print(f"\nfirst evaluation {times[0]:.1f} s, second (real features cached) {times[1]:.1f} s: "
          f"{times[0] / times[1]:.2f}x")
    assert times[0] / times[1] >= 2.0
