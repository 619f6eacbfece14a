"""From experiment runs and a scale to the ordered list of training runs with their configs.

Run folders live in ``<runs_root>/<run id>-s<seed>``; a Stage-II run reads its Stage-I run's
folder of the same seed. Runs whose dataset has no folder at this scale are listed as skipped,
with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.config.load import load_config
from harness.config.schema import RunConfig
from harness.errors import UserError
from harness.experiments.spec import RunSpec, Scale


@dataclass
class PlannedRun:
    spec: RunSpec
    seed: int
    name: str
    preset: str | None
    overrides: list[str]
    config: RunConfig | None
    skipped: str | None = None  # why it cannot run at this scale
    folder: Path | None = None  # an external row's folder (its eval.json), beside the runs

    @property
    def run_dir(self) -> Path | None:
        if self.folder is not None:
            return self.folder
        return None if self.config is None else Path(self.config.runs_dir) / self.config.name

    @property
    def external(self) -> str | None:
        """The samples folder of an external row (nothing to train)."""
        return self.spec.samples


def run_name(run_id: str, seed: int) -> str:
    return f"{run_id}-s{seed}"


def _ordered(runs: dict[str, RunSpec]) -> list[RunSpec]:
    """Stage-I runs before the Stage-II runs built on them; otherwise in file order."""
    first = [r for r in runs.values() if r.kind != "stage2"]
    return first + [r for r in runs.values() if r.kind == "stage2"]


def plan_runs(runs: dict[str, RunSpec], scale: Scale, runs_root: str | Path,
              data: dict[str, str] | None = None, extra: list[str] | None = None,
              seeds: tuple[int, ...] | None = None, tracking_experiment: str | None = None
              ) -> list[PlannedRun]:
    data_roots = {**scale.data, **(data or {})}
    runs_root = Path(runs_root)
    planned = []
    for spec in _ordered(runs):
        for seed in seeds or scale.seeds:
            name = run_name(spec.id, seed)
            preset = spec.preset or scale.preset(spec.dataset, spec.kind)
            skipped = None
            if scale.runs is not None and spec.id not in scale.runs and spec.dataset in data_roots:
                skipped = scale.not_run
            elif spec.dataset not in data_roots:
                skipped = (f"no {spec.dataset} folder at the {scale.name} scale "
                           f"(pass --data {spec.dataset}=DIR)")
            elif preset is None and spec.kind != "external":
                skipped = f"the {scale.name} scale has no {spec.kind} preset for {spec.dataset}"
            if spec.kind == "external" and not skipped:
                if seed == (seeds or scale.seeds)[0]:  # one folder of samples: one row entry
                    planned.append(PlannedRun(spec, seed, name, None, [], None, folder=runs_root / name))
                continue
            if skipped:
                planned.append(PlannedRun(spec, seed, name, preset, [], None, skipped))
                continue
            overrides = [*scale.set.get(spec.kind, ()), *spec.set, *scale.set.get(spec.id, ()),
                         f"name={name}", f"runs_dir={runs_root}", f"train.seed={seed}",
                         f"data.root={data_roots[spec.dataset]}"]
            if spec.stage1 is not None:
                overrides.append(f"train.stage1_run={runs_root / run_name(spec.stage1, seed)}")
            if tracking_experiment:
                overrides.append(f"tracking.experiment={tracking_experiment}")
            overrides += list(extra or [])
            try:
                cfg = load_config(preset, overrides)
            except UserError as exc:
                raise UserError(f"run {spec.id} at the {scale.name} scale: {exc}") from exc
            planned.append(PlannedRun(spec, seed, name, preset, overrides, cfg))
    by_name = {p.name: p for p in planned}
    for p in planned:
        # A Stage-I outside this plan (planned and trained on its own before) is not skipped here.
        stage1 = by_name.get(run_name(p.spec.stage1, p.seed)) if p.spec.stage1 else None
        if p.skipped is None and stage1 is not None and stage1.skipped:
            p.skipped, p.config = "its Stage-I run is skipped", None
    return planned
