"""Reads what the report needs from MLflow: per training run its tags, params and latest
metrics (``eval.*`` included), the real-data ceiling, the human-study scores, and training
curves."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.tracking.mlflow_tracker import RUN_ID_FILE


def client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def runs_frame(uri: str, experiment: str, runs_root=None) -> pd.DataFrame:
    """One row per run name of the experiment: run_id, name, seed, tags.*, metrics.*.

    A name with several MLflow runs (trained again after its inputs changed, or a start that was
    stopped and set aside): the run its folder ``<runs_root>/<name>/mlflow_run_id`` names, the
    one whose checkpoints and evaluation are on disk; without that file, the latest."""
    c = client(uri)
    exp = c.get_experiment_by_name(experiment)
    if exp is None:
        return pd.DataFrame(columns=["run_id", "name"])
    rows = []
    for run in c.search_runs([exp.experiment_id], max_results=10000):
        row = {"run_id": run.info.run_id, "name": run.data.tags.get("mlflow.runName", ""),
               "status": run.info.status, "start_time": run.info.start_time}
        row.update({f"tags.{k}": v for k, v in run.data.tags.items()})
        row.update({f"params.{k}": v for k, v in run.data.params.items()})
        row.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    named = set()
    if runs_root is not None:
        for name in frame["name"].unique():
            id_file = Path(runs_root) / str(name) / RUN_ID_FILE
            if name and id_file.is_file():
                named.add(id_file.read_text().strip())
    # Run ids are unique: a run named by a folder sorts after every other start of its name.
    frame = frame.assign(_folder_run=frame["run_id"].isin(named)).sort_values(["_folder_run", "start_time"])
    return frame.drop_duplicates("name", keep="last").drop(columns="_folder_run").reset_index(drop=True)


def curves(uri: str, run_ids: dict[str, str], keys=("loss_d", "loss_g")) -> pd.DataFrame:
    c = client(uri)
    rows = []
    for name, run_id in run_ids.items():
        for key in keys:
            for m in c.get_metric_history(run_id, key):
                rows.append({"run": name, "metric": key, "step": m.step, "value": m.value})
    return pd.DataFrame(rows, columns=["run", "metric", "step", "value"])


def human_scores(uri: str, study_id: str | None) -> dict[str, float]:
    """Average human rank per model name from the latest `human score` of the study."""
    if not study_id:
        return {}
    frame = runs_frame(uri, "human-study")
    if frame.empty or "params.study_id" not in frame:
        return {}
    frame = frame[frame["params.study_id"] == study_id]
    if frame.empty:
        return {}
    row = frame.iloc[-1]
    out = {}
    for col, value in row.items():
        if col.startswith("metrics.human_rank.") and value == value:
            out[col[len("metrics.human_rank."):]] = float(value)
    return out
