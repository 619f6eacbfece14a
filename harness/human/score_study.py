"""``human score``: validate the responses of a study, score them, write and log the results."""

from __future__ import annotations

import json
from pathlib import Path

from harness.atomic import write_text_atomic
from harness.human.responses import read_responses
from harness.human.scoring import markdown_table, per_class_table, score
from harness.human.study import load_study


def score_study(folder: str | Path, paths: list[str | Path], bootstrap: int = 2000, seed: int = 0,
                tracking_uri: str | None = None, experiment: str = "human-study",
                track: bool = True) -> dict:
    folder = Path(folder)
    study, key = load_study(folder)
    read = read_responses(study, key, paths)
    result = score(study, key, read.accepted, bootstrap=bootstrap, seed=seed)
    result["study_id"] = study["study_id"]
    result["accepted"] = [r.source for r in read.accepted]
    result["excluded"] = [{"source": s, "reason": why} for s, why in read.rejected]
    result["model_sources"] = {m: v["source"] for m, v in key["models"].items()}
    out = folder / "scores"
    write_text_atomic(out / "score.json", json.dumps(result, indent=2))
    table = markdown_table(result) if result["models"] else "no valid responses\n"
    if result.get("per_class"):
        table += "\nAverage rank per test class (all raters):\n\n" + per_class_table(result)
    write_text_atomic(out / "score.md", table)
    if track and result["models"]:
        from harness.tracking.mlflow_tracker import Tracker, default_uri

        tracker = Tracker(tracking_uri or default_uri(folder.parent), experiment, out,
                          f"human-{study['study_id']}", reopen=False)
        tracker.log_params({"study_id": study["study_id"], "models": ",".join(result["models"]),
                            "per_model": study["per_model"], "bootstrap": bootstrap, "seed": seed})
        tracker.set_tags({f"model.{m}": src for m, src in result["model_sources"].items()})
        metrics = {"raters_valid": result["raters"], "raters_excluded": len(result["excluded"]),
                   "items": result["items"]}
        for m, row in result["models"].items():
            metrics[f"human_rank.{m}"] = row["mean_rank"]
            metrics[f"human_rank_ci_low.{m}"] = row["ci95"][0]
            metrics[f"human_rank_ci_high.{m}"] = row["ci95"][1]
        metrics.update({k: v for k, v in result["agreement"].items() if v == v})
        tracker.log_metrics(metrics, step=0)
        tracker.log_artifact(out / "score.json")
        tracker.log_artifact(out / "score.md")
        tracker.end()
        result["mlflow_run_id"] = tracker.run_id
    return result
