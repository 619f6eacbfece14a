"""What reproduce hands to people: the human-study materials and the report.

A part of ``Pipeline`` (harness.reproduce.pipeline): the methods read and write its state
(options, scale, stamps, keys, log)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from harness.experiments.plan import PlannedRun
from harness.reproduce.stamps import code_hash, weights_hash


class OutputSteps:
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
