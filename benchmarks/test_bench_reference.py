"""Our training step against a plain one written from the published architecture and update
(benchmarks/reference_stackgan.py), same shapes, one process, rounds alternating so that both
see the same machine state (issue 30). The ratio is the claim; it is printed with the CPU's
name and ISA. Run:
    pytest benchmarks/test_bench_reference.py -m benchmark -s
"""

import time

import pytest
import torch
from reference_stackgan import ReferenceStep, trainable

from harness.config.load import load_config
from harness.runner.summary import model_for_summary, synthetic_batch

pytestmark = pytest.mark.benchmark


def cpu_description() -> str:
    name, flags = "unknown CPU", ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name") and name == "unknown CPU":
                name = line.split(":", 1)[1].strip()
            if line.startswith("flags"):
                flags = line
                break
    except OSError:
        pass
    extras = [f for f in ("avx512_bf16", "amx_bf16", "amx_tile") if f" {f}" in flags]
    isa = f", {'+'.join(extras)}" if extras else ", no AMX/bf16"
    # The CPU's flags stay in /proc/cpuinfo under an emulated ISA: say which one oneDNN was held to.
    import os

    limit = os.environ.get("ONEDNN_MAX_CPU_ISA")
    isa += f", oneDNN held to {limit}" if limit else ""
    return f"{name}, ATen {torch.backends.cpu.get_cpu_capability()}{isa}, {torch.get_num_threads()} threads"


def side_by_side(ours_step, reference_step, rounds: int) -> tuple[list[float], list[float]]:
    """Seconds per step of each, ``rounds`` pairs; the order inside a pair alternates (ours
    first, then the reference first) so that neither always runs on the warmer machine."""
    ours_step(0)
    reference_step()  # warm-up: oneDNN primitives, allocator
    ours, reference = [], []
    for step in range(1, rounds + 1):
        for which in ((0, 1) if step % 2 else (1, 0)):
            t0 = time.perf_counter()
            ours_step(step) if which == 0 else reference_step()
            (ours if which == 0 else reference).append(time.perf_counter() - t0)
    return ours, reference


def ratio_interval(ours: list[float], reference: list[float]) -> tuple[float, float, float]:
    """The speed ratio reference/ours as the geometric mean of the paired rounds' ratios, with
    the 95 % t interval of the mean log ratio (rounds are paired: each pair saw the same machine
    state)."""
    import math

    from reports.stats import seed_summary

    logs = seed_summary([math.log(r / o) for o, r in zip(ours, reference, strict=True)])
    lo, hi = logs["ci"]
    return math.exp(logs["mean"]), math.exp(lo), math.exp(hi)


@pytest.mark.parametrize("stage, preset, batch, rounds", [
    (1, "birds_stage1_pytorch", 64, 15),
    (2, "birds_stage2_pytorch", 16, 9),
], ids=["stage1-b64", "stage2-b16"])
def test_our_step_against_the_plain_reference(benchmark, bench_overrides, stage, preset, batch, rounds):
    overrides = ([f"data.batch_size={batch}"] + (["train.stage1_run=null"] if stage == 2 else [])
                 + bench_overrides)
    cfg = load_config(preset, overrides)
    model = model_for_summary(cfg)
    data = synthetic_batch(cfg)
    reference = ReferenceStep(stage)
    ours_g = sum(p.numel() for p in model.netG.parameters() if p.requires_grad)
    assert (ours_g, trainable(model.netD)) == (trainable(reference.netG), trainable(reference.netD))
    size = next(iter(data["images"]))
    real, text = data["images"][size], data["embedding"]
    ours, ref = side_by_side(lambda step: model.train_step(data, step), lambda: reference(real, text),
                             rounds)
    ours_s, ref_s = sorted(ours)[rounds // 2], sorted(ref)[rounds // 2]
    ratio, lo, hi = ratio_interval(ours, ref)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    benchmark.extra_info.update(ours_images_per_second=batch / ours_s,
                                reference_images_per_second=batch / ref_s, ratio=ratio,
                                ratio_ci95=(lo, hi), rounds=rounds, cpu=cpu_description())
    print(f"\nStage-{'I' * stage} batch {batch} at {size} px on {cpu_description()}"
          f"{' with ' + ' '.join(bench_overrides) if bench_overrides else ''}: reference "
          f"{batch / ref_s:.2f} images/s, ours {batch / ours_s:.2f} images/s (medians of {rounds} "
          f"rounds): {ratio:.2f}x [{lo:.2f}, {hi:.2f}] (geometric mean of the paired rounds' "
          "ratios, 95 % CI)")


def _process_step_seconds(which: str, retain: bool, stage: int, steps: int, overrides: list[str]) -> float:
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parent / "step_process.py"
    out = subprocess.run([sys.executable, str(script), which, "--stage", str(stage), "--steps",
                          str(steps), *(["--retain"] if retain else []), *overrides],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["seconds"]


@pytest.mark.parametrize("stage, rounds, steps", [(1, 5, 5), (2, 3, 3)], ids=["stage1-b64", "stage2-b16"])
def test_our_training_process_against_the_reference_process(benchmark, bench_overrides, bench_rounds,
                                                           stage, rounds, steps):
    """The same comparison between processes, each timing its steps after a warm-up step: the
    reference as its code runs (glibc's default allocator), ours with and without
    ``train.retain_freed_memory`` (process-wide, so it cannot be switched within one process).
    Each round runs the three once, in an order that rotates from round to round."""
    kinds = {"reference": ("reference", False), "ours, default allocator": ("ours", False),
             "ours, retained memory": ("ours", True)}
    rounds = rounds if bench_rounds is None else bench_rounds
    times: dict[str, list[float]] = {k: [] for k in kinds}
    order = list(kinds)
    for r in range(rounds):
        for name in order[r % 3:] + order[:r % 3]:
            times[name].append(_process_step_seconds(*kinds[name], stage, steps, bench_overrides))
    batch = 64 if stage == 1 else 16
    lines = []
    default, retained = "ours, default allocator", "ours, retained memory"
    for a, b in (("reference", default), (default, retained), ("reference", retained)):
        ratio, lo, hi = ratio_interval(times[b], times[a])
        benchmark.extra_info[f"{b} / {a}"] = (ratio, lo, hi)
        lines.append(f"  {b} against {a}: {ratio:.2f}x [{lo:.2f}, {hi:.2f}]")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    medians = {k: sorted(v)[rounds // 2] for k, v in times.items()}
    benchmark.extra_info.update(images_per_second={k: batch / v for k, v in medians.items()},
                                rounds=rounds, cpu=cpu_description())
    print(f"\nStage-{'I' * stage} batch {batch}, one process each, on {cpu_description()}: "
          + ", ".join(f"{k} {batch / v:.2f} images/s" for k, v in medians.items())
          + f" (medians of {rounds} rounds); ratios (geometric mean over rounds, 95 % CI):\n"
          + "\n".join(lines))
