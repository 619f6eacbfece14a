import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import smoke_config
from PIL import Image

from harness.cli.main import main
from harness.experiments.sweep import expand, parse_grid
from harness.runner.sample import sample_run
from harness.runner.trainer import train


def test_grid_expansion_names_and_overrides():
    tasks = expand("q", [0, 1], parse_grid(["model.kl_weight=1,2"]), ["data.root=x"])
    assert [t.name for t in tasks] == ["q-kl_weight1-s0", "q-kl_weight1-s1", "q-kl_weight2-s0",
                                       "q-kl_weight2-s1"]
    assert tasks[1].overrides == ["data.root=x", "model.kl_weight=1", "train.seed=1", "name=q-kl_weight1-s1"]


@pytest.mark.integration
def test_sweep_runs_nested_children_and_aggregates(smoke_data, tmp_path, capsys):
    # As SLURM jobs, through submitit's local executor (two at once): the sweep's children carry
    # their parent run id into the jobs.
    args = ["sweep", "--config", "smoke_stage1", "--seeds", "0,1", f"data.root={smoke_data}",
            f"runs_dir={tmp_path}", "data.check=false", "train.max_steps=2",
            "--executor", "slurm", "--slurm-cluster", "local", "--workers", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "[2 seeds]" in out and "loss_d" in out and "±" in out
    summary = json.loads((tmp_path / "smoke_stage1-sweep.json").read_text())
    runs = summary["table"][0]
    assert runs["n"] == 2 and runs["loss_d"]["n"] == 2
    finals = [json.loads((tmp_path / n / "summary.json").read_text())["final_stats"]["loss_d"]
              for n in summary["tasks"]]
    assert runs["loss_d"]["mean"] == pytest.approx(sum(finals) / 2)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent = (tmp_path / "smoke_stage1-sweep" / "mlflow_run_id").read_text()
    for name in summary["tasks"]:
        child = client.get_run((tmp_path / name / "mlflow_run_id").read_text())
        assert child.data.tags["mlflow.parentRunId"] == parent


@pytest.fixture(scope="module")
def stage2_run(smoke_data, tmp_path_factory):
    runs = tmp_path_factory.mktemp("s2")
    train(smoke_config(smoke_data, runs, "train.max_steps=2"), progress=False)
    train(smoke_config(smoke_data, runs, "train.max_steps=2", f"train.stage1_run={runs}/smoke_stage1",
                       preset="smoke_stage2"), progress=False)
    return runs / "smoke_stage2"


def test_a_stage2_run_records_the_stage1_checkpoint_it_trained_on(stage2_run):
    prov = json.loads((stage2_run / "provenance.json").read_text())
    stage1 = stage2_run.parent / "smoke_stage1" / "checkpoints" / "final.pt"
    assert prov["stage"] == 2 and Path(prov["stage1_checkpoint"]).resolve() == stage1.resolve()


def test_sampling_is_reproducible_and_batch_independent(stage2_run, tmp_path):
    a = sample_run(stage2_run, tmp_path / "a", split="test", per_caption=2, captions_per_image=2,
                   limit=3, progress=False)
    b = sample_run(stage2_run, tmp_path / "b", split="test", per_caption=2, captions_per_image=2,
                   limit=3, batch_size=5, progress=False)
    assert a["num_images"] == b["num_images"] == 12 and a["image_size"] == 128
    rows_a = [json.loads(ln) for ln in (tmp_path / "a" / "manifest.jsonl").read_text().splitlines()]
    rows_b = [json.loads(ln) for ln in (tmp_path / "b" / "manifest.jsonl").read_text().splitlines()]
    assert rows_a == rows_b
    for row in rows_a:
        assert (tmp_path / "a" / row["file"]).read_bytes() == (tmp_path / "b" / row["file"]).read_bytes()
    assert {"file", "caption_id", "caption", "class_id", "noise_seed", "stage1_file"} <= rows_a[0].keys()
    digest = hashlib.sha256()
    for row in rows_a:
        for name in (row["file"], row["stage1_file"]):
            digest.update(np.asarray(Image.open(tmp_path / "a" / name).convert("RGB")).tobytes())
    assert a["pixels_sha256"] == b["pixels_sha256"] == digest.hexdigest()
    assert Image.open(tmp_path / "a" / rows_a[0]["stage1_file"]).size == (64, 64)
    # Any single image regenerates from its recorded noise seed; other seeds give other images.
    from harness.data.sources import load_index
    from harness.runner.build import load_run

    cfg, model, _ = load_run(stage2_run)
    index = load_index(cfg.data.root, "test")
    emb = torch.from_numpy(index.load_embeddings()[0, 0])[None]
    row = rows_a[1]
    outs = []
    for seed in (row["noise_seed"], row["noise_seed"] + 1):
        noise = model.sample_noise(1, torch.Generator().manual_seed(seed))
        outs.append(model.generate(emb, noise["z"], noise.get("eps1"), noise.get("eps2"))["stage2"][0])
    pixels = (outs[0] * 0.5 + 0.5).mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
    saved = torch.from_numpy(np.array(Image.open(tmp_path / "a" / row["file"])))
    assert torch.equal(pixels, saved)
    assert (outs[0] - outs[1]).abs().max() > 0


def test_model_summary_cli(capsys):
    assert main(["model", "summary", "--config", "birds_stage1_pytorch", "--json", "--no-flops"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["networks"]["generator"]["total"] == 10_301_248
    assert main(["model", "summary", "--config", "smoke_stage1"]) == 0
    assert "GFLOP" in capsys.readouterr().out


def test_protocols_choose_captions_and_images_per_caption(stage2_run, tmp_path):
    from harness.errors import UserError
    from harness.eval.protocols import resolve

    out = tmp_path / "tf"
    assert main(["sample", "--run", str(stage2_run), "--split", "test", "--limit", "3",
                 "--protocol", "stackgan-tf", "--out", str(out)]) == 0
    rows = [json.loads(ln) for ln in (out / "manifest.jsonl").read_text().splitlines()]
    # The official TF evaluation: the first caption of each test image, 8 images each.
    assert len(rows) == 3 * 8 and all(r["caption_id"].endswith("#0") for r in rows)
    assert sorted({r["sample_index"] for r in rows}) == list(range(8))
    assert len({r["caption_id"] for r in rows}) == 3
    assert json.loads((out / "sample.json").read_text())["protocol"] == "stackgan-tf"
    every = tmp_path / "all"
    assert main(["sample", "--run", str(stage2_run), "--split", "test", "--limit", "2",
                 "--out", str(every)]) == 0
    rows = [json.loads(ln) for ln in (every / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 10 and {r["caption_id"][-2:] for r in rows} == {f"#{c}" for c in range(10)}
    assert json.loads((every / "sample.json").read_text())["protocol"] == "all-captions"
    assert resolve(None, 2, 1).name == "custom" and resolve(None, 1, 8).name == "stackgan-tf"
    with pytest.raises(UserError, match="drop --captions-per-image"):
        resolve("stackgan-tf", 1, None)
