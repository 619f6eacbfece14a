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


def _png_folder(path, n, seed, size=64):
    """n smooth random PNGs (upsampled noise, so they compress like images, not like noise)."""
    from PIL import Image

    path.mkdir()
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, size // 8, size // 8, generator=g)
    images = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")
    pixels = images.mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for i in range(n):
        Image.fromarray(pixels[i]).save(path / f"{i:04d}.png")
    return path


def test_eval_command_faster_than_direct_torch_fidelity(weights, tmp_path):
    """What a user runs, first evaluation included: `stackgan-bench eval --fake A --real B
    --metrics fid,kid --extractor inception-v3-compat` against one direct
    torch_fidelity.calculate_metrics call on the same folders, each in a fresh process (imports,
    weight loading and both feature passes counted)."""
    import json
    import subprocess
    import sys

    fake, real = _png_folder(tmp_path / "fake", 256, 5), _png_folder(tmp_path / "real", 256, 6)
    direct = ("import sys, torch_fidelity; m = torch_fidelity.calculate_metrics("
              "input1=sys.argv[1], input2=sys.argv[2], cuda=False, fid=True, kid=True, "
              "kid_subset_size=256, feature_extractor='inception-v3-compat', "
              "feature_extractor_weights_path=sys.argv[3], verbose=False, cache=False); "
              "print(m['frechet_inception_distance'])")
    ours = [sys.executable, "-m", "harness.cli.main", "eval", "--fake", str(fake), "--real", str(real),
            "--metrics", "fid,kid", "--extractor", "inception-v3-compat", "--kid-subset-size", "256",
            "--inception-weights", str(weights), "--inception-sha256", "any", "--json"]
    times = {}
    outputs = {}
    for name, cmd in (("direct", [sys.executable, "-c", direct, str(fake), str(real), str(weights)]),
                      ("command", ours)):
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True)
        times[name] = time.perf_counter() - start
        assert done.returncode == 0, done.stderr[-2000:]
        outputs[name] = done.stdout
    speedup = times["direct"] / times["command"]
    print(f"\n256 + 256 PNGs at 64 px, FID + KID, fresh processes: direct torch_fidelity "
          f"{times['direct']:.1f} s, stackgan-bench eval {times['command']:.1f} s: {speedup:.2f}x")
    fid_direct = float(outputs["direct"].strip().splitlines()[-1])
    fid_ours = json.loads(outputs["command"])["values"]["fid"]
    assert fid_ours == pytest.approx(fid_direct, rel=1e-3)
    assert speedup >= 1.3
