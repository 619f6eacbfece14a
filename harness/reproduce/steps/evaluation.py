"""Sampling and evaluating every run, the external sample folders and the real images (the ceiling);
the diversity samples of the report.

A part of ``Pipeline`` (harness.reproduce.pipeline): the methods read and write its state
(options, scale, stamps, keys, log)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.experiments.plan import PlannedRun
from harness.reproduce.stamps import code_hash, weights_hash
from harness.reproduce.steps.common import DIVERSITY_RUNS, EVAL_CODE


class EvaluationSteps:
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
                                      self.protocol.captions_per_image, self.protocol.per_caption)
            result = evaluate(ceiling)
            result["settings"].update({**self.protocol.settings(), "per_caption": 1})
            keep_standalone_result(folder, "ceiling", result, default_uri(self.root),
                                   self.tracking_experiment,
                                   {"family": "real", "row": "real images (ceiling)",
                                    "eval.n_images": _lines(Path(ceiling.fake) / "manifest.jsonl"),
                                    "eval.isc_splits": ceiling.splits})
            return {"values": result["values"]}

        self.step("eval:ceiling", {"request": asdict(request), "eval": ev, "upstream": upstream,
                                   "data": self.keys["dataset"], "code": code_hash(*EVAL_CODE)},
                  [folder / "eval.json"], run)


def _lines(manifest: Path) -> int | None:
    """Rows of a samples manifest (None without one)."""
    if not manifest.exists():
        return None
    with open(manifest, encoding="utf-8") as f:
        return sum(1 for _ in f)
