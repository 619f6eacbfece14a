"""Experiment files (``definitions/table1.yaml``, ``table2.yaml``) and the scales they run at
(``definitions/scales.yaml``), read strictly: an unknown key, a missing field or a dangling run
reference is refused with the file and the key."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.config.load import resolve_named_yaml
from harness.config.yaml_plain import load_plain
from harness.errors import UserError
from harness.experiments.scale_pipeline import PipelineConfig, parse_pipeline

EXPERIMENT_DIR = Path(__file__).resolve().parent / "definitions"
# model: any family, its own preset; external: samples written elsewhere (a folder), not trained
KINDS = ("stage1", "stage2", "gan_int_cls", "gawwn", "model", "external")
DATASETS = ("cub", "oxford102", "coco")


@dataclass(frozen=True)
class RunSpec:
    id: str
    kind: str
    dataset: str
    set: tuple[str, ...] = ()
    stage1: str | None = None  # a Stage-II run: the id of its Stage-I run
    preset: str | None = None  # a config (name or path) used at every scale, e.g. your model's
    samples: str | None = None  # kind external: a samples folder (manifest.jsonl, README)


@dataclass(frozen=True)
class Row:
    run: str
    columns: dict  # the table's descriptive columns (model, ca, text_twice, ...)
    paper: dict  # metric -> {mean, std, confirmed}
    footnote: str | None = None  # what a reader must know about the row (shown under the table)


@dataclass(frozen=True)
class Claim:
    claim: str
    metric: str
    pairs: tuple[tuple[str, str], ...]
    lower_is_better: bool = False


@dataclass
class Experiment:
    name: str
    title: str
    metrics: list[str]
    runs: dict[str, RunSpec]
    rows: list[Row]
    claims: list[Claim] = field(default_factory=list)
    source: Path | None = None


@dataclass(frozen=True)
class Scale:
    name: str
    description: str
    data: dict[str, str]
    seeds: tuple[int, ...]
    presets: dict[str, dict[str, str]]
    set: dict[str, tuple[str, ...]]  # kind or run id -> overrides
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)  # what `reproduce` does around the runs
    # The run ids trained at this scale (None: all); the others are listed as not run, with
    # ``not_run`` as the reason.
    runs: tuple[str, ...] | None = None
    not_run: str = "not run at this scale"

    def preset(self, dataset: str, kind: str) -> str | None:
        table = self.presets.get(dataset, self.presets.get("default", {}))
        return table.get(kind)


def _read_yaml(path: Path) -> dict:
    try:
        data = load_plain(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    return data


def _check_keys(where: str, data: dict, required: set[str], optional: set[str] = frozenset()) -> None:
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - required - set(optional))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(required | set(optional))}")
    missing = sorted(required - set(data))
    if missing:
        raise UserError(f"{where}: missing key(s) {missing}")


# Experiment names and run ids become folder names (runs/<scale>/reports/<experiment>,
# runs/<scale>/<run>-s<seed>): one path component of plain characters, so that no name writes
# outside its folder.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def _check_name(where: str, name) -> None:
    if not isinstance(name, str) or not SAFE_NAME.fullmatch(name) or ".." in name:
        raise UserError(f"{where}: {name!r} is not a valid name (letters, digits, '_', '.', '-'; "
                        "it becomes a folder name, so no '/', '..' or absolute path)")


def resolve_experiment_path(name_or_path: str) -> Path:
    return resolve_named_yaml(name_or_path, EXPERIMENT_DIR, "experiment file", "known",
                              exclude=("scales",))


def load_experiment(name_or_path: str) -> Experiment:
    path = resolve_experiment_path(name_or_path)
    data = _read_yaml(path)
    _check_keys(str(path), data, {"experiment", "title", "metrics", "runs", "rows"}, {"claims"})
    _check_name(f"{path}: experiment", data["experiment"])
    runs: dict[str, RunSpec] = {}
    for run_id, spec in (data["runs"] or {}).items():
        where = f"{path}: runs.{run_id}"
        _check_name(where, run_id)
        _check_keys(where, spec, {"kind", "dataset"}, {"set", "stage1", "preset", "samples"})
        if spec["kind"] not in KINDS:
            raise UserError(f"{where}.kind: {spec['kind']!r} is not one of {KINDS}")
        if spec["dataset"] not in DATASETS:
            raise UserError(f"{where}.dataset: {spec['dataset']!r} is not one of {DATASETS}")
        if (spec["kind"] == "stage2") != ("stage1" in spec):
            raise UserError(f"{where}: a stage2 run names its Stage-I run (stage1: ID); others do not")
        overrides = spec.get("set") or []
        if not all(isinstance(o, str) and "=" in o for o in overrides):
            raise UserError(f"{where}.set: expected a list of key.sub=value overrides")
        if (spec["kind"] == "model") != ("preset" in spec):
            raise UserError(f"{where}: a run of kind model names its config (preset: NAME_OR_PATH); "
                            "other kinds take the scale's presets")
        if (spec["kind"] == "external") != ("samples" in spec):
            raise UserError(f"{where}: a run of kind external names its samples folder (samples: DIR), "
                            "and only it does")
        runs[str(run_id)] = RunSpec(str(run_id), spec["kind"], spec["dataset"], tuple(overrides),
                                    spec.get("stage1"), spec.get("preset"), spec.get("samples"))
    for spec in runs.values():
        if spec.stage1 is not None:
            parent = runs.get(spec.stage1)
            if parent is None or parent.kind != "stage1":
                raise UserError(f"{path}: runs.{spec.id}.stage1: {spec.stage1!r} is not a stage1 run "
                                "of this file")
            if parent.dataset != spec.dataset:
                raise UserError(f"{path}: runs.{spec.id}: its Stage-I run is on another dataset")
    rows = []
    for n, row in enumerate(data["rows"] or []):
        where = f"{path}: rows[{n}]"
        if not isinstance(row, dict) or "run" not in row or "paper" not in row:
            raise UserError(f"{where}: a row needs run: ID and paper: {{metric: {{mean, std, confirmed}}}}")
        if row["run"] not in runs:
            raise UserError(f"{where}.run: {row['run']!r} is not one of the file's runs")
        for metric, value in row["paper"].items():
            _check_keys(f"{where}.paper.{metric}", value, {"mean", "std", "confirmed"})
            if value["confirmed"] not in ("none", "mean", "all"):
                raise UserError(f"{where}.paper.{metric}.confirmed: none, mean or all")
        footnote = row.get("footnote")
        if footnote is not None and not isinstance(footnote, str):
            raise UserError(f"{where}.footnote: expected text")
        columns = {k: v for k, v in row.items() if k not in ("run", "paper", "footnote")}
        rows.append(Row(row["run"], columns, row["paper"], footnote))
    claims, seen = [], {}
    for n, claim in enumerate(data.get("claims") or []):
        where = f"{path}: claims[{n}]"
        _check_keys(where, claim, {"claim", "metric", "pairs"}, {"lower_is_better"})
        for pair in claim["pairs"]:
            if len(pair) != 2 or any(r not in runs for r in pair):
                raise UserError(f"{where}.pairs: {pair!r} must name two of the file's runs")
            key = (claim["metric"], *sorted(pair))
            if key in seen:  # the multiplicity correction would count it twice
                raise UserError(f"{where}.pairs: {list(pair)} is already a pair of {seen[key]!r}; "
                                "a pair may be tested once per metric")
            seen[key] = claim["claim"]
        claims.append(Claim(claim["claim"], claim["metric"],
                            tuple(tuple(p) for p in claim["pairs"]),
                            bool(claim.get("lower_is_better", False))))
    return Experiment(data["experiment"], data["title"], list(data["metrics"]), runs, rows, claims,
                      path)


def load_scales(path: str | Path | None = None) -> dict[str, Scale]:
    path = Path(path) if path else EXPERIMENT_DIR / "scales.yaml"
    data = _read_yaml(path)
    scales = {}
    for name, spec in data.items():
        where = f"{path}: {name}"
        _check_keys(where, spec, {"description", "data", "seeds", "presets"},
                    {"set", "pipeline", "runs", "not_run"})
        for key, table in spec["presets"].items():
            if key not in (*DATASETS, "default"):
                raise UserError(f"{where}.presets.{key}: not a dataset ({DATASETS}) or 'default'")
            bad = sorted(set(table) - set(KINDS))
            if bad:
                raise UserError(f"{where}.presets.{key}: unknown kind(s) {bad}; kinds: {KINDS}")
        overrides = {k: tuple(v) for k, v in (spec.get("set") or {}).items()}
        for k, v in overrides.items():
            if not all(isinstance(o, str) and "=" in o for o in v):
                raise UserError(f"{where}.set.{k}: expected a list of key.sub=value overrides "
                                "(keys are kinds of run or run ids)")
        runs = spec.get("runs")
        if runs is not None and not (isinstance(runs, list) and all(isinstance(r, str) for r in runs)):
            raise UserError(f"{where}.runs: expected a list of run ids")
        scales[name] = Scale(name, spec["description"], dict(spec["data"]),
                             tuple(int(s) for s in spec["seeds"]), spec["presets"], overrides,
                             parse_pipeline(spec.get("pipeline"), where),
                             tuple(runs) if runs is not None else None,
                             spec.get("not_run") or "not run at this scale")
    return scales


def merge_runs(experiments: list[Experiment]) -> dict[str, RunSpec]:
    """The runs of several experiments; one id names one run, so definitions must agree."""
    merged: dict[str, RunSpec] = {}
    for exp in experiments:
        for run_id, spec in exp.runs.items():
            if run_id in merged and merged[run_id] != spec:
                raise UserError(f"run {run_id!r} is defined differently in {exp.source} and another "
                                "experiment file; one id must name one run")
            merged[run_id] = spec
    return merged
