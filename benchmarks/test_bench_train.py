"""One training step at birds sizes, batch 64, on CPU: images/s and the step's FLOP rate as a
fraction of the fp32 matmul rate measured in the same process. Run:
    pytest benchmarks/test_bench_train.py -m benchmark -s
"""

import time

import pytest
import torch

from harness.config.load import load_config
from harness.runner.summary import model_for_summary, synthetic_batch, train_step_flops

pytestmark = pytest.mark.benchmark


def matmul_flops_per_second(n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        a @ b
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - start)


@pytest.mark.parametrize("preset, overrides", [
    ("birds_stage1_pytorch", []),
    ("birds_stage1_pytorch", ["train.channels_last=false"]),
    ("birds_stage1", []),
], ids=["pytorch", "pytorch-contiguous", "paper"])
def test_stage1_train_step(benchmark, preset, overrides):
    cfg = load_config(preset, overrides)
    model = model_for_summary(cfg)
    batch = synthetic_batch(cfg)
    flops = train_step_flops(model, batch)
    counter = iter(range(10**6))
    benchmark.pedantic(lambda: model.train_step(batch, next(counter)), rounds=4, iterations=1,
                       warmup_rounds=1)
    seconds = benchmark.stats.stats.median
    rate = matmul_flops_per_second()
    benchmark.extra_info.update(images_per_second=64 / seconds, gflop_per_step=flops / 1e9,
                                fraction_of_matmul=flops / seconds / rate)
    print(f"\n{preset} {overrides}: {64 / seconds:.1f} images/s, {flops / seconds / 1e9:.0f} GFLOP/s "
          f"= {flops / seconds / rate:.2f} of fp32 matmul ({rate / 1e9:.0f} GFLOP/s)")


@pytest.mark.parametrize("preset, overrides", [
    ("birds_stage2", ["train.stage1_run=null", "data.batch_size=16"]),
    ("birds_stage2_pytorch", ["train.stage1_run=null", "data.batch_size=16"]),
], ids=["paper", "pytorch"])
def test_stage2_train_step(benchmark, preset, overrides):
    """Stage-II at 256×256 (batch 16 on CPU; the paper's 64 needs a GPU's memory and time)."""
    cfg = load_config(preset, overrides)
    model = model_for_summary(cfg)
    batch = synthetic_batch(cfg)
    counter = iter(range(10**6))
    benchmark.pedantic(lambda: model.train_step(batch, next(counter)), rounds=3, iterations=1,
                       warmup_rounds=1)
    b = cfg.data.batch_size
    benchmark.extra_info.update(images_per_second=b / benchmark.stats.stats.median)
    print(f"\n{preset}: {b / benchmark.stats.stats.median:.1f} images/s (batch {b})")


@pytest.mark.parametrize("preset", ["gan_int_cls_birds", "gawwn_birds"])
def test_baseline_train_step(benchmark, preset):
    cfg = load_config(preset)
    model = model_for_summary(cfg)
    batch = synthetic_batch(cfg)
    counter = iter(range(10**6))
    benchmark.pedantic(lambda: model.train_step(batch, next(counter)), rounds=3, iterations=1,
                       warmup_rounds=1)
    print(f"\n{preset}: {64 / benchmark.stats.stats.median:.1f} images/s (batch 64)")


def test_sampling_images_per_second(benchmark):
    """Generation alone (eval mode, no grad) at birds Stage-I sizes, batch 64."""
    cfg = load_config("birds_stage1")
    model = model_for_summary(cfg)
    model.eval()
    emb = torch.randn(64, cfg.model.text_dim)
    z = torch.randn(64, cfg.model.z_dim)
    benchmark.pedantic(lambda: model.generate(emb, z), rounds=5, iterations=1, warmup_rounds=1)
    print(f"\nsampling: {64 / benchmark.stats.stats.median:.1f} images/s")


def _median_step_seconds(cfg, rounds: int) -> float:
    model = model_for_summary(cfg)
    batch = synthetic_batch(cfg)
    model.train_step(batch, 0)  # warm-up: oneDNN primitive creation, allocator
    times = []
    for step in range(1, rounds + 1):
        start = time.perf_counter()
        model.train_step(batch, step)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


# The computation the official StackGAN-Pytorch step does (fp32, contiguous, eager) against this
# project's options, one process, one machine: the ratio is the claim, not the absolute rate.
SPEED_VARIANTS = {
    "fp32-contiguous": ["train.channels_last=false", "train.autocast_bf16=false"],
    "channels_last": ["train.channels_last=true", "train.autocast_bf16=false"],
    "channels_last+bf16": ["train.channels_last=true", "train.autocast_bf16=true"],
}


@pytest.mark.parametrize("preset, overrides, rounds", [
    ("birds_stage1_pytorch", ["data.batch_size=64"], 5),
    ("birds_stage2_pytorch", ["train.stage1_run=null", "data.batch_size=16"], 3),
], ids=["stage1-b64", "stage2-b16"])
def test_speedup_over_the_plain_fp32_step(benchmark, preset, overrides, rounds):
    """Side by side: each variant's median step time and its speed relative to fp32 contiguous.
    bf16 autocast is measured only where the CPU (or GPU) runs bf16 natively."""
    variants = dict(SPEED_VARIANTS)
    if not torch.backends.mkldnn.is_available() or not _cpu_has_bf16():
        variants.pop("channels_last+bf16")
    seconds = {name: _median_step_seconds(load_config(preset, [*overrides, *extra]), rounds)
               for name, extra in variants.items()}
    base = seconds["fp32-contiguous"]
    b = load_config(preset, overrides).data.batch_size
    best = min(seconds, key=seconds.get)
    cfg = load_config(preset, [*overrides, *variants[best]])
    model, batch, counter = model_for_summary(cfg), synthetic_batch(cfg), iter(range(10**6))
    benchmark.pedantic(lambda: model.train_step(batch, next(counter)), rounds=1, iterations=1,
                       warmup_rounds=1)
    benchmark.extra_info.update({f"{n}.images_per_second": b / s for n, s in seconds.items()})
    benchmark.extra_info.update({f"{n}.speedup": base / s for n, s in seconds.items()})
    print(f"\n{preset} batch {b}: " + "; ".join(
        f"{n} {b / s:.2f} images/s ({base / s:.2f}x)" for n, s in seconds.items()))


def _cpu_has_bf16() -> bool:
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags
