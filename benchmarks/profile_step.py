#!/usr/bin/env python3
"""Profile one training step of ours against the plain reference step (issue 30):
the top ops by self CPU time for each, after two warm-up steps, same shapes.

    python benchmarks/profile_step.py --stage 2 --batch 16 [--top 10] [--retain] [--by-shape]

--by-shape adds the convolutions' self CPU per layer shape, ours beside the reference: where a
memory format or an ISA helps one layer and hurts another.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from step_setup import add_step_arguments, build_steps  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--by-shape", action="store_true",
                        help="also the convolutions per layer shape, ours beside the reference")
    add_step_arguments(parser)
    args = parser.parse_intermixed_args()
    batch, steps = build_steps(args)
    per_shape: dict[tuple, dict[str, tuple[float, int]]] = {}
    for name, step in steps.items():
        step(0), step(0)  # warm-up: oneDNN primitives; the heap takes two steps to settle
        with profile(activities=[ProfilerActivity.CPU], record_shapes=args.by_shape) as prof:
            step(1)
        total = sum(e.self_cpu_time_total for e in prof.key_averages()) / 1e6
        print(f"\n== {name}: Stage-{'I' * args.stage} batch {batch}, {total:.2f} s self CPU in total")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.top))
        if args.by_shape:
            for key, ms, calls in convolutions_by_shape(prof):
                per_shape.setdefault(key, {})[name] = (ms, calls)
    if args.by_shape:
        print_by_shape(per_shape, tuple(steps), args.top)
    return 0


def convolutions_by_shape(prof) -> list[tuple[tuple, float, int]]:
    """(op, output or input shape, weight shape), self CPU ms and calls of every convolution op.
    The backward's first input is the gradient of the output, the forward's the input."""
    out = []
    for e in prof.key_averages(group_by_input_shape=True):
        if e.key not in ("aten::convolution_backward", "aten::mkldnn_convolution"):
            continue
        shapes = [tuple(s) for s in e.input_shapes if s]
        op = "backward" if e.key.endswith("backward") else "forward"
        out.append(((op, shapes[0][1:] if shapes else (), shapes[-1] if shapes else ()),
                    e.self_cpu_time_total / 1e3, e.count))
    return out


def print_by_shape(per_shape: dict, names: tuple[str, ...], top: int) -> None:
    print("\n== convolutions per layer shape (backward: grad-of-output C,H,W; forward: input C,H,W)")
    heads = " ".join(f"{n + ' ms (calls)':>22s}" for n in names)
    print(f"{'op':9s} {'C, H, W':>16s} {'weight':>20s} {heads}")
    rows = sorted(per_shape.items(), key=lambda kv: -max(ms for ms, _ in kv[1].values()))
    for (op, shape, weight), by_name in rows[:2 * top]:
        timed = [by_name.get(n, (0.0, 0)) for n in names]  # a shape only one step has
        cells = " ".join(f"{ms:15.0f} ({calls:3d})" for ms, calls in timed)
        print(f"{op:9s} {str(shape):>16s} {str(weight):>20s} {cells}")


if __name__ == "__main__":
    sys.exit(main())
