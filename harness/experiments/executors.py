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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import UserError

if TYPE_CHECKING:  # the CLI imports this module to build its parser: keep it light
    from harness.config.schema import RunConfig

EXECUTORS = ("serial", "local", "slurm")


@dataclass
class Job:
    """One run to train: its config (run folder = runs_dir/name), whether a checkpoint is there to
    resume, and how to describe it in progress lines."""
    name: str
    config: RunConfig
    resume: bool = False
    label: str = ""

    @property
    def run_dir(self) -> Path:
        return Path(self.config.runs_dir) / self.config.name

    @property
    def stage1_dir(self) -> str | None:
        from harness.families import family_of

        stage1 = family_of(self.config).stage1_run(self.config)
        return str(Path(stage1).resolve()) if stage1 else None


# (job, status, detail); status: trained | resumed | failed | skipped | stopped
JobResult = tuple[Job, str, str]


@dataclass
class SlurmOptions:
    """What each job asks of the cluster. ``cluster="local"`` runs the same submitit code path with
    its local executor (jobs are processes on this machine, one at a time per ``--workers``):
    for a machine without SLURM."""
    partition: str | None = None
    time_min: int = 24 * 60
    gpus_per_node: int = 0
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    account: str | None = None
    qos: str | None = None
    nodes: int = 1  # with tasks_per_node: one data-parallel run over nodes × tasks ranks
    tasks_per_node: int = 1
    cluster: str = "slurm"
    max_parallel: int = 1  # jobs at once under cluster="local"
    extra: dict[str, str] = field(default_factory=dict)  # any other sbatch option


@dataclass
class Executor:
    name: str
    slots: list | None = None  # local
    slurm: SlurmOptions | None = None
    folder: Path | None = None  # slurm: submitit's job files and the job ids of the runs

    def run(self, jobs: list[Job], report: Callable[[str], None] = print,
            validate: dict | None = None,
            on_result: Callable[[Job, str, str], None] | None = None) -> list[JobResult]:
        """``on_result(job, status, detail)`` is called as each job ends, before the others do."""
        if self.name == "local":
            from harness.experiments.local_executor import run_on_slots

            return run_on_slots(jobs, self.slots, report, validate, on_result)
        if self.name == "slurm":
            from harness.experiments.slurm_executor import run_on_slurm

            return run_on_slurm(jobs, self.slurm, self.folder, report, validate, on_result)
        raise ValueError(f"executor {self.name!r} runs in the calling process")


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


def executor_from_args(args, folder: str | Path) -> Executor | None:
    """None for serial. ``folder``: the runs root (SLURM job files go to FOLDER/.slurm)."""
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
        return None
    if name == "local":
        from harness.experiments.local_executor import cpu_slots, device_slots

        if args.devices and args.workers:
            raise UserError("--devices and --workers: give one (a worker per device, or N CPU workers)")
        return Executor("local", slots=device_slots(args.devices) if args.devices
                        else cpu_slots(args.workers))
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
    return Executor("slurm", slurm=opts, folder=Path(folder) / ".slurm")
