"""``--executor local``: the planned runs over a pool of worker processes on this machine.

One run per slot at a time; a slot is a GPU (``--devices cuda:0,cuda:1``: the worker sees only
that device, as ``cuda:0``) or a share of the CPU cores (``--workers N``: the threads are split
between the workers). A Stage-II run starts only when the Stage-I run it names has finished. Each
worker trains through the same ``train()`` into the same run folder and MLflow store as a serial
run, so the results are the same bits as a serial run with the same thread count per run; the
configs are not touched (the device is chosen by ``CUDA_VISIBLE_DEVICES``), so a later serial
``experiment run`` sees the runs as done.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.config.load import to_yaml
from harness.errors import UserError


@dataclass(frozen=True)
class Slot:
    name: str
    env: dict[str, str] = field(default_factory=dict)


def cpu_slots(workers: int | None = None) -> list[Slot]:
    cores = os.cpu_count() or 1
    n = max(1, workers or cores)
    threads = str(max(1, cores // n))
    return [Slot(f"cpu{i}", {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
                             "CUDA_VISIBLE_DEVICES": ""}) for i in range(n)]


def device_slots(devices: str) -> list[Slot]:
    names = [d.strip() for d in devices.split(",") if d.strip()]
    bad = [d for d in names if not (d.startswith("cuda:") and d[5:].isdigit())]
    if bad or not names:
        raise UserError(f"--devices {devices!r}: expected cuda:N[,cuda:M...]")
    threads = str(max(1, (os.cpu_count() or 1) // len(names)))
    return [Slot(d, {"CUDA_VISIBLE_DEVICES": d[5:], "OMP_NUM_THREADS": threads,
                     "MKL_NUM_THREADS": threads}) for d in names]


@dataclass
class _Job:
    planned: object  # PlannedRun
    resume: bool
    after: str | None  # run folder of the Stage-I run this one waits for
    proc: subprocess.Popen | None = None
    slot: Slot | None = None
    log: Path | None = None


def run_on_slots(todo: list[tuple[object, bool]], slots: list[Slot],
                 report: Callable[[str], None] = print) -> list[tuple[object, str, str]]:
    """``todo``: (PlannedRun, resume). Returns (PlannedRun, status, detail) per run, status one of
    trained | resumed | failed | skipped | stopped."""
    folders = {str(p.run_dir.resolve()) for p, _ in todo}
    jobs = []
    for p, resume in todo:
        stage1 = p.config.train.stage1_run if p.config.family == "stackgan" else None
        after = str(Path(stage1).resolve()) if stage1 else None
        jobs.append(_Job(p, resume, after if after in folders else None))
    done: dict[str, str] = {}  # run folder -> status
    results = []
    free = list(slots)
    with tempfile.TemporaryDirectory(prefix="stackgan-bench-pool-") as tmp:
        pending = list(jobs)
        running: list[_Job] = []
        try:
            while pending or running:
                for job in list(pending):
                    if job.after and done.get(job.after, "") in ("failed", "skipped", "stopped"):
                        pending.remove(job)
                        done[str(job.planned.run_dir.resolve())] = "skipped"
                        results.append((job.planned, "skipped", "its Stage-I run did not finish"))
                        report(f"skip   {job.planned.name}: its Stage-I run did not finish")
                    elif free and (job.after is None or done.get(job.after) in ("trained", "resumed")):
                        pending.remove(job)
                        _start(job, free.pop(0), Path(tmp), report)
                        running.append(job)
                for job in list(running):
                    code = job.proc.poll()
                    if code is None:
                        continue
                    running.remove(job)
                    free.append(job.slot)
                    status, detail = _finished(job, code)
                    done[str(job.planned.run_dir.resolve())] = status
                    results.append((job.planned, status, detail))
                    report(f"{status} {job.planned.name} on {job.slot.name}: {detail}")
                time.sleep(0.2)
        except BaseException:
            for job in running:  # the workers checkpoint on SIGTERM; a rerun resumes them
                job.proc.terminate()
            for job in running:
                job.proc.wait()
            raise
    return results


def _start(job: _Job, slot: Slot, tmp: Path, report: Callable[[str], None]) -> None:
    p = job.planned
    config = tmp / f"{p.name}.yaml"
    config.write_text(to_yaml(p.config), encoding="utf-8")
    job.log = tmp / f"{p.name}.log"
    cmd = [sys.executable, "-m", "harness.experiments.worker", str(config)] + ["--resume"] * job.resume
    env = dict(os.environ, **slot.env)
    with open(job.log, "w", encoding="utf-8") as log:
        job.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    job.slot = slot
    report(f"{'resume' if job.resume else 'train '} {p.name} on {slot.name} ({p.preset} "
           + " ".join(p.overrides) + ")")


def _finished(job: _Job, code: int) -> tuple[str, str]:
    out = job.proc.stdout.read() if job.proc.stdout else ""
    job.proc.stdout.close()
    if code == 0:
        result = json.loads(out.strip().splitlines()[-1])
        if result.get("stopped_by_signal"):
            return "stopped", f"signal {result['stopped_by_signal']}"
        return ("resumed" if job.resume else "trained"), f"{result['steps']} steps"
    tail = job.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
    return "failed", f"exit {code}: " + " | ".join(tail)
