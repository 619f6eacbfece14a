import json
import socket
import subprocess
import sys
import time

import pytest
from conftest import smoke_config

from harness.runner.trainer import train
from harness.tracking.mlflow_tracker import SPOOL_NAME, replay


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _read_back(uri, run_dir):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run((run_dir / "mlflow_run_id").read_text().strip())
    return client, run


def test_sqlite_store_records_config_tags_metrics_and_artifacts(smoke_data, tmp_path):
    cfg = smoke_config(smoke_data, tmp_path, "tracking.enabled=true", "train.max_steps=4",
                       "name=tracked")
    train(cfg, progress=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client, run = _read_back(uri, tmp_path / "tracked")
    assert run.info.status == "FINISHED"
    assert run.data.params["model.gf_dim"] == "8" and run.data.params["train.seed"] == "0"
    for tag in ("git_commit", "git_dirty", "data_fingerprint", "seed", "variant", "lib.torch", "device"):
        assert tag in run.data.tags, tag
    history = client.get_metric_history(run.info.run_id, "loss_d")
    assert [m.step for m in history] == [2, 4]
    local = [json.loads(ln) for ln in (tmp_path / "tracked" / "metrics.jsonl").read_text().splitlines()]
    assert [m.value for m in history] == pytest.approx([r["loss_d"] for r in local])
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "summary.json", "samples", "checkpoints"} <= artifacts


def test_unreachable_server_training_goes_on_and_replays(smoke_data, tmp_path, capsys):
    dead = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    cfg = smoke_config(smoke_data, tmp_path, "tracking.enabled=true", f"tracking.uri={dead}",
                       "train.max_steps=6", "train.log_every=1", "name=offline")
    result = train(cfg, progress=False)
    assert result.steps == 6 and (tmp_path / "offline" / "checkpoints" / "final.pt").exists()
    err = capsys.readouterr().err
    assert err.count("stackgan-bench: tracking server") == 1  # told once, not per step
    spool = tmp_path / "offline" / SPOOL_NAME
    kinds = [json.loads(ln)["kind"] for ln in spool.read_text().splitlines()]
    assert kinds.count("metrics") == 6 and kinds[0] == "params" and kinds[-1] == "end"

    uri = f"sqlite:///{tmp_path / 'later.db'}"
    # a kill mid-write leaves a torn last line; it must not block the rest forever
    with open(spool, "a") as f:
        f.write('{"kind": "metrics", "data": {"st')
    lines = spool.read_text().splitlines()
    lines.insert(3, '["not", "a", "record"]')
    lines.insert(4, '{"kind": "metrics", "data": {"loss_g": "not a number", "_step": 9}}')
    spool.write_text("\n".join(lines) + "\n")
    out = replay(tmp_path / "offline", uri, "stackgan-bench")
    assert out == {"sent": len(kinds), "malformed": 2, "rejected": 1, "reason": None, "offline": False}
    assert not spool.exists()
    assert len((tmp_path / "offline" / "tracking-spool.rejected.jsonl").read_text().splitlines()) == 3
    client, run = _read_back(uri, tmp_path / "offline")
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss_g")] == [1, 2, 3, 4, 5, 6]
    assert run.info.status == "FINISHED"


@pytest.mark.integration
def test_real_mlflow_server(smoke_data, tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--default-artifact-root", str(tmp_path / "artifacts"), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert server.poll() is None and time.time() < deadline, "mlflow server did not start"
                time.sleep(0.5)
        time.sleep(2)
        cfg = smoke_config(smoke_data, tmp_path, "tracking.enabled=true", f"tracking.uri={uri}",
                           "train.max_steps=4", "name=served")
        train(cfg, progress=False)
        assert not (tmp_path / "served" / SPOOL_NAME).exists()
        client, run = _read_back(uri, tmp_path / "served")
        assert run.info.status == "FINISHED" and run.data.params["name"] == "served"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss_d")] == [2, 4]
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_an_evaluation_of_images_no_run_made_is_kept_and_logged_to_its_own_run(tmp_path):
    """keep_standalone_result (the ceiling and external sample folders): eval.json written, the
    non-missing values logged as eval.* metrics at step 0 and the tags set on a run of that name."""
    from harness.eval.run_eval import keep_standalone_result

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = {"values": {"is_mean": 2.5, "fid": None}, "settings": {"split": "test"}}
    folder = tmp_path / "runs" / "ceiling"
    keep_standalone_result(folder, "ceiling", result, uri, "exp", {"family": "real", "eval.n_images": 48})
    assert json.loads((folder / "eval.json").read_text()) == result
    client, run = _read_back(uri, folder)
    assert run.info.run_name == "ceiling" and run.info.status == "FINISHED"
    assert run.data.metrics == {"eval.is_mean": 2.5}
    assert run.data.tags["family"] == "real" and run.data.tags["eval.n_images"] == "48"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "eval.is_mean")] == [0]


def test_report_reads_the_run_its_folder_names_not_a_later_abandoned_start(tmp_path):
    # A reproduce that started a run again and was stopped leaves a later MLflow run of the same
    # name with no evaluation; the report must read the run whose checkpoints are on disk.
    from mlflow.tracking import MlflowClient

    from reports.collect import runs_frame

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("stackgan-bench-x")
    kept = client.create_run(exp, run_name="cub-s1-64-s0")
    client.log_metric(kept.info.run_id, "eval.is", 3.0)
    client.set_terminated(kept.info.run_id)
    later = client.create_run(exp, run_name="cub-s1-64-s0")
    client.set_terminated(later.info.run_id, status="KILLED")
    (tmp_path / "cub-s1-64-s0").mkdir()

    assert runs_frame(uri, "stackgan-bench-x")["run_id"].tolist() == [later.info.run_id]
    (tmp_path / "cub-s1-64-s0" / "mlflow_run_id").write_text(kept.info.run_id)
    frame = runs_frame(uri, "stackgan-bench-x", tmp_path)
    assert frame["run_id"].tolist() == [kept.info.run_id]
    assert frame["metrics.eval.is"].tolist() == [3.0]
