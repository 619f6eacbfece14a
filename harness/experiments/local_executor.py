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

import contextlib
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
from harness.experiments.jobs import Job, JobResult


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
class _Running:
    job: Job
    after: str | None  # run folder of the Stage-I run this one waits for
    proc: subprocess.Popen | None = None
    slot: Slot | None = None
    log: Path | None = None


def run_on_slots(jobs: list[Job], slots: list[Slot], report: Callable[[str], None] = print,
                 validate: dict | None = None, on_result=None) -> list[JobResult]:
    """Returns (job, status, detail) per job, status one of trained | resumed | failed | skipped |
    stopped. ``validate``: the workers' in-training validation (harness.experiments.worker)."""
    folders = {str(j.run_dir.resolve()) for j in jobs}
    waiting = [_Running(j, j.stage1_dir if j.stage1_dir in folders else None) for j in jobs]
    done: dict[str, str] = {}  # run folder -> status
    results = []
    free = list(slots)
    with tempfile.TemporaryDirectory(prefix="stackgan-bench-pool-") as tmp, _sigterm_interrupts():
        pending = list(waiting)
        running: list[_Running] = []
        try:
            while pending or running:
                for r in list(pending):
                    if r.after and done.get(r.after, "") in ("failed", "skipped", "stopped"):
                        pending.remove(r)
                        done[str(r.job.run_dir.resolve())] = "skipped"
                        results.append((r.job, "skipped", "its Stage-I run did not finish"))
                        report(f"skip   {r.job.name}: its Stage-I run did not finish")
                        if on_result:
                            on_result(r.job, "skipped", "its Stage-I run did not finish")
                    elif free and (r.after is None or done.get(r.after) in ("trained", "resumed")):
                        pending.remove(r)
                        _start(r, free.pop(0), Path(tmp), report, validate)
                        running.append(r)
                for r in list(running):
                    code = r.proc.poll()
                    if code is None:
                        continue
                    running.remove(r)
                    free.append(r.slot)
                    status, detail = _finished(r, code)
                    done[str(r.job.run_dir.resolve())] = status
                    results.append((r.job, status, detail))
                    report(f"{status} {r.job.name} on {r.slot.name}: {detail}")
                    if on_result:
                        on_result(r.job, status, detail)
                time.sleep(0.2)
        except BaseException:
            for r in running:  # the workers checkpoint on SIGTERM; a rerun resumes them
                r.proc.terminate()
            for r in running:
                r.proc.wait()
            raise
    return results


@contextlib.contextmanager
def _sigterm_interrupts():
    """SIGTERM to the pool (a scheduler, ``kill``) stops it as Ctrl-C does: the workers are sent
    SIGTERM, checkpoint and exit, and a re-run resumes them. Without this the pool would die at
    once and leave its workers training with nobody to record them."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _start(r: _Running, slot: Slot, tmp: Path, report: Callable[[str], None],
           validate: dict | None) -> None:
    job = r.job
    config = tmp / f"{job.name}.yaml"
    config.write_text(to_yaml(job.config), encoding="utf-8")
    # Beside the run folder (which train() creates): the worker's whole stderr, kept after a failure.
    r.log = job.run_dir.with_name(job.run_dir.name + ".log")
    r.log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "harness.experiments.worker", str(config)] + ["--resume"] * job.resume
    if validate:
        cmd += ["--validate", json.dumps(validate)]
    env = dict(os.environ, **slot.env)
    with open(r.log, "w", encoding="utf-8") as log:
        r.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    r.slot = slot
    report(f"{'resume' if job.resume else 'train '} {job.name} on {slot.name}"
           + (f" ({job.label})" if job.label else ""))


def _finished(r: _Running, code: int) -> tuple[str, str]:
    out = r.proc.stdout.read() if r.proc.stdout else ""
    r.proc.stdout.close()
    if code == 0:
        result = json.loads(out.strip().splitlines()[-1])
        if result.get("stopped_by_signal"):
            return "stopped", f"signal {result['stopped_by_signal']}"
        return ("resumed" if r.job.resume else "trained"), f"{result['steps']} steps"
    tail = r.log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
    return "failed", f"exit {code}: " + " | ".join(tail) + f" (log: {r.log})"
