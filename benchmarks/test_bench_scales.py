"""A scale's training steps in fp32 against bf16 autocast, side by side in one process (rounds
alternating), one row per distinct network shape, at one thread as the local executor's
workers run them on 2 cores (issue 30: which scales use bf16, and why). Prints ms per step, the
ratio, and the scale's training budget (steps x time per step, summed over its runs and seeds)
in both, with the CPU's name and ISA. Run:
    pytest benchmarks/test_bench_scales.py -m benchmark -s [-k claims]
"""

import time

import pytest
import torch
from test_bench_reference import cpu_description

from harness.config.load import load_config
from harness.experiments.plan import plan_runs
from harness.experiments.spec import load_experiment, load_scales, merge_runs
from harness.runner.summary import model_for_summary, synthetic_batch

pytestmark = pytest.mark.benchmark


def scale_rows(scale_name: str) -> dict[str, tuple[str, list[str], int]]:
    """Per run id trained at the scale: its preset, its overrides (Stage-II on a fresh Stage-I)
    and its step budget."""
    scale = load_scales()[scale_name]
    runs = merge_runs([load_experiment("table1"), load_experiment("table2")])
    rows = {}
    for p in plan_runs(runs, scale, "runs/bench", seeds=(scale.seeds[0],)):
        if p.config is None:
            continue
        overrides = [o for o in p.overrides if not o.startswith(("train.stage1_run=", "data.root="))]
        if p.config.model.stage == 2 and p.config.family == "stackgan":
            overrides.append("train.stage1_run=null")
        rows[p.spec.id] = (p.preset, overrides, p.config.train.max_steps or 0)
    return rows


def step_times(preset: str, overrides: list[str], rounds: int) -> dict[str, float]:
    steps = {}
    for name, extra in (("fp32", []), ("bf16", ["train.autocast_bf16=true"])):
        cfg = load_config(preset, [*overrides, *extra])
        model, batch = model_for_summary(cfg), synthetic_batch(cfg)
        counter = iter(range(10**6))
        steps[name] = lambda m=model, b=batch, c=counter: m.train_step(b, next(c))
    for step in steps.values():  # warm-up: oneDNN primitives, allocator
        step()
        step()
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: sorted(t)[len(t) // 2] for name, t in times.items()}


@pytest.mark.parametrize("scale_name", ["quick", "claims"])
def test_scale_steps_in_fp32_and_bf16(benchmark, scale_name):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cpu = cpu_description()
    try:
        rows, seen = scale_rows(scale_name), {}
        seeds = len(load_scales()[scale_name].seeds)
        lines, budget = [], {"fp32": 0.0, "bf16": 0.0}
        for run_id, (preset, overrides, max_steps) in rows.items():
            shape = (preset, tuple(o for o in overrides if not o.startswith("train.max_steps")))
            if shape not in seen:
                seen[shape] = step_times(preset, overrides, rounds=9)
            t = seen[shape]
            for name in budget:
                budget[name] += t[name] * max_steps * seeds
            lines.append(f"  {run_id:18s} {max_steps:5d} steps  fp32 {t['fp32'] * 1e3:6.0f} ms  "
                         f"bf16 {t['bf16'] * 1e3:6.0f} ms  {t['fp32'] / t['bf16']:.2f}x")
    finally:
        torch.set_num_threads(threads)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    benchmark.extra_info.update(cpu=cpu, budget_fp32_s=budget["fp32"],
                                budget_bf16_s=budget["bf16"])
    print(f"\n{scale_name} scale, one thread per run, on {cpu}:\n" + "\n".join(lines)
          + f"\n  training steps of all runs x {seeds} seed(s): fp32 {budget['fp32'] / 60:.0f} min, "
          f"bf16 {budget['bf16'] / 60:.0f} min ({budget['fp32'] / budget['bf16']:.2f}x; "
          f"one core each: divide by the workers)")
