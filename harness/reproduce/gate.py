"""``stackgan-bench gate``: the regression gate. Runs the smoke experiment (reproduce --preset
smoke, without the report and the human study) at its fixed seed in a fresh folder, and compares
every loss curve and metric with the committed baseline.

On the platform the baseline was recorded on (same torch, CPU, threads), the runs are
deterministic and the comparison is exact. Elsewhere, floating-point kernels may differ in the
last bits, so values must agree within the baseline's stated tolerance (relative, default 1e-3,
far below what a changed loss or hyperparameter moves).
"""

from __future__ import annotations

import json
import math
import os
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.atomic import write_text_atomic
from harness.reproduce.pipeline import Pipeline, ReproduceOptions

BASELINE = Path(__file__).resolve().parents[2] / "gate" / "baseline.json"
CURVE_KEYS = ("loss_d", "loss_g", "kl", "d_real", "d_fake", "d_wrong")
TIMING_WORDS = ("seconds", "per_s", "time")  # wall-clock values are not results
DEFAULT_RTOL = 1e-3


def platform_key() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"torch": torch.__version__, "cpu": cpu, "threads": torch.get_num_threads(),
            "python": platform.python_version()}


def snapshot(root: Path) -> dict[str, float]:
    """Every value the gate compares, flattened to ``run/what/step -> value``."""
    values: dict[str, float] = {}
    for run_dir in sorted(p for p in root.iterdir() if (p / "metrics.jsonl").exists()):
        for line in (run_dir / "metrics.jsonl").read_text().splitlines():
            rec = json.loads(line)
            for k in CURVE_KEYS:
                if k in rec:
                    values[f"{run_dir.name}/{k}/{rec['step']}"] = float(rec[k])
        ev = run_dir / "eval.json"
        if ev.exists():
            for k, v in json.loads(ev.read_text())["values"].items():
                if v is not None:
                    values[f"{run_dir.name}/eval.{k}"] = float(v)
    for name in ("text-encoder", "text-encoder-eval", "classifier", "attributes"):
        metrics = root / name / "metrics.json"
        if metrics.exists():
            for k, v in json.loads(metrics.read_text()).items():
                if isinstance(v, int | float) and not isinstance(v, bool) \
                        and not any(w in k for w in TIMING_WORDS):
                    values[f"{name}/{k}"] = float(v)
    ceiling = root / "ceiling" / "eval.json"
    if ceiling.exists():
        for k, v in json.loads(ceiling.read_text())["values"].items():
            if v is not None:
                values[f"ceiling/eval.{k}"] = float(v)
    return values


@dataclass
class GateResult:
    passed: bool
    exact: bool
    rtol: float
    moved: list[tuple[str, float | None, float | None]]
    compared: int
    platform_note: str


def compare(current: dict[str, float], baseline: dict, here: dict | None = None,
            runs: list[str] | None = None) -> GateResult:
    """``runs``: compare only these runs' values (and the shared upstream models')."""
    here = here or platform_key()
    exact = baseline.get("platform") == here
    rtol = 0.0 if exact else float(baseline.get("rtol", DEFAULT_RTOL))
    base = baseline["values"]
    if runs is not None:
        keep = {*runs, "text-encoder", "text-encoder-eval", "classifier", "attributes", "ceiling"}
        base = {k: v for k, v in base.items() if k.split("/")[0] in keep}
    moved = []
    for key in sorted(set(base) | set(current)):
        a, b = base.get(key), current.get(key)
        if a is None or b is None:
            moved.append((key, a, b))
            continue
        if math.isnan(a) and math.isnan(b):
            continue
        if not (a == b or (rtol and math.isclose(a, b, rel_tol=rtol, abs_tol=rtol * 1e-3))):
            moved.append((key, a, b))
    note = ("same platform as the baseline: exact comparison" if exact else
            f"platform differs from the baseline's ({baseline.get('platform')} vs {here}): "
            f"relative tolerance {rtol:g}")
    return GateResult(not moved, exact, rtol, moved, len(base), note)


def format_moved(result: GateResult, limit: int = 40) -> str:
    lines = [f"{'value':52s} {'baseline':>14s} {'now':>14s} {'change':>10s}"]
    for key, a, b in result.moved[:limit]:
        change = "" if a is None or b is None or a == 0 else f"{(b - a) / abs(a):+.2%}"
        lines.append(f"{key:52s} {('missing' if a is None else f'{a:.6g}'):>14s} "
                     f"{('missing' if b is None else f'{b:.6g}'):>14s} {change:>10s}")
    if len(result.moved) > limit:
        lines.append(f"... and {len(result.moved) - limit} more")
    return "\n".join(lines)


def run_gate(baseline: str | Path = BASELINE, update: bool = False, extra: list[str] | None = None,
             workdir: str | Path | None = None, progress: bool = False,
             only_runs: list[str] | None = None) -> GateResult | None:
    """Run the smoke experiment and compare it with ``baseline`` (or record it with ``update``).
    ``only_runs`` gates a subset of the runs (with the Stage-I runs they need)."""
    if update and only_runs:
        from harness.errors import UserError

        raise UserError("--update records the whole smoke experiment; drop the run selection")
    with tempfile.TemporaryDirectory(prefix="stackgan-gate-") as tmp:
        root = Path(workdir or tmp)
        # A private MLflow store and caches: the gate must not read or write the user's.
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        pipe = Pipeline(ReproduceOptions(preset="smoke", runs_root=str(root / "runs"),
                                         extra=list(extra or []), progress=progress,
                                         report=False, human=False, only_runs=only_runs))
        pipe.data_root = root / "data" / "synthbirds-smoke"
        pipe.log.say = (lambda text: None) if not progress else print
        planned = pipe.run_and_plan()
        current = snapshot(root / "runs")
    names = [p.name for p in planned if not p.skipped] if only_runs else None
    baseline = Path(baseline)
    if update:
        write_text_atomic(baseline, json.dumps({"platform": platform_key(), "rtol": DEFAULT_RTOL,
                                                "values": current}, indent=1, sort_keys=True))
        return None
    try:
        recorded = json.loads(baseline.read_text())
    except FileNotFoundError:
        from harness.errors import UserError

        raise UserError(f"{baseline}: no baseline yet; record one with "
                        "`stackgan-bench gate --update`") from None
    return compare(current, recorded, runs=names)
