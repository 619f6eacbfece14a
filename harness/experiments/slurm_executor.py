"""``--executor slurm``: one SLURM job per run, through submitit (no sbatch templating here).

A Stage-II job is submitted with ``--dependency=afterok:<its Stage-I job>``, so the whole plan is
queued at once; if a Stage-I job fails, the Stage-II jobs waiting on it are cancelled and reported
as skipped. Each job runs ``harness.experiments.worker.train_job`` from this checkout (the nodes
share the filesystem, as on any SLURM cluster) into the same run folder as a serial run.

The job ids are kept in ``<runs root>/.slurm/jobs.json``. The command waits for its jobs; stopped
while waiting (Ctrl-C, a lost login), it leaves them queued, and running the same command again
attaches to the jobs still queued or running instead of submitting them twice, then finishes
(evaluation and report, for ``reproduce``). A job stopped by its time limit checkpoints on SIGTERM
(the trainer's handler); the next command resumes it from there.

``cluster="local"`` runs the same code through submitit's local executor (jobs are processes on
this machine; no dependencies in that executor, so a Stage-II job is submitted when its Stage-I
job has finished): what the tests use where no SLURM runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.atomic import write_text_atomic
from harness.config.load import to_yaml
from harness.errors import UserError
from harness.experiments.jobs import Job, JobResult, SlurmOptions

ACTIVE = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED")
# Without SLURM accounting (sacct), submitit learns that a job ended only from its result file;
# a job that leaves the queue without one (killed, node lost) is called failed after this grace.
VANISHED_GRACE_S = 20.0
POLL_S = 1.0


@dataclass
class _Submitted:
    job: Job
    handle: object  # submitit Job
    attached: bool = False
    gone_since: float | None = None


def queue_state(job_id: str) -> str | None:
    """The job's state in ``squeue``, None when it is no longer queued."""
    try:
        out = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (out.stdout.strip().splitlines() or [None])[0] if out.returncode == 0 else None


def _executor(opts: SlurmOptions, folder: Path, name: str, dependency: str | None = None):
    """A fresh submitit executor per job: parameters set on one (a dependency) must not carry
    over to the next job."""
    try:
        import submitit
    except ImportError as exc:  # declared in pyproject; a trimmed environment may lack it
        raise UserError("--executor slurm needs the submitit package (pip install submitit)") from exc
    if opts.cluster == "slurm" and shutil.which("sbatch") is None:
        raise UserError("--executor slurm: no `sbatch` on PATH (not a SLURM login node); "
                        "--slurm-cluster local runs the same jobs on this machine")
    ex = submitit.AutoExecutor(folder=folder / "%j", cluster=opts.cluster)
    params = {"name": name, "timeout_min": opts.time_min, "mem_gb": opts.mem_gb,
              "cpus_per_task": opts.cpus_per_task}
    if opts.cluster == "slurm":
        params.update(nodes=opts.nodes, tasks_per_node=opts.tasks_per_node,
                      gpus_per_node=opts.gpus_per_node, slurm_partition=opts.partition,
                      slurm_account=opts.account, slurm_qos=opts.qos,
                      slurm_additional_parameters=dict(opts.extra) or None,
                      slurm_dependency=dependency)
    ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return ex


class _Registry:
    """run folder -> the SLURM job id training it, written atomically."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.ids = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        except (OSError, ValueError):
            self.ids = {}  # a damaged record only costs re-attaching; jobs are not lost
        if not isinstance(self.ids, dict):
            self.ids = {}

    def set(self, run_dir: Path, job_id: str) -> None:
        self.ids[str(run_dir.resolve())] = str(job_id)
        write_text_atomic(self.path, json.dumps(self.ids, indent=1, sort_keys=True))

    def get(self, run_dir: Path) -> str | None:
        return self.ids.get(str(run_dir.resolve()))


def run_on_slurm(jobs: list[Job], opts: SlurmOptions, folder: Path,
                 report: Callable[[str], None] = print, validate: dict | None = None,
                 on_result=None) -> list[JobResult]:
    import submitit

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _executor(opts, folder, "check")  # refuse a missing submitit/sbatch before anything is queued
    registry = _Registry(folder / "jobs.json")
    threads = opts.cpus_per_task or (max(1, (os.cpu_count() or 1) // opts.max_parallel)
                                     if opts.cluster == "local" else None)
    in_batch = {str(j.run_dir.resolve()) for j in jobs}
    pending = list(jobs)
    running: dict[str, _Submitted] = {}  # run folder -> job
    status: dict[str, str] = {}  # run folder -> final status
    results: list[JobResult] = []

    def after(job: Job) -> str | None:
        return job.stage1_dir if job.stage1_dir in in_batch else None

    def submit(job: Job) -> None:
        key = str(job.run_dir.resolve())
        known = registry.get(job.run_dir) if opts.cluster == "slurm" else None
        if known and queue_state(known) in ACTIVE:
            handle = submitit.SlurmJob(folder=folder / "%j", job_id=known,
                                       tasks=range(opts.nodes * opts.tasks_per_node))
            running[key] = _Submitted(job, handle, attached=True)
            report(f"attach {job.name} to slurm job {known} (still {queue_state(known)})")
            return
        dep = after(job)
        # Queued behind its Stage-I job while that one is still queued or running.
        dependency = (f"afterok:{running[dep].handle.job_id}"
                      if dep in running and opts.cluster == "slurm" else None)
        ex = _executor(opts, folder, job.name, dependency)
        from harness.experiments.worker import train_job

        handle = ex.submit(train_job, to_yaml(job.config), job.resume, validate, threads)
        if opts.cluster == "slurm":
            registry.set(job.run_dir, handle.job_id)
        running[key] = _Submitted(job, handle)
        report(f"{'resume' if job.resume else 'train '} {job.name} as {opts.cluster} job "
               f"{handle.job_id}" + (f" ({job.label})" if job.label else ""))

    def settle(job: Job, state: str, detail: str, line: str) -> None:
        """A job's end, recorded once: its status, its result, its line, the caller's callback."""
        status[str(job.run_dir.resolve())] = state
        results.append((job, state, detail))
        report(line)
        if on_result:
            on_result(job, state, detail)

    unfinished = "its Stage-I run did not finish"

    try:
        while pending or running:
            for job in list(pending):
                dep = after(job)
                if dep and status.get(dep) in ("failed", "skipped", "stopped"):
                    pending.remove(job)
                    settle(job, "skipped", unfinished, f"skip   {job.name}: {unfinished}")
                    continue
                if opts.cluster == "slurm":
                    ready = dep is None or dep in running or status.get(dep) in ("trained", "resumed")
                else:
                    ready = (dep is None or status.get(dep) in ("trained", "resumed")) \
                        and len(running) < opts.max_parallel
                if ready:
                    pending.remove(job)
                    submit(job)
            for key, sub in list(running.items()):
                state, detail = _poll(sub, opts.cluster)
                if state:
                    running.pop(key)
                    settle(sub.job, state, detail,
                           f"{state} {sub.job.name} (job {sub.handle.job_id}): {detail}")
            # A Stage-II job whose Stage-I failed would wait forever on its dependency.
            for key, sub in list(running.items()):
                dep = after(sub.job)
                if dep and status.get(dep) in ("failed", "skipped", "stopped"):
                    sub.handle.cancel(check=False)
                    running.pop(key)
                    settle(sub.job, "skipped", unfinished, f"skip   {sub.job.name}: {unfinished} "
                           f"(job {sub.handle.job_id} cancelled)")
            if pending or running:
                time.sleep(POLL_S)
    except BaseException:
        if opts.cluster == "slurm":
            ids = ", ".join(str(s.handle.job_id) for s in running.values())
            if ids:
                report(f"stopped waiting; jobs {ids} stay queued on the cluster: run the same "
                       "command again to wait for them and finish")
        else:
            for sub in running.values():  # the trainer checkpoints on SIGTERM; a rerun resumes
                sub.handle.cancel(check=False)
        raise
    return results


def _poll(sub: _Submitted, cluster: str) -> tuple[str | None, str]:
    job_id = sub.handle.job_id
    # Several tasks (a data-parallel job): rank 0's result stands for the run (it alone writes).
    handle = sub.handle.task(0) if sub.handle.num_tasks > 1 else sub.handle
    if not handle.paths.result_pickle.exists():
        if cluster != "slurm":
            if not handle.done():
                return None, ""
        else:
            if queue_state(job_id) in ACTIVE:
                sub.gone_since = None
                return None, ""
            sub.gone_since = sub.gone_since or time.time()
            if time.time() - sub.gone_since < VANISHED_GRACE_S:
                return None, ""
            return "failed", (f"left the queue without a result (time limit, memory or node "
                              f"failure?); its log: {handle.paths.stderr}")
    try:
        result = handle.result()
    except Exception as exc:  # the job's own traceback, as submitit reports it
        lines = [x for x in str(exc).strip().splitlines() if x.strip()]
        return "failed", " | ".join(lines[-3:]) + f" (log: {handle.paths.stderr})"
    if result.get("stopped_by_signal"):
        return "stopped", f"signal {result['stopped_by_signal']}"
    return ("resumed" if sub.job.resume else "trained"), f"{result['steps']} steps"
