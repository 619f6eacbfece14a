"""``stackgan-bench gate``: the regression gate. Runs the smoke experiment (reproduce --preset
smoke, without the report and the human study) at its fixed seed in a fresh folder and a fresh
process, and compares every loss curve, metric and generated image with the committed baseline.

The verdict depends on the code, not on the machine. Two CPUs do not compute the same float32
bits (their BLAS, oneDNN and vectorised kernels differ), and GAN training amplifies a last-bit
difference to percents within a few steps. So the smoke experiment runs in float64
(:mod:`harness.reproduce.numerics`), where kernel differences start near 1e-16, and each value
is compared by the rule of its group, whatever machine recorded the baseline:

- ``data``: the dataset's fingerprint (numpy and PIL rendering), exact.
- ``training``: losses, D outputs and KL at every logged step, the evaluation models' metrics:
  within ``TRAINING_RTOL`` relative (``TRAINING_ATOL`` absolute, for values that are zero by
  cancellation, such as an IS spread of 1e-12).
- ``metrics``: the evaluation metrics (IS, IS*, FID, KID, R-precision, attribute accuracy), which
  are computed from 8-bit images: within ``METRICS_RTOL`` (``METRICS_ATOL``). A float64 difference
  of 1e-7 still rounds a few pixels to the next 8-bit level, and FID/KID at the smoke's 48 images
  move by up to 2e-4 relative when they do.
- ``pixels``: per generated image, the mean of each colour channel in each quarter of the image,
  within ``PIXELS_ATOL`` 8-bit levels.

Or within ``SPREAD_FACTOR`` times the value's *measured spread*, where that is more: ``gate
--update`` runs the experiment a second time under other kernels (``SPREAD_VARIANT``: MKL's
COMPATIBLE branch, OpenBLAS's Zen kernels) and stores how far each value moved. Most move by
less than 1e-8; but a few 128/256-px runs move by up to 1.5 % at their third or fourth step, and
to nearly the same values under every other kernel tried (ATen's AVX2 and AVX-512 kernels agree
with MKL's COMPATIBLE branch to 1e-6 there): a last-bit difference there switches the training
to another discrete branch (as when an activation sits exactly at a kink; not traced further),
rather than growing smoothly. A curve value's spread is its run's largest relative move at its
step or before. Measured with
scripts/gate-portability (README "Regression gate"): the held-out kernel variants stay within
0.1 of the allowance in training and 0.2 in pixels, while a learning rate 1.00001 times larger
(90 times the allowance) or a KL weight of 1.9999 instead of 2 (10 times) in one run fails; a KL
weight of 1.99999 does not.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from harness.atomic import write_text_atomic
from harness.errors import UserError
from harness.reproduce.numerics import KERNEL_VARIANTS

BASELINE = Path(__file__).resolve().parent / "gate_baseline.json"
RESULT_NAME = "gate-result.json"  # what the worker (python -m harness.reproduce.gate_worker) writes
CURVE_KEYS = ("loss_d", "loss_g", "kl", "d_real", "d_fake", "d_wrong")
TIMING_WORDS = ("seconds", "per_s", "time")  # wall-clock values are not results
UPSTREAM = ("text-encoder", "text-encoder-eval", "classifier", "attributes", "ceiling", "data")
FORMAT = "stackgan-bench/gate-baseline/4"  # /4: the measured spread
PIXELS_KEY = "eval.pixels"
# About 10 times what other kernels moved the values that do not switch branch (scripts/gate-
# portability, measured before the text embeddings were rescaled: 4.3e-7 relative in training,
# 7.2e-5 in metrics, 0.0105 levels in pixels); the values that do get their measured spread.
TRAINING_RTOL, TRAINING_ATOL = 5e-6, 1e-9
METRICS_RTOL, METRICS_ATOL = 1e-3, 1e-6
PIXELS_ATOL = 0.1  # 8-bit levels
# The spread run, recorded with the baseline: the same experiment under MKL's cross-vendor
# COMPATIBLE branch and OpenBLAS's Zen kernels, kernels other machines differ from these by.
SPREAD_VARIANT = "mkl-compatible+openblas-zen"
SPREAD_FACTOR = 10


@dataclass(frozen=True)
class Rule:
    group: str
    rtol: float
    atol: float
    what: str

    @property
    def text(self) -> str:
        if self.rtol == self.atol == 0:
            return "exact"
        if self.rtol == 0:
            return f"within {self.atol:g} levels"
        return f"within rtol {self.rtol:g} + atol {self.atol:g}"

    def allowance(self, baseline: float) -> float:
        return self.atol + self.rtol * abs(baseline)


RULES = {
    "data": Rule("data", 0.0, 0.0, "the dataset's fingerprint"),
    "training": Rule("training", TRAINING_RTOL, TRAINING_ATOL,
                     "losses, D outputs and KL at every step; the evaluation models' metrics"),
    "metrics": Rule("metrics", METRICS_RTOL, METRICS_ATOL,
                    "evaluation metrics, computed from the 8-bit images"),
    "pixels": Rule("pixels", 0.0, PIXELS_ATOL,
                   "per image, the mean of each channel in each quarter of the image"),
}


def value_group(key: str) -> str:
    name = key.rsplit("/", 1)[-1]
    if key == "data/fingerprint":
        return "data"
    if name == PIXELS_KEY:
        return "pixels"
    if name.startswith("eval."):
        return "metrics"
    return "training"


def _numbers(obj: dict) -> dict[str, float]:
    return {k: float(v) for k, v in obj.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
            and not any(w in k for w in TIMING_WORDS)}


def pixel_signature(images: list[Path]) -> list[float]:
    """Per image (in file-name order): the mean of each channel in each quarter of the image,
    in 8-bit levels (12 values an image). A pixel that rounds to the next level moves its
    quarter's mean by 1/(pixels in the quarter); a changed image moves it by whole levels."""
    values = []
    for path in images:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGB"), dtype=np.float64)
        h, w = arr.shape[0] // 2, arr.shape[1] // 2
        for rows in (slice(0, h), slice(h, None)):
            for cols in (slice(0, w), slice(w, None)):
                values += arr[rows, cols].mean(axis=(0, 1)).tolist()
    return values


def snapshot(root: Path) -> dict[str, float | str | list[float]]:
    """Every value the gate compares, flattened to ``run/what/step -> value``. Folders that
    reproduce moved aside (``*.replaced-*``) are not part of the experiment."""
    values: dict = {}
    runs = sorted(p for p in root.iterdir() if (p / "metrics.jsonl").exists() and ".replaced-" not in p.name)
    for run_dir in runs:
        for line in (run_dir / "metrics.jsonl").read_text().splitlines():
            rec = json.loads(line)
            for k in CURVE_KEYS:
                if k in rec:
                    values[f"{run_dir.name}/{k}/{rec['step']}"] = float(rec[k])
    for run_dir in [*runs, root / "ceiling"]:
        ev = run_dir / "eval.json"
        if ev.exists():
            result = json.loads(ev.read_text())
            for k, v in result["values"].items():
                if v is not None:
                    values[f"{run_dir.name}/eval.{k}"] = float(v)
            if result.get("samples"):  # the generated images the metrics are computed on
                images = sorted((run_dir / result["samples"] / "images").glob("*.png"))
                values[f"{run_dir.name}/{PIXELS_KEY}"] = pixel_signature(images)
    for name in ("text-encoder", "text-encoder-eval", "classifier", "attributes"):
        metrics = root / name / "metrics.json"
        if metrics.exists():
            values.update({f"{name}/{k}": v for k, v in _numbers(json.loads(metrics.read_text())).items()})
    return values


def _curve_key(key: str) -> tuple[str, int] | None:
    """(run, step) of a loss-curve value ``run/what/step``; None for any other value."""
    parts = key.split("/")
    if len(parts) == 3 and parts[1] in CURVE_KEYS and parts[2].isdigit():
        return parts[0], int(parts[2])
    return None


def measured_spread(first: dict, second: dict) -> dict[str, float]:
    """How far other kernels move each value of the same code: the differences between the
    baseline run and the spread run. A curve value gets its run's largest relative difference
    over every curve value at its step or before, times its size: in a few runs a last-bit
    difference switches training to another branch (measured: up to 1.5 % by the fourth step of
    some 128/256-px runs, nearly the same values under ATen's AVX2 kernels as under MKL's
    COMPATIBLE branch), and every value of that run from that step on can follow, so the spread is
    read per run and step rather than trusted value by value."""
    spread: dict[str, float] = {}
    relative: dict[tuple[str, int], float] = {}
    for key in sorted(set(first) & set(second)):
        a, b = first[key], second[key]
        if isinstance(a, str) or isinstance(b, str):
            continue
        diff = _difference(a, b)
        if not math.isfinite(diff):
            continue
        spread[key] = diff
        where = _curve_key(key)
        if where is not None and a != 0:
            relative[where] = max(relative.get(where, 0.0), diff / abs(a))
    for key in spread:
        where = _curve_key(key)
        if where is not None:
            run, step = where
            rel = max((r for (name, s), r in relative.items() if name == run and s <= step), default=0.0)
            spread[key] = max(spread[key], rel * abs(first[key]))
    return {k: v for k, v in spread.items() if v > 0}


@dataclass
class GroupCount:
    rule: Rule
    values: int = 0
    largest: float = 0.0  # the largest difference, as a fraction of what the rule allows
    largest_key: str = ""
    widened: int = 0  # values allowed their measured spread, being more than the rule's

    def line(self) -> str:
        seen = (f"; largest difference {self.largest:.2g} of the allowance ({self.largest_key})"
                if self.largest_key else "; every value identical")
        wider = (f" ({self.widened} of them: {SPREAD_FACTOR}x their measured spread, more than that)"
                 if self.widened else "")
        return (f"{self.rule.group} values ({self.values}): {self.rule.text}{wider} — "
                f"{self.rule.what}{seen}")


@dataclass
class GateResult:
    passed: bool
    comparable: bool
    moved: list[tuple[str, object, object]]
    compared: int
    groups: list[GroupCount] = field(default_factory=list)
    reason: str = ""  # why the values could not be compared

    @property
    def platform_note(self) -> str:
        lines = [self.reason] if self.reason else []
        return "\n".join(lines + [g.line() for g in self.groups])


def _release(version: str) -> str:
    return str(version).split("+", 1)[0]


def comparability(baseline_platform: dict, here: dict) -> str:
    """Why values computed on ``here`` cannot be compared with the baseline's ('' when they
    can). Another torch release may draw other random numbers or change an operator: that is a
    change of code, not of machine, so it needs a baseline of its own."""
    base, now = baseline_platform.get("torch", {}), here.get("torch", {})
    problems = []
    if _release(base.get("torch", "?")) != _release(now.get("torch", "?")):
        problems.append(f"torch {base.get('torch')!r} vs {now.get('torch')!r}")
    if base.get("dtype") != now.get("dtype"):
        problems.append(f"dtype {base.get('dtype')!r} vs {now.get('dtype')!r}")
    if not problems:
        return ""
    return ("not comparable with the baseline: " + ", ".join(problems) + "; record a baseline for "
            "it with `stackgan-bench gate --update --baseline FILE` on code you trust")


def _difference(a, b) -> float:
    """|a - b|, the largest element difference for lists; inf where they cannot be compared."""
    if isinstance(a, list) or isinstance(b, list):
        if not (isinstance(a, list) and isinstance(b, list)) or len(a) != len(b):
            return math.inf
        return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0)
    if isinstance(a, str) or isinstance(b, str):
        return 0.0 if a == b else math.inf
    if math.isnan(a) and math.isnan(b):
        return 0.0
    return abs(a - b) if not (math.isnan(a) or math.isnan(b)) else math.inf


def compare(current: dict, baseline: dict, here: dict, runs: list[str] | None = None) -> GateResult:
    """``current``/``baseline`` values with the platform ``here`` they were computed on.
    ``runs``: compare only these runs' values (and the shared upstream ones')."""
    reason = comparability(baseline.get("platform", {}), here)
    base = baseline["values"]
    spread = baseline.get("spread", {})
    if runs is not None:
        keep = {*runs, *UPSTREAM}
        base = {k: v for k, v in base.items() if k.split("/")[0] in keep}
        current = {k: v for k, v in current.items() if k.split("/")[0] in keep}
    groups = {name: GroupCount(rule) for name, rule in RULES.items()}
    moved = []
    for key in sorted(set(base) | set(current)):
        count = groups[value_group(key)]
        count.values += 1
        a, b = base.get(key), current.get(key)
        if a is None or b is None:  # a value gone or new is a change, whatever the rule
            moved.append((key, a, b))
            continue
        if reason:
            continue
        diff = _difference(a, b)
        scale = max(map(abs, a)) if isinstance(a, list) and a else a if isinstance(a, float) else 0.0
        allowed = count.rule.allowance(scale)
        if SPREAD_FACTOR * spread.get(key, 0.0) > allowed:
            allowed = SPREAD_FACTOR * spread[key]
            count.widened += 1
        share = diff / allowed if allowed > 0 else (0.0 if diff == 0 else math.inf)
        if diff > 0 and share >= count.largest:
            count.largest, count.largest_key = share, key
        if diff > allowed:
            moved.append((key, a, b))
    comparable = not reason
    return GateResult(comparable and not moved, comparable, moved, len(base),
                      [g for g in groups.values() if g.values], reason)


def format_moved(result: GateResult, limit: int = 40) -> str:
    lines = [f"{'value':52s} {'baseline':>14s} {'now':>14s} {'change':>12s}"]

    def show(v) -> str:
        if v is None:
            return "missing"
        if isinstance(v, list):
            return f"{len(v)} values"
        return v[:12] if isinstance(v, str) else f"{v:.6g}"

    for key, a, b in result.moved[:limit]:
        if isinstance(a, list) and isinstance(b, list):
            change = f"max {_difference(a, b):.3g} lv" if len(a) == len(b) else "other count"
        elif isinstance(a, float) and isinstance(b, float) and a != 0:
            change = f"{(b - a) / abs(a):+.2%}"
        else:
            change = ""
        lines.append(f"{key:52s} {show(a):>14s} {show(b):>14s} {change:>12s}")
    if len(result.moved) > limit:
        lines.append(f"... and {len(result.moved) - limit} more")
    return "\n".join(lines)


def run_smoke(workdir: str | os.PathLike, extra: list[str] | None = None,
              only_runs: list[str] | None = None, human: bool = False, report: bool = False,
              env: dict[str, str] | None = None, progress: bool = False) -> dict:
    """Run (or continue) the smoke experiment in ``workdir`` in a fresh process under portable
    numerics; returns what the worker wrote (values, platform keys, steps run)."""
    from harness.reproduce.numerics import portable_environment

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    child_env = portable_environment()
    child_env.pop("MLFLOW_TRACKING_URI", None)  # a private MLflow store: runs/mlflow.db
    child_env["XDG_CACHE_HOME"] = str(workdir / "cache")  # private feature caches
    child_env.update(env or {})
    cmd = [sys.executable, "-m", "harness.reproduce.gate_worker", str(workdir)]
    cmd += [f"--set={e}" for e in extra or []]
    if only_runs:
        cmd += ["--runs", *only_runs]
    cmd += ["--human"] * human + ["--report"] * report + ["--progress"] * progress
    (workdir / RESULT_NAME).unlink(missing_ok=True)
    done = subprocess.run(cmd, env=child_env, text=True,
                          capture_output=not progress, cwd=Path(__file__).resolve().parents[2])
    if done.returncode != 0:
        tail = "\n".join((done.stderr or "").strip().splitlines()[-15:])
        raise UserError(f"the gate's smoke experiment failed in {workdir} (exit {done.returncode})"
                        + (f":\n{tail}" if tail else ""))
    return json.loads((workdir / RESULT_NAME).read_text())


def record_baseline(path: str | os.PathLike, result: dict, spread: dict[str, float] | None = None) -> None:
    """``result``: what the smoke experiment wrote; ``spread``: its values' measured spread
    (:func:`measured_spread` against the spread run; empty when not measured)."""
    rules = {name: {"rtol": r.rtol, "atol": r.atol} for name, r in RULES.items()}
    write_text_atomic(path, json.dumps({
        "format": FORMAT, "platform": result["platform"], "rules": rules,
        "spread_run": {"variant": SPREAD_VARIANT, "env": KERNEL_VARIANTS[SPREAD_VARIANT],
                       "factor": SPREAD_FACTOR},
        "spread": spread or {}, "values": result["values"]}, indent=1, sort_keys=True) + "\n")


def load_baseline(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        recorded = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no baseline yet; record one with `stackgan-bench gate --update`") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not a gate baseline (invalid JSON: {exc})") from None
    if not isinstance(recorded, dict) or recorded.get("format") != FORMAT:
        raise UserError(f"{path}: not a gate baseline in format {FORMAT}; record one with "
                        "`stackgan-bench gate --update`")
    return recorded


def run_gate(baseline: str | Path = BASELINE, update: bool = False, extra: list[str] | None = None,
             workdir: str | Path | None = None, progress: bool = False,
             only_runs: list[str] | None = None) -> GateResult | None:
    """Run the smoke experiment and compare it with ``baseline`` (or record it with ``update``).
    ``only_runs`` gates a subset of the runs (with the Stage-I runs they need); ``workdir``
    continues a smoke experiment in that folder instead of a fresh temporary one."""
    if update and only_runs:
        raise UserError("--update records the whole smoke experiment; drop the run selection")
    if not update:
        recorded = load_baseline(baseline)  # fail before minutes of work
    with tempfile.TemporaryDirectory(prefix="stackgan-gate-") as tmp:
        result = run_smoke(workdir or tmp, extra, only_runs, progress=progress)
        if update:  # the same experiment under other kernels: how far they move each value
            other = run_smoke(Path(tmp) / "spread", extra, env=KERNEL_VARIANTS[SPREAD_VARIANT],
                              progress=progress)
    if update:
        record_baseline(baseline, result, measured_spread(result["values"], other["values"]))
        return None
    return compare(result["values"], recorded, result["platform"],
                   runs=result["runs"] if only_runs else None)
