"""Where training runs go: ``--executor serial|local|slurm``, one set of options and defaults for
``experiment run``, ``reproduce`` and ``sweep``.

- serial: one run after another in the calling process (the default of experiment run/reproduce).
- local:  a pool of worker processes on this machine, one run per slot (a GPU of ``--devices``,
          or a share of the CPU cores with ``--workers``); harness.experiments.local_executor.
- slurm:  one SLURM job per run through submitit, a Stage-II job depending on its Stage-I job;
          harness.experiments.slurm_executor.

Every executor trains through the same ``train()`` into the same run folder and MLflow store as a
serial run, with the config unchanged, so results are the serial run's bits (same seed, same
thread count) and a later serial command sees the runs as done.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from harness.errors import UserError
from harness.experiments.jobs import Job, JobResult, SlurmOptions

EXECUTORS = ("serial", "local", "slurm")


class Executor:
    """Runs training jobs, a Stage-II job after the Stage-I job it names; ``run`` returns
    (job, status, detail) per job and calls ``on_result(job, status, detail)`` as each one ends,
    before the others do. status: trained | resumed | failed | skipped | stopped."""
    name = ""

    def run(self, jobs: list[Job], report: Callable[[str], None] = print,
            validate: dict | None = None,
            on_result: Callable[[Job, str, str], None] | None = None) -> list[JobResult]:
        raise NotImplementedError


class SerialExecutor(Executor):
    """One job after another in this process, in the order given (the plans put every Stage-I
    before its Stage-II). A stop by signal ends the batch: the run has checkpointed, a rerun
    resumes it. An error in a run propagates, as from ``train``."""
    name = "serial"

    def __init__(self, progress: bool = True):
        self.progress = progress

    def run(self, jobs, report=print, validate=None, on_result=None) -> list[JobResult]:
        from harness.experiments.worker import build_validator
        from harness.runner.trainer import train

        results: list[JobResult] = []
        for job in jobs:
            report(f"{'resume' if job.resume else 'train '} {job.name} ({job.label})")
            result = train(job.config, resume=job.resume, progress=self.progress,
                           validator=build_validator(job.config, validate))
            if result.stopped_by_signal:
                status, detail = "stopped", f"signal {result.stopped_by_signal}"
            else:
                status, detail = ("resumed" if job.resume else "trained"), f"{result.steps} steps"
            results.append((job, status, detail))
            if on_result:
                on_result(job, status, detail)
            if status == "stopped":
                break
        return results


class LocalExecutor(Executor):
    """A pool of worker processes on this machine, one job per slot (harness.experiments.local_executor)."""
    name = "local"

    def __init__(self, slots: list):
        self.slots = slots

    def run(self, jobs, report=print, validate=None, on_result=None) -> list[JobResult]:
        from harness.experiments.local_executor import run_on_slots

        return run_on_slots(jobs, self.slots, report, validate, on_result)


class SlurmExecutor(Executor):
    """One SLURM job per run through submitit (harness.experiments.slurm_executor)."""
    name = "slurm"

    def __init__(self, options: SlurmOptions, folder: Path):
        self.slurm, self.folder = options, Path(folder)

    def run(self, jobs, report=print, validate=None, on_result=None) -> list[JobResult]:
        from harness.experiments.slurm_executor import run_on_slurm

        return run_on_slurm(jobs, self.slurm, self.folder, report, validate, on_result)


def add_executor_arguments(p: argparse.ArgumentParser, default: str = "serial") -> None:
    g = p.add_argument_group("executor (where the training runs go)")
    g.add_argument("--executor", choices=EXECUTORS, default=default,
                   help="serial: one run after another in this process; local: a pool of worker "
                        "processes, one run per slot; slurm: one SLURM job per run via submitit "
                        f"(Stage-II after its Stage-I in every case; default {default})")
    g.add_argument("--workers", type=int, default=None,
                   help="local on CPU: this many workers, the cores split between them (default: "
                        "one per core); slurm --slurm-cluster local: jobs at once (default 1)")
    g.add_argument("--devices", default=None, metavar="cuda:0,cuda:1",
                   help="local on GPUs: one worker per device")
    g.add_argument("--slurm-partition", default=None)
    g.add_argument("--slurm-time", type=int, default=24 * 60, metavar="MINUTES",
                   help="time limit per job (default 1440); a job stopped by it checkpoints and a "
                        "re-run resumes it")
    g.add_argument("--slurm-gpus", type=int, default=0, metavar="N", help="GPUs per job (default 0)")
    g.add_argument("--slurm-cpus", type=int, default=None, metavar="N", help="CPUs per job")
    g.add_argument("--slurm-mem-gb", type=float, default=None)
    g.add_argument("--slurm-nodes", type=int, default=1, metavar="N",
                   help="nodes per job: each run is one data-parallel job of nodes × tasks-per-node "
                        "ranks (torch.distributed; default 1)")
    g.add_argument("--slurm-tasks-per-node", type=int, default=1, metavar="N",
                   help="ranks per node, usually one per GPU (default 1)")
    g.add_argument("--slurm-account", default=None)
    g.add_argument("--slurm-qos", default=None)
    g.add_argument("--slurm-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other sbatch option, e.g. constraint=a100 (repeatable)")
    g.add_argument("--slurm-cluster", choices=("slurm", "local"), default="slurm",
                   help="local: submitit's local executor instead of a cluster (same code path, "
                        "jobs are processes here)")


def executor_from_args(args, folder: str | Path, progress: bool = True) -> Executor:
    """``folder``: the runs root (SLURM job files go to FOLDER/.slurm); ``progress``: the serial
    executor's progress bars."""
    name = args.executor
    slurm_set = [f"--slurm-{k}".replace("_", "-") for k in
                 ("partition", "gpus", "cpus", "mem_gb", "account", "qos", "nodes", "tasks_per_node")
                 if getattr(args, f"slurm_{k}") not in (None, 0, 1)] + \
        (["--slurm-option"] if args.slurm_option else []) + \
        (["--slurm-cluster"] if args.slurm_cluster != "slurm" else [])
    if name != "slurm" and slurm_set:
        raise UserError(f"{', '.join(slurm_set)} go with --executor slurm")
    if name == "serial":
        if args.devices or args.workers:
            raise UserError("--devices and --workers go with --executor local (or slurm)")
        return SerialExecutor(progress)
    if name == "local":
        from harness.experiments.local_executor import cpu_slots, device_slots

        if args.devices and args.workers:
            raise UserError("--devices and --workers: give one (a worker per device, or N CPU workers)")
        return LocalExecutor(device_slots(args.devices) if args.devices else cpu_slots(args.workers))
    if args.devices:
        raise UserError("--devices goes with --executor local; ask SLURM for GPUs with --slurm-gpus")
    extra = {}
    for item in args.slurm_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--slurm-option {item!r}: expected KEY=VALUE (an sbatch option)")
        extra[key.lstrip("-").replace("-", "_")] = value
    for flag, value in (("--slurm-time", args.slurm_time), ("--slurm-nodes", args.slurm_nodes),
                        ("--slurm-tasks-per-node", args.slurm_tasks_per_node)):
        if value < 1:
            raise UserError(f"{flag} {value}: at least 1")
    opts = SlurmOptions(partition=args.slurm_partition, time_min=args.slurm_time,
                        gpus_per_node=args.slurm_gpus, cpus_per_task=args.slurm_cpus,
                        mem_gb=args.slurm_mem_gb, account=args.slurm_account, qos=args.slurm_qos,
                        nodes=args.slurm_nodes, tasks_per_node=args.slurm_tasks_per_node,
                        cluster=args.slurm_cluster, max_parallel=max(1, args.workers or 1),
                        extra=extra)
    return SlurmExecutor(opts, Path(folder) / ".slurm")
