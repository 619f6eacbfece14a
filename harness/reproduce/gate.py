"""``stackgan-bench gate``: the regression gate. Runs the smoke experiment (reproduce --preset
smoke, without the report and the human study) at its fixed seed in a fresh folder and a fresh
process, and compares every loss curve and metric with the committed baseline.

The smoke experiment runs under portable numerics (:mod:`harness.reproduce.numerics`), so its
torch computations give the same bits on every x86-64 machine with the same torch; caches go
to the gate's own folder, never the user's. Each value belongs to one group, compared by one
rule that the gate prints:

- ``torch`` (training curves, the evaluation models, IS, IS*, R-precision, attribute accuracy,
  a digest of every evaluated image's pixels) and the dataset's fingerprint: **exact** when the
  torch key (torch version, kernels, threads) equals the baseline's; otherwise not comparable
  (record a baseline for that torch first).
- ``numpy`` (FID, KID: numpy/scipy over BLAS and LAPACK): exact when the BLAS key (numpy/scipy
  versions, numpy's SIMD targets, each BLAS library and its kernel) equals the baseline's,
  otherwise within ``NUMPY_RTOL`` relative (``NUMPY_ATOL`` absolute near zero). Measured:
  another OpenBLAS kernel or numpy without its AVX-512 targets moves these values by at most
  ~1e-6 relative. A real change at smoke scale (4 training steps) can move them by as little
  (a KL weight of 1 instead of 2: FID 4.9e-6, KID 9.4e-6 relative), which is why their inputs,
  the generated pixels, are compared exactly by digest: the tolerance only covers arithmetic.
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

from harness.atomic import write_text_atomic
from harness.errors import UserError

BASELINE = Path(__file__).resolve().parents[2] / "gate" / "baseline.json"
CURVE_KEYS = ("loss_d", "loss_g", "kl", "d_real", "d_fake", "d_wrong")
TIMING_WORDS = ("seconds", "per_s", "time")  # wall-clock values are not results
UPSTREAM = ("text-encoder", "text-encoder-eval", "classifier", "attributes", "ceiling", "data")
# Metrics computed by numpy/scipy on top of BLAS/LAPACK (torch-fidelity's FID and KID).
NUMPY_METRICS = ("eval.fid", "eval.kid_mean", "eval.kid_std")
NUMPY_RTOL = 1e-5
# An absolute floor for values near zero by cancellation (the real test set's FID against
# itself, KID of close sets), whose BLAS rounding scales with their terms, not with the result:
# measured 4.6e-8 on the smoke ceiling's FID under another OpenBLAS kernel.
NUMPY_ATOL = 1e-6
FORMAT = "stackgan-bench/gate-baseline/2"


def value_group(key: str) -> str:
    return "numpy" if key.rsplit("/", 1)[-1] in NUMPY_METRICS else "torch"


def _numbers(obj: dict) -> dict[str, float]:
    return {k: float(v) for k, v in obj.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
            and not any(w in k for w in TIMING_WORDS)}


def snapshot(root: Path) -> dict[str, float | str]:
    """Every value the gate compares, flattened to ``run/what/step -> value``. Folders that
    reproduce moved aside (``*.replaced-*``) are not part of the experiment."""
    values: dict[str, float] = {}
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
            if result.get("samples_sha256"):  # the generated pixels FID and KID are computed on
                values[f"{run_dir.name}/eval.samples_sha256"] = result["samples_sha256"]
    for name in ("text-encoder", "text-encoder-eval", "classifier", "attributes"):
        metrics = root / name / "metrics.json"
        if metrics.exists():
            values.update({f"{name}/{k}": v for k, v in _numbers(json.loads(metrics.read_text())).items()})
    return values


@dataclass
class GroupRule:
    group: str
    rule: str  # "exact", "within rtol … / atol …" or "not comparable"
    reason: str
    rtol: float = 0.0
    values: int = 0


@dataclass
class GateResult:
    passed: bool
    comparable: bool
    moved: list[tuple[str, object, object]]
    compared: int
    rules: list[GroupRule] = field(default_factory=list)

    @property
    def platform_note(self) -> str:
        return "\n".join(f"{r.group} values ({r.values}): {r.rule} — {r.reason}" for r in self.rules)


def _differences(a: dict, b: dict) -> str:
    keys = sorted(set(a) | set(b))
    return ", ".join(f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in keys if a.get(k) != b.get(k))


def rules_for(baseline_platform: dict, here: dict) -> dict[str, GroupRule]:
    base_torch, here_torch = baseline_platform.get("torch", {}), here.get("torch", {})
    if base_torch == here_torch:
        torch_rule = GroupRule("torch", "exact", "same torch key as the baseline "
                               f"(torch {here_torch.get('torch')}, ATen {here_torch.get('aten_capability')}"
                               f" kernels, MKL CNR {here_torch.get('mkl_cbwr')}, oneDNN off, "
                               f"{here_torch.get('threads')} threads)")
    else:
        torch_rule = GroupRule("torch", "not comparable", "torch key differs from the baseline's: "
                               + _differences(base_torch, here_torch) + "; record a baseline for it "
                               "with `stackgan-bench gate --update --baseline FILE` on code you trust")
    base_blas, here_blas = baseline_platform.get("blas", {}), here.get("blas", {})
    if base_blas == here_blas:
        numpy_rule = GroupRule("numpy", "exact", "same numpy/scipy/BLAS key as the baseline")
    else:
        numpy_rule = GroupRule("numpy", f"within rtol {NUMPY_RTOL:g} / atol {NUMPY_ATOL:g}",
                               "BLAS key differs from the baseline's: " + _differences(base_blas, here_blas),
                               rtol=NUMPY_RTOL)
    return {"torch": torch_rule, "numpy": numpy_rule}


def _same(a, b, rtol: float) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if math.isnan(a) and math.isnan(b):
        return True
    return a == b or (rtol > 0 and math.isclose(a, b, rel_tol=rtol, abs_tol=NUMPY_ATOL))


def compare(current: dict, baseline: dict, here: dict, runs: list[str] | None = None) -> GateResult:
    """``current``/``baseline`` values with the platform ``here`` they were computed on.
    ``runs``: compare only these runs' values (and the shared upstream ones')."""
    rules = rules_for(baseline.get("platform", {}), here)
    base = baseline["values"]
    if runs is not None:
        keep = {*runs, *UPSTREAM}
        base = {k: v for k, v in base.items() if k.split("/")[0] in keep}
        current = {k: v for k, v in current.items() if k.split("/")[0] in keep}
    moved = []
    for key in sorted(set(base) | set(current)):
        rule = rules[value_group(key)]
        rule.values += 1
        a, b = base.get(key), current.get(key)
        if a is None or b is None:  # a value gone or new is a change, whatever the rule
            moved.append((key, a, b))
        elif rule.rule != "not comparable" and not _same(a, b, rule.rtol):
            moved.append((key, a, b))
    comparable = rules["torch"].rule != "not comparable"
    return GateResult(comparable and not moved, comparable, moved, len(base), list(rules.values()))


def format_moved(result: GateResult, limit: int = 40) -> str:
    lines = [f"{'value':52s} {'baseline':>14s} {'now':>14s} {'change':>10s}"]

    def show(v) -> str:
        return "missing" if v is None else v[:12] if isinstance(v, str) else f"{v:.6g}"

    for key, a, b in result.moved[:limit]:
        numeric = isinstance(a, float) and isinstance(b, float) and a != 0
        change = f"{(b - a) / abs(a):+.2%}" if numeric else ""
        lines.append(f"{key:52s} {show(a):>14s} {show(b):>14s} {change:>10s}")
    if len(result.moved) > limit:
        lines.append(f"... and {len(result.moved) - limit} more")
    return "\n".join(lines)


def run_smoke(workdir: str | os.PathLike, extra: list[str] | None = None,
              only_runs: list[str] | None = None, human: bool = False, report: bool = False,
              env: dict[str, str] | None = None, progress: bool = False) -> dict:
    """Run (or continue) the smoke experiment in ``workdir`` in a fresh process under portable
    numerics; returns what the worker wrote (values, platform keys, steps run)."""
    from harness.reproduce.gate_worker import RESULT_NAME
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


def record_baseline(path: str | os.PathLike, result: dict) -> None:
    write_text_atomic(path, json.dumps({"format": FORMAT, "platform": result["platform"],
                                        "numpy_rtol": NUMPY_RTOL,
                                        "numpy_atol": NUMPY_ATOL, "values": result["values"]},
                                       indent=1, sort_keys=True) + "\n")


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
    if update:
        record_baseline(baseline, result)
        return None
    return compare(result["values"], recorded, result["platform"],
                   runs=result["runs"] if only_runs else None)
