"""The runs of the experiments: the plan and their training, through the chosen executor.

A part of ``Pipeline`` (harness.reproduce.pipeline): the methods read and write its state
(options, scale, stamps, keys, log)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness.errors import UserError
from harness.experiments.plan import PlannedRun, plan_runs
from harness.experiments.spec import merge_runs
from harness.reproduce.stamps import code_hash, inputs_hash
from harness.reproduce.steps.common import TRAIN_CODE


class TrainingSteps:
    def plan(self) -> list[PlannedRun]:
        runs = merge_runs(self.experiments)
        if self.opts.only_runs:
            unknown = sorted(set(self.opts.only_runs) - set(runs))
            if unknown:
                raise UserError(f"unknown run id(s) {unknown}; runs: {', '.join(runs)}")
            wanted = set(self.opts.only_runs) | {runs[r].stage1 for r in self.opts.only_runs
                                                 if runs[r].stage1}
            runs = {k: v for k, v in runs.items() if k in wanted}
        return plan_runs(runs, self.scale, self.root, {"cub": str(self.data_root)},
                         self.run_overrides(), tracking_experiment=self.tracking_experiment)

    def run_overrides(self) -> list[str]:
        """What the pipeline adds to every training run's config; the user's --set last."""
        return ["data.check=false", *self._validate_overrides(), *self._numerics_overrides(),
                *self.opts.extra]

    def _numerics_overrides(self) -> list[str]:
        mode = self.pipe.autocast_bf16
        if mode == "off":
            return []
        if mode == "on":
            return ["train.autocast_bf16=true"]
        if mode != "native":
            raise UserError(f"scale {self.scale.name}: pipeline.autocast_bf16 {mode!r}: "
                            "choose off, on or native")
        if self._native_bf16 is None:  # resolved once per reproduce, and said once
            from harness.core import speed

            self._native_bf16 = speed.hardware_has_bf16()
            self.log.add("[numerics] bf16 autocast: " + (
                "on (this machine computes bf16 in hardware)" if self._native_bf16 else
                "off, fp32 (no AVX512-BF16, AMX or CUDA bf16 here: emulated bf16 would be about "
                "2x slower); this scale's published numbers were trained in bf16"))
        return [f"train.autocast_bf16={'true' if self._native_bf16 else 'false'}"]

    def _validate_overrides(self) -> list[str]:
        v = self.pipe.validate
        return ([f"train.validate_every={v.every}"] if v.every else []) + (
            [f"train.validate_per_doubling={v.per_doubling}", f"train.validate_doublings={v.doublings}"]
            if v.per_doubling else [])

    def train_runs(self, planned: list[PlannedRun]) -> None:
        from harness.checkpoints import CheckpointStore
        from harness.config.load import to_dict

        todo = []
        for p in planned:
            if p.skipped:
                self.log.add(f"[skip] train:{p.name}: {p.skipped}")
                continue
            if p.external:
                self.log.add(f"[external] {p.name}: samples in {p.external}, evaluated, not trained")
                continue
            inputs = {"config": to_dict(p.config), "data": self.keys["dataset"],
                      "text": self.keys["text-encoder"], "code": code_hash(*TRAIN_CODE)}
            if p.spec.stage1:
                inputs["stage1"] = self.keys[f"train:{p.spec.stage1}-s{p.seed}"]
            key = inputs_hash(inputs)
            name = f"train:{p.name}"
            started = self.stamps.get(f"started:{p.name}")
            run_dir = p.run_dir
            final = run_dir / "checkpoints" / "final.pt"
            if self.stamps.current(name, key, [final]):
                self.step(name, inputs, [final], dict)  # up to date
                continue
            if run_dir.exists():
                # Resume only a run started with these same inputs that has a checkpoint;
                # anything else in the way is kept aside, never deleted.
                resumable = (started is not None and started.get("key") == key
                             and CheckpointStore(run_dir / "checkpoints").latest() is not None)
                if not resumable:
                    aside = run_dir.with_name(f"{run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
                    run_dir.rename(aside)
                    self.log.add(f"[inputs changed or no checkpoint] {p.name}: the old folder moved "
                                 f"to {aside}")
            self.stamps.record(f"started:{p.name}", key)
            self.keys[name] = key
            todo.append((p, key))
        if todo:
            self._train(todo)

    def _train(self, todo: list) -> None:
        """The runs whose inputs changed, through the executor (serial unless one was chosen;
        Stage-II after its Stage-I), each stamped as it finishes: a pool stopped later loses none
        of them. A run's time is its own wall time (its summary.json)."""
        from harness.experiments.executors import SerialExecutor
        from harness.experiments.train_plan import job_for, run_status

        executor = self.executor or SerialExecutor(self.opts.progress)
        # "done": trained with these inputs but stopped before its stamp was written; resuming a
        # finished run loads its last checkpoint and returns at once.
        jobs = {p.name: job_for(p, resume=run_status(p) in ("resume", "done")) for p, _ in todo}
        keys = {p.name: key for p, key in todo}
        started = time.time()
        self.log.add(f"[run] {len(jobs)} training run(s) on the {executor.name} executor")
        failed = []

        def record(job, status: str, detail: str) -> None:
            name = f"train:{job.name}"
            if status in ("trained", "resumed"):
                seconds = _wall_seconds(job.run_dir)
                self.log.ran.append(name)
                self.log.timings[name] = seconds
                self.stamps.record(name, keys[job.name], {"seconds": round(seconds, 1),
                                                          "steps": int(detail.split()[0]),
                                                          "run_dir": str(job.run_dir)})
                self.log.add(f"      {name}: {seconds:.0f} s")
            else:
                failed.append(f"{job.name}: {status} ({detail})")

        executor.run(list(jobs.values()), self.log.add, self._validate_spec(), on_result=record)
        self.log.timings["train (all runs)"] = time.time() - started
        if any(f.split(": ", 1)[1].startswith("stopped") for f in failed):
            raise KeyboardInterrupt
        if failed:
            raise UserError("training runs did not finish; the others are kept and a re-run "
                            "continues from them:\n  " + "\n  ".join(failed))

    def _validate_spec(self) -> dict | None:
        """The in-training validation every executor builds for its runs (worker.build_validator)."""
        if not (self.pipe.validate.every or self.pipe.validate.per_doubling):
            return None
        size = self.evaluator_size or self.pipe.eval.size or 64
        return {"classifier": str(self.root / "classifier" / "classifier.pt"), "size": size,
                "images": self.pipe.validate.images}


def _wall_seconds(run_dir: Path) -> float:
    """The wall time the run's last training call took (0 when it wrote no summary)."""
    try:
        return float(json.loads((run_dir / "summary.json").read_text())["wall_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0
