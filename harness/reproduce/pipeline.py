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

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import UserError
from harness.experiments.plan import PlannedRun, plan_runs
from harness.experiments.spec import Experiment, Scale, load_experiment, load_scales, merge_runs
from harness.reproduce.stamps import Stamps, code_hash, inputs_hash, source_fingerprint, weights_hash

TRAIN_CODE = ("stackgan", "baselines", "harness/runner", "harness/data", "harness/config")
EVAL_CODE = ("harness/eval",)
# Runs whose samples the report shows under several noise vectors (diversity from CA).
DIVERSITY_RUNS = ("cub-sg-256", "cub-sg-256-noca")


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


class Pipeline:
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

    def dataset(self) -> None:
        root = self.data_root
        if self.opts.data:
            def check() -> dict:
                from harness.data.check import check_dataset

                report = check_dataset(root, progress=self.opts.progress)
                if not report.ok:
                    raise UserError(f"{root}: fails `data check`:\n  " + "\n  ".join(report.problems[:20]))
                return {}

            self.step("dataset", {"data": str(root.resolve()), "fingerprint": source_fingerprint(root)},
                      [root], check)
            return
        synth = self.pipe.synth

        def render() -> dict:
            from harness.data.synthbirds.build import SynthOptions, build_synthbirds

            build_synthbirds(root, SynthOptions(**synth), overwrite=root.exists(),
                             progress=self.opts.progress)
            return {}

        self.step("dataset", {"synth": synth, "code": code_hash("harness/data/synthbirds"),
                              "root": str(root)}, [root / "manifest.json"], render)

    def _released_embeddings(self) -> bool:
        from harness.data.sources import EMBEDDINGS_FILE, load_index

        out = load_index(self.data_root, "train").split_dir / EMBEDDINGS_FILE
        return out.exists() and not out.with_name(out.name + ".meta.json").exists()

    def text_encoders(self) -> None:
        from harness.text.train import TextTrainOptions, train_text_encoder

        base = {"data": self.keys["dataset"], "code": code_hash("harness/text", "harness/data")}
        preset = self.pipe.text_preset
        encoder = self.root / "text-encoder"
        if self._released_embeddings():
            self.log.add("[released] caption embeddings found in the dataset: used as they are")
            self.keys["text-encoder"] = inputs_hash({"released": source_fingerprint(self.data_root)})
        else:
            def train_and_embed() -> dict:
                from harness.text.embed import embed_dataset

                metrics = train_text_encoder(self.data_root, encoder, TextTrainOptions(
                    preset=preset, steps=self.pipe.text_steps, seed=0, check_data=False),
                    progress=self.opts.progress)
                embed_dataset(self.data_root, encoder / "encoder.pt", progress=self.opts.progress)
                return {"metrics": metrics}

            self.step("text-encoder", {**base, "preset": preset, "steps": self.pipe.text_steps},
                      [encoder / "encoder.pt"], train_and_embed)
        evaluator = self.root / "text-encoder-eval"
        size = self.evaluator_size
        self.step("eval-encoder", {**base, "preset": preset, "steps": self.pipe.eval_text_steps,
                                   "seed": 1, **({"size": size} if size else {})},
                  [evaluator / "encoder.pt"],
                  lambda: {"metrics": train_text_encoder(
                      self.data_root, evaluator, TextTrainOptions(
                          preset=preset, steps=self.pipe.eval_text_steps, seed=1,
                          check_data=False, image_size=size), progress=self.opts.progress)})

    def eval_models(self) -> None:
        from harness.eval.classifier import ClassifierOptions, train_classifier

        base = {"data": self.keys["dataset"], "code": code_hash(*EVAL_CODE, "harness/data")}
        out = self.root / "classifier"
        preset = self.pipe.classifier_preset
        steps = self.pipe.classifier_steps
        size = self.evaluator_size
        sized = {"size": size} if size else {}
        # Width and batch of the small classifiers (default 32 and 64): at 128 px a narrower,
        # smaller-batch classifier keeps their training within the CPU budget.
        shape = {k: v for k, v in (("width", self.pipe.classifier_width),
                                   ("batch_size", self.pipe.classifier_batch_size)) if v is not None}
        self.step("classifier", {**base, "preset": preset, "steps": steps, **sized, **shape},
                  [out / "classifier.pt"],
                  lambda: {"metrics": train_classifier(self.data_root, out, ClassifierOptions(
                      preset=preset, steps=steps, size=size, **shape), progress=self.opts.progress)})
        self.has_attributes = (self.data_root / "CUB_200_2011" / "attributes"
                               / "caption_attributes.jsonl").exists()
        if self.has_attributes:
            from harness.eval.attributes import AttributeOptions, train_attribute_classifier

            steps = self.pipe.attribute_steps
            attr = self.root / "attributes"
            # Novel-species renders (synthbirds): the classifier's default is as many as the real
            # training images; a scale may ask for more (attribute_renders).
            renders = ({"renders": self.pipe.attribute_renders}
                       if self.pipe.attribute_renders is not None else {})
            options = AttributeOptions(steps=steps, **({"image_size": size} if size else {}), **shape,
                                       **renders)
            self.step("attributes", {**base, "steps": steps, **sized, **shape, **renders},
                      [attr / "attributes.pt"],
                      lambda: {"metrics": train_attribute_classifier(
                          self.data_root, attr, options, progress=self.opts.progress)})

    def metric_validity(self) -> None:
        """The rulers checked before any model is judged: real test images against controlled
        degradations, at the evaluators' size (``validity:`` in the scale's pipeline)."""
        validity = self.pipe.validity
        if validity is None:
            return
        from dataclasses import asdict

        from harness.eval.validity import ValidityRequest, log_report, validate_metrics, write_report

        size = self.evaluator_size or self.pipe.eval.size or 64
        known = ("is", "fid", "kid", "rprec", "attr")
        metrics = tuple(m for m in self.pipe.eval.metrics
                        if m in known and (m != "attr" or self.has_attributes))
        request = ValidityRequest(
            data=str(self.data_root), size=size, classifier=str(self.root / "classifier" / "classifier.pt"),
            rprec_encoder=str(self.root / "text-encoder-eval" / "encoder.pt") if "rprec" in metrics else None,
            attr_classifier=str(self.root / "attributes" / "attributes.pt") if "attr" in metrics else None,
            metrics=metrics, bootstrap=validity.bootstrap)
        out = self.root / "validity"

        def run() -> dict:
            report = validate_metrics(request, progress=self.opts.progress)
            write_report(report, out)
            log_report(report, out, experiment=self.tracking_experiment)
            return {"checks": report["checks"]}

        upstream = {k: self.keys[k] for k in ("classifier", "eval-encoder", "attributes") if k in self.keys}
        self.step("validity", {"request": asdict(request), "upstream": upstream,
                               "code": code_hash(*EVAL_CODE)}, [out / "validity.json"], run)

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
                         ["data.check=false", *self._validate_overrides(), *self.opts.extra],
                         tracking_experiment=self.tracking_experiment)

    def _validate_overrides(self) -> list[str]:
        every = self.pipe.validate.every
        return [f"train.validate_every={every}"] if every else []

    def train_runs(self, planned: list[PlannedRun]) -> None:
        from harness.config.load import to_dict
        from harness.runner.checkpoint import CheckpointStore

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
        if not self.pipe.validate.every:
            return None
        size = self.evaluator_size or self.pipe.eval.size or 64
        return {"classifier": str(self.root / "classifier" / "classifier.pt"), "size": size,
                "images": self.pipe.validate.images}

    def _eval_request(self):
        from harness.eval.evaluate import EvalRequest
        from harness.eval.protocols import resolve

        ev = self.pipe.eval
        self.protocol = resolve(ev.protocol, ev.captions_per_image, ev.per_caption)
        metrics = [m for m in ev.metrics
                   if m != "attr" or self.has_attributes]
        return EvalRequest(
            fake="", metrics=tuple(metrics), data=str(self.data_root), split="test",
            classifier=str(self.root / "classifier" / "classifier.pt"),
            rprec_encoder=str(self.root / "text-encoder-eval" / "encoder.pt"),
            attr_classifier=str(self.root / "attributes" / "attributes.pt") if self.has_attributes else None,
            size=ev.size, splits=ev.splits, kid_subset_size=ev.kid_subset_size,
            seed=0), self.pipe.declared.get("eval") or {}

    def evaluate_runs(self, planned: list[PlannedRun]) -> None:
        from dataclasses import asdict

        from harness.eval.run_eval import evaluate_run

        request, ev = self._eval_request()
        upstream = {k: self.keys[k] for k in ("classifier", "eval-encoder", "attributes") if k in self.keys}
        for p in planned:
            if p.skipped:
                continue
            if p.external:
                self._evaluate_external(p, request, ev, upstream)
                continue
            final = p.run_dir / "checkpoints" / "final.pt"
            inputs = {"checkpoint": weights_hash(final), "request": asdict(request), "eval": ev,
                      "upstream": upstream, "code": code_hash(*EVAL_CODE, "harness/runner")}
            self.step(f"eval:{p.name}", inputs, [p.run_dir / "eval.json"],
                      lambda p=p: {"values": evaluate_run(
                          p.run_dir, request, self.protocol, progress=self.opts.progress)["values"]})
        self._ceiling(request, ev, upstream)
        self._diversity_samples(planned)

    def decide_seeds(self, planned: list[PlannedRun]) -> None:
        """``--decide``: seeds added where a claim's pair is not yet precise (IS pairs; the
        human-rank pairs are decided over raters), the most informative per CPU-second first.
        Writes ``<runs>/decide.json``: every step, the seeds each row got and why it stopped."""
        from harness.atomic import write_text_atomic
        from harness.reproduce.decide import PairState, decide
        from reports.stats import ALPHA
        from reports.tables import claim_design

        runs = merge_runs(self.experiments)
        trained = {p.spec.id for p in planned if not p.skipped and not p.external}

        def value(row: str, seed: int) -> float | None:
            path = self.root / f"{row}-s{seed}" / "eval.json"
            if not path.exists():
                return None
            return json.loads(path.read_text())["values"].get("is_mean")

        values: dict[str, dict[int, float]] = {}
        for row in trained:
            for seed in range(self.opts.max_seeds):
                v = value(row, seed)
                if v is not None:
                    values.setdefault(row, {})[seed] = v
        pairs = []
        for exp in self.experiments:
            for claim in exp.claims:
                if claim.metric != "is":
                    continue
                design = claim_design(exp, claim, {r: {"IS": v} for r, v in values.items()})
                for k, (better, worse) in enumerate(claim.pairs):
                    if better in trained and worse in trained and design["delta"][k] == design["delta"][k]:
                        pairs.append(PairState(better, worse, design["delta"][k], design["paired"][k]))
        for pair in pairs:  # a fixed, conservative level: Holm's would depend on the p-values
            pair.level = ALPHA / max(len(pairs), 1)

        def cost(row: str) -> float:
            seconds = [self.stamps.get(f"{kind}:{row}-s{s}") or {} for kind in ("train", "eval")
                       for s in values.get(row, {})]
            known = [x["seconds"] for x in seconds if "seconds" in x]
            return sum(known) / max(len(values.get(row, {})), 1) if known else 600.0

        def needs(row: str) -> list[str]:
            return [runs[row].stage1] if runs[row].stage1 else []

        def train(row: str, seed: int) -> tuple[float, float]:
            started = time.time()
            one = plan_runs({row: runs[row]}, self.scale, self.root, {"cub": str(self.data_root)},
                            ["data.check=false", *self._validate_overrides(), *self.opts.extra],
                            seeds=(seed,), tracking_experiment=self.tracking_experiment)
            self.train_runs(one)
            self.evaluate_runs(one)
            return value(row, seed), time.time() - started

        budget = math.inf if self.opts.budget_hours is None else self.opts.budget_hours * 3600
        log = decide(pairs, values, train, cost, needs, self.opts.max_seeds, budget)
        self.log.add(f"[decide] {len(log.steps)} runs added in {log.seconds:.0f} s; stopped: {log.stopped}")
        write_text_atomic(self.root / "decide.json", json.dumps({
            "rule": "add seeds while a pair's interval half-width (at α/m, m pairs) is at least δ/2",
            "pairs": [{"better": p.better, "worse": p.worse, "delta": p.delta, "paired": p.paired,
                       "level": p.level} for p in pairs],
            "steps": log.steps, "stopped": log.stopped, "seconds": log.seconds,
            "seeds": {row: sorted(v) for row, v in sorted(values.items())},
            "max_seeds": self.opts.max_seeds, "budget_hours": self.opts.budget_hours}, indent=1))

    def _evaluate_external(self, p: PlannedRun, request, ev: dict, upstream: dict) -> None:
        """An external row: its samples folder evaluated like a run's samples, the result kept
        in ``<runs>/<row>/eval.json`` and logged to an MLflow run of the row's name."""
        from dataclasses import asdict, replace

        from harness.eval.evaluate import evaluate
        from harness.eval.run_eval import keep_standalone_result
        from harness.tracking.mlflow_tracker import default_uri

        samples = Path(p.external)
        manifest = samples / "manifest.jsonl"
        content = manifest.read_bytes() if manifest.exists() else b""

        def run() -> dict:
            result = evaluate(replace(request, fake=str(samples)))
            result["samples"] = str(samples.resolve())
            result["settings"]["external"] = True
            keep_standalone_result(p.run_dir, p.name, result, default_uri(self.root),
                                   self.tracking_experiment,
                                   {"family": "external", "samples": str(samples.resolve()),
                                    "seed": p.seed, "eval.n_images": _lines(manifest)})
            return {"values": result["values"]}

        self.step(f"eval:{p.name}", {"samples": str(samples.resolve()),
                                     "manifest": hashlib.sha256(content).hexdigest(),
                                     "request": asdict(request), "eval": ev, "upstream": upstream,
                                     "code": code_hash(*EVAL_CODE)}, [p.run_dir / "eval.json"], run)

    def _diversity_samples(self, planned: list[PlannedRun], captions: int = 3, noise: int = 6) -> None:
        """The same few test captions under several noise vectors, for the report's figure."""
        from harness.runner.sample import sample_run

        for p in planned:
            if p.skipped or p.spec.id not in DIVERSITY_RUNS:
                continue
            out = p.run_dir / "figure-samples" / "diversity"
            final = p.run_dir / "checkpoints" / "final.pt"

            def run(p=p, out=out) -> dict:
                from harness.data.sources import load_index

                keys = load_index(self.data_root, "test").keys[:captions]
                if out.exists():
                    import shutil

                    shutil.rmtree(out)
                sample_run(p.run_dir, out, split="test", per_caption=noise,
                           caption_ids=[f"{k}#0" for k in keys], progress=False)
                return {}

            self.step(f"samples:{p.name}", {"checkpoint": weights_hash(final), "captions": captions,
                                            "noise": noise, "code": code_hash("harness/runner")},
                      [out / "manifest.jsonl"], run)

    def _ceiling(self, request, ev: dict, upstream: dict) -> None:
        from dataclasses import asdict, replace

        from harness.eval.evaluate import ceiling_request, evaluate
        from harness.eval.run_eval import keep_standalone_result
        from harness.tracking.mlflow_tracker import default_uri

        folder = self.root / "ceiling"

        def run() -> dict:
            ceiling = ceiling_request(replace(request, size=request.size or 256),
                                      self.protocol.captions_per_image)
            result = evaluate(ceiling)
            result["settings"].update({**self.protocol.settings(), "per_caption": 1})
            keep_standalone_result(folder, "ceiling", result, default_uri(self.root),
                                   self.tracking_experiment,
                                   {"family": "real", "row": "real images (ceiling)",
                                    "eval.n_images": _lines(Path(ceiling.fake) / "manifest.jsonl")})
            return {"values": result["values"]}

        self.step("eval:ceiling", {"request": asdict(request), "eval": ev, "upstream": upstream,
                                   "data": self.keys["dataset"], "code": code_hash(*EVAL_CODE)},
                  [folder / "eval.json"], run)

    def human_study(self, planned: list[PlannedRun]) -> None:
        from harness.human.study import StudyOptions, make_study

        # The models of the experiments that report a human rank (Table 1), on one dataset.
        rated = [row.run for exp in self.experiments if "human_rank" in exp.metrics for row in exp.rows]
        first_seed = self.scale.seeds[0]
        chosen = [p for p in planned if p.spec.id in rated and not p.skipped and p.seed == first_seed]
        datasets = {p.spec.dataset for p in chosen}
        chosen = [p for p in chosen if p.spec.dataset == sorted(datasets)[0]] if datasets else []
        if len(chosen) < 2:
            self.log.add("[skip] human study: fewer than two rated models at this scale")
            return
        human = self.pipe.human
        out = self.root / "human-study"
        def identity(p: PlannedRun) -> str:
            if p.external:  # a samples folder: its manifest says which images
                return hashlib.sha256((Path(p.external) / "manifest.jsonl").read_bytes()).hexdigest()
            return weights_hash(p.run_dir / "checkpoints" / "final.pt")

        inputs = {"models": {p.name: identity(p) for p in chosen},
                  "options": dict(self.pipe.declared.get("human") or {}), "code": code_hash("harness/human")}

        def run() -> dict:
            if out.exists():
                out.rename(out.with_name(f"human-study.replaced-{time.strftime('%Y%m%d-%H%M%S')}"))
            made = make_study(StudyOptions(
                sources=[p.external or str(p.run_dir) for p in chosen], names=[p.spec.id for p in chosen],
                out=str(out), captions=human.captions, per_class=human.per_class,
                per_model=human.per_model, raters=human.raters,
                data=str(self.data_root), progress=self.opts.progress))
            return {"study_id": made["study_id"]}

        self.step("human-study", inputs, [out / "key.json"], run)

    def make_report(self) -> None:
        from reports.build import build_report

        inputs = {"evals": {k: v for k, v in self.keys.items() if k.startswith(("eval:", "train:"))},
                  "human": self.keys.get("human-study"), "code": code_hash("reports"),
                  "experiments": [str(e.source) for e in self.experiments]}
        outputs = [self.reports_root / e.name / "index.html" for e in self.experiments]
        self.step("report", inputs, outputs, lambda: build_report(
            [e.name for e in self.experiments], self.opts.preset, self.root,
            self.reports_root, progress=self.opts.progress))

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


def _wall_seconds(run_dir: Path) -> float:
    """The wall time the run's last training call took (0 when it wrote no summary)."""
    try:
        return float(json.loads((run_dir / "summary.json").read_text())["wall_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def _lines(manifest: Path) -> int | None:
    """Rows of a samples manifest (None without one)."""
    if not manifest.exists():
        return None
    with open(manifest, encoding="utf-8") as f:
        return sum(1 for _ in f)
