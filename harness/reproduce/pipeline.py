"""``stackgan-bench reproduce``: everything the paper's tables need, in order, at one scale.

dataset -> text encoder and embeddings -> evaluation models (classifier, R-precision encoder,
attribute classifier) -> every run of Table 1 / Table 2 -> sampling and evaluation of each run
and of the real images (the ceiling) -> human-study materials -> the report.

Each step is keyed by a hash of its inputs (settings, upstream results, the code it runs) and
skipped when that hash is unchanged, so an interrupted reproduce continues where it stopped and
a second run finishes in seconds. A training run whose inputs changed is moved aside (never
deleted) and trained again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import UserError
from harness.experiments.plan import PlannedRun
from harness.experiments.spec import Experiment, Scale, load_experiment, load_scales
from harness.reproduce.stamps import Stamps, inputs_hash
from harness.reproduce.steps.evaluation import EvaluationSteps
from harness.reproduce.steps.inputs import InputSteps
from harness.reproduce.steps.outputs import OutputSteps
from harness.reproduce.steps.seeds import SeedSteps
from harness.reproduce.steps.training import TrainingSteps


@dataclass
class ReproduceOptions:
    preset: str
    data: str | None = None  # a real dataset folder for CUB (default: the scale's stand-in)
    only: str | None = None  # table1 | table2
    runs_root: str | None = None  # default runs/<preset>
    reports_root: str | None = None  # default <runs_root>/reports, outside the package
    extra: list[str] = field(default_factory=list)  # overrides for every training run
    progress: bool = True
    report: bool = True
    human: bool = True
    only_runs: list[str] | None = None  # these run ids (and the Stage-I runs they need)
    executor: object | None = None  # harness.experiments.executors.Executor; None: serial
    decide: bool = False  # add seeds to the runs of imprecise claim pairs (harness.reproduce.decide)
    max_seeds: int = 10
    budget_hours: float | None = None  # the --decide loop's training time; None: no limit


@dataclass
class StepLog:
    lines: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    say: Callable[[str], None] = print

    def add(self, text: str) -> None:
        self.lines.append(text)
        self.say(text)


class Pipeline(InputSteps, TrainingSteps, EvaluationSteps, SeedSteps, OutputSteps):
    """The state of one reproduce and the step runner; the steps live in harness.reproduce.steps."""

    def __init__(self, opts: ReproduceOptions):
        scales = load_scales()
        if opts.preset not in scales:
            raise UserError(f"--preset {opts.preset!r}: choose one of {', '.join(scales)}")
        if opts.only not in (None, "table1", "table2"):
            raise UserError(f"--only {opts.only!r}: choose table1 or table2")
        self.opts = opts
        self.scale: Scale = scales[opts.preset]
        self.pipe = self.scale.pipeline
        names = [opts.only] if opts.only else ["table1", "table2"]
        self.experiments: list[Experiment] = [load_experiment(n) for n in names]
        self.root = Path(opts.runs_root or f"runs/{opts.preset}")
        self.reports_root = Path(opts.reports_root) if opts.reports_root else self.root / "reports"
        self.stamps = Stamps(self.root / ".reproduce")
        self.log = StepLog()
        self.tracking_experiment = f"stackgan-bench-{opts.preset}"
        self.data_root = Path(opts.data or self.scale.data["cub"])
        self.keys: dict[str, str] = {}
        # The evaluators (dataset classifier, R-precision image encoder, attribute classifier)
        # judge images at this size (the scale's largest output); None: their preset sizes.
        self.evaluator_size: int | None = self.pipe.evaluator_size
        self.executor = opts.executor
        self._native_bf16: bool | None = None  # pipeline.autocast_bf16: native, once resolved

    # ----------------------------------------------------------------------------- steps

    def step(self, name: str, inputs: dict, outputs: list, run: Callable[[], dict | None]) -> str:
        key = inputs_hash(inputs)
        if self.stamps.current(name, key, outputs):
            self.log.skipped.append(name)
            self.log.add(f"[up to date] {name}")
        else:
            self.log.add(f"[run] {name}")
            started = time.time()
            info = run() or {}
            self.log.timings[name] = time.time() - started
            self.log.ran.append(name)
            self.stamps.record(name, key, {"seconds": round(self.log.timings[name], 1), **info})
            self.log.add(f"      {name}: {self.log.timings[name]:.0f} s")
        self.keys[name] = key
        return key

    def run(self) -> StepLog:
        self.run_and_plan()
        return self.log

    def run_and_plan(self) -> list[PlannedRun]:
        from harness.locks import exclusive

        with exclusive(self.root, "reproduces"):  # one reproduce (or experiment run) per root
            return self._run_and_plan()

    def _run_and_plan(self) -> list[PlannedRun]:
        started = time.time()
        self.dataset()
        self.text_encoders()
        self.eval_models()
        self.metric_validity()
        planned = self.plan()
        self.train_runs(planned)
        self.evaluate_runs(planned)
        if self.opts.decide:
            self.decide_seeds(planned)
        if self.opts.human:
            self.human_study(planned)
        if self.opts.report:
            self.make_report()
        self.log.timings["total"] = time.time() - started
        self.log.add(f"reproduce --preset {self.opts.preset}: {len(self.log.ran)} steps run, "
                     f"{len(self.log.skipped)} up to date, {self.log.timings['total']:.0f} s")
        return planned



def reproduce(opts: ReproduceOptions) -> StepLog:
    return Pipeline(opts).run()
