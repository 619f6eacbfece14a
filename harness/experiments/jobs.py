"""What every executor takes and returns: a training job, its result, and SLURM's options."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports the executors to build its parser: keep this light
    from harness.config.schema import RunConfig


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
