"""``--decide``: seeds added where a claim's pair is not yet precise.

A part of ``Pipeline`` (harness.reproduce.pipeline): the methods read and write its state
(options, scale, stamps, keys, log)."""

from __future__ import annotations

import json
import math
import time

from harness.experiments.plan import PlannedRun, plan_runs
from harness.experiments.spec import merge_runs


class SeedSteps:
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
                            self.run_overrides(),
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
