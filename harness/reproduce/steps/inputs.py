"""The inputs every model and metric needs: the dataset, the text encoders and embeddings, the
evaluation models, and the rulers' check against degradations.

A part of ``Pipeline`` (harness.reproduce.pipeline): the methods read and write its state
(options, scale, stamps, keys, log)."""

from __future__ import annotations

from harness.errors import UserError
from harness.reproduce.stamps import code_hash, inputs_hash, source_fingerprint
from harness.reproduce.steps.common import EVAL_CODE


class InputSteps:
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
