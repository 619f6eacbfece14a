"""MLflow tracking that never stops training.

Every call goes through ``_send``. When the tracking server cannot be reached, the record is
appended to ``<run>/tracking-spool.jsonl`` instead, the user is told once, and later calls try to
flush the spool (at most every ``retry_seconds``); ``stackgan-bench tracking replay RUN`` sends
whatever is left. The client is used directly (no global active run), so several trackers can
live in one process.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

SPOOL_NAME = "tracking-spool.jsonl"
RUN_ID_FILE = "mlflow_run_id"


def default_uri(runs_dir: str | os.PathLike) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or \
        f"sqlite:///{Path(runs_dir).resolve() / 'mlflow.db'}"


def local_artifact_location(uri: str) -> str | None:
    """Artifacts of a local SQLite store go beside the database (``mlartifacts/``), not into
    ``./mlruns`` of whatever folder the command ran in (MLflow's default)."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").resolve().as_uri()


def _quick_failing_http() -> None:
    # MLflow's REST client retries for minutes by default; a lost server must not stall a step.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


class Tracker:
    def __init__(self, uri: str, experiment: str, run_dir: str | os.PathLike, run_name: str,
                 parent_run_id: str | None = None, retry_seconds: float = 30.0,
                 enabled: bool = True, reopen: bool = True):
        _quick_failing_http()
        self.uri, self.experiment, self.run_name = uri, experiment, run_name
        self.run_dir = Path(run_dir)
        self.spool = self.run_dir / SPOOL_NAME
        self.parent_run_id = parent_run_id
        self.retry_seconds = retry_seconds
        self.enabled = enabled
        # reopen: a resumed training run is RUNNING again; evaluation attaches to a finished
        # run without changing its status.
        self.reopen = reopen
        self.run_id: str | None = None
        self._client = None
        self._offline_since: float | None = None
        self._warned = False

    # ------------------------------------------------------------------ connection
    def _get_client(self):
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def _ensure_run(self) -> str:
        if self.run_id is not None:
            return self.run_id
        client = self._get_client()
        id_file = self.run_dir / RUN_ID_FILE
        if id_file.exists():  # a resumed run continues its MLflow run
            self.run_id = id_file.read_text().strip()
            if self.reopen:
                client.update_run(self.run_id, status="RUNNING")
            return self.run_id
        exp = client.get_experiment_by_name(self.experiment)
        exp_id = exp.experiment_id if exp else client.create_experiment(
            self.experiment, artifact_location=local_artifact_location(self.uri))
        tags = {"mlflow.runName": self.run_name}
        if self.parent_run_id:
            tags["mlflow.parentRunId"] = self.parent_run_id
        run = client.create_run(exp_id, tags=tags, run_name=self.run_name)
        self.run_id = run.info.run_id
        self.run_dir.mkdir(parents=True, exist_ok=True)
        id_file.write_text(self.run_id)
        return self.run_id

    def _apply(self, record: dict) -> None:
        client = self._get_client()
        run_id = self._ensure_run()
        kind, data = record["kind"], record["data"]
        if kind == "params":
            from mlflow.entities import Param

            items = [Param(k, str(v)[:6000]) for k, v in data.items()]
            for i in range(0, len(items), 100):
                client.log_batch(run_id, params=items[i:i + 100])
        elif kind == "tags":
            from mlflow.entities import RunTag

            client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in data.items()])
        elif kind == "metrics":
            from mlflow.entities import Metric

            ts = int(record.get("time", time.time()) * 1000)
            client.log_batch(run_id, metrics=[Metric(k, float(v), ts, int(data["_step"]))
                                              for k, v in data.items() if k != "_step"])
        elif kind == "artifact":
            client.log_artifact(run_id, data["path"], data.get("artifact_path"))
        elif kind == "end":
            client.set_terminated(run_id, status=data["status"])
        else:
            raise ValueError(f"unknown spool record {kind}")

    def _send(self, kind: str, data: dict) -> None:
        if not self.enabled:
            return
        record = {"kind": kind, "data": data, "time": time.time()}
        if self._offline_since is not None:
            if time.time() - self._offline_since < self.retry_seconds or not self.flush():
                self._append_spool(record)
                return
        try:
            self._apply(record)
        except Exception as exc:  # noqa: BLE001 - any tracking failure must not stop training
            self._go_offline(exc)
            self._append_spool(record)

    def _go_offline(self, exc: Exception) -> None:
        self._offline_since = time.time()
        if not self._warned:
            self._warned = True
            print(f"stackgan-bench: tracking server {self.uri} unreachable "
                  f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); training goes on, "
                  f"records are kept in {self.spool} and sent when it is back "
                  f"(or: stackgan-bench tracking replay {self.run_dir})", file=sys.stderr)

    def _append_spool(self, record: dict) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.spool, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def flush(self) -> bool:
        """Send spooled records in order; True when the spool is empty afterwards. A line that
        is not a record (torn by a kill mid-write) or a record the server refuses is moved to
        ``tracking-spool.rejected.jsonl`` and counted in ``self.flushed``: only an unreachable
        server stops the replay."""
        self.flushed = {"sent": 0, "malformed": 0, "rejected": 0, "reason": None}
        if not self.spool.exists():
            self._offline_since = None
            return True
        lines = self.spool.read_text(encoding="utf-8", errors="replace").splitlines()
        rejected = []
        for n, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or "kind" not in record or "data" not in record:
                    raise ValueError("not a spool record")
            except ValueError:
                self.flushed["malformed"] += 1
                rejected.append(line)
                continue
            try:
                self._apply(record)
            except Exception as exc:  # noqa: BLE001
                if _unreachable(exc):
                    self._offline_since = time.time()
                    self.flushed["reason"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                    self._keep(lines[n:], rejected)
                    return False
                self.flushed["rejected"] += 1
                rejected.append(line)
                continue
            self.flushed["sent"] += 1
        self._keep([], rejected)
        self._offline_since = None
        return True

    def _keep(self, rest: list[str], rejected: list[str]) -> None:
        if rejected:
            with open(self.spool.with_name("tracking-spool.rejected.jsonl"), "a", encoding="utf-8") as f:
                f.write("".join(ln + "\n" for ln in rejected))
        if rest:
            tmp = self.spool.with_suffix(".tmp")
            tmp.write_text("".join(ln + "\n" for ln in rest), encoding="utf-8")
            os.replace(tmp, self.spool)
        else:
            self.spool.unlink(missing_ok=True)

    # ------------------------------------------------------------------ public API
    def log_params(self, params: dict[str, Any]) -> None:
        self._send("params", params)

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._send("tags", tags)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._send("metrics", {**metrics, "_step": step})

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        self._send("artifact", {"path": str(Path(path).resolve()), "artifact_path": artifact_path})

    def end(self, status: str = "FINISHED") -> None:
        self._send("end", {"status": status})

    @property
    def offline(self) -> bool:
        return self._offline_since is not None


def _unreachable(exc: Exception) -> bool:
    """The tracking server could not be reached (as opposed to answering with a refusal)."""
    import requests

    if isinstance(exc, requests.exceptions.RequestException | ConnectionError | TimeoutError):
        return True
    text = str(exc)
    return "API request to" in text and ("failed with exception" in text or "Max retries" in text)


def replay(run_dir: str | os.PathLike, uri: str, experiment: str) -> dict:
    """Send a run's spooled records; returns counts (sent, malformed, rejected) and whether the
    server was reachable (``offline`` with the reason when not)."""
    tracker = Tracker(uri, experiment, run_dir, Path(run_dir).name)
    done = tracker.flush()
    return {**tracker.flushed, "offline": not done}
