"""Trains the planned runs of an experiment in order. A finished run with the same config is
left alone, an interrupted one resumes from its last checkpoint, so running an experiment again
continues where it stopped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.checkpoints import CheckpointStore
from harness.config.load import config_differences, from_yaml_file
from harness.experiments.jobs import Job
from harness.experiments.plan import PlannedRun


@dataclass
class RunOutcome:
    name: str
    status: str  # trained | resumed | done | skipped
    detail: str = ""


def run_status(p: PlannedRun) -> str:
    """fresh | resume | done | skipped | external"""
    if p.skipped:
        return "skipped"
    if p.external:
        return "external"
    run_dir = p.run_dir
    if CheckpointStore(run_dir / "checkpoints").latest() is None:
        return "fresh"
    final = run_dir / "checkpoints" / "final.pt"
    if final.exists() and not config_differences(from_yaml_file(run_dir / "config.yaml"), p.config,
                                                 ignore_safe=False):
        return "done"
    return "resume"


def job_for(p: PlannedRun, resume: bool) -> Job:
    """The executor's job for a planned run (its label: the preset and overrides)."""
    return Job(p.name, p.config, resume, f"{p.preset} " + " ".join(p.overrides))


def execute(planned: list[PlannedRun], progress: bool = True,
            report: Callable[[str], None] = print, executor=None) -> list[RunOutcome]:
    """Through ``executor`` (harness.experiments.executors; default: serial, in this process),
    Stage-II runs after their Stage-I runs; finished runs are left alone."""
    from harness.experiments.executors import SerialExecutor

    executor = executor or SerialExecutor(progress)
    outcomes = []
    todo = []
    for p in planned:
        status = run_status(p)
        if status == "skipped":
            outcomes.append(RunOutcome(p.name, "skipped", p.skipped or ""))
            report(f"skip   {p.name}: {p.skipped}")
        elif status == "external":
            outcomes.append(RunOutcome(p.name, "external", p.external))
            report(f"extern {p.name}: samples in {p.external} (evaluated, not trained)")
        elif status == "done":
            outcomes.append(RunOutcome(p.name, "done", str(p.run_dir)))
            report(f"done   {p.name} ({p.run_dir})")
        else:
            todo.append(job_for(p, resume=status == "resume"))
    if todo:
        outcomes += [RunOutcome(job.name, status, detail)
                     for job, status, detail in executor.run(todo, report)]
    return outcomes
