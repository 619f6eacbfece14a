import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import smoke_config

from harness import atomic as atomic_mod
from harness.checkpoints import CheckpointStore, load_checkpoint
from harness.config.load import load_config
from harness.errors import UserError
from harness.runner.trainer import TrainingDiverged, train

STEPS = 10  # crosses epoch boundaries: the tiny train split has 4 batches of 8
# The learning rate halves every 2 epochs (8 steps): a resume at step 5 must restore the
# schedulers' epoch count, or the decay at step 8 is missed (a fresh StepLR counts from zero).
DECAY = "optim.lr_decay_epochs=2"


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run_dir / "checkpoints" / "final.pt")["model"]
    return {f"{net}.{k}": v for net in ("netG", "netD", "optG", "optD") for k, v in
            _flat(state[net]).items()}


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif isinstance(v, torch.Tensor):
            out[f"{prefix}{k}"] = v
    return out


def assert_bitwise_equal(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, different[:5]


@pytest.fixture(scope="module")
def straight(smoke_data, tmp_path_factory):
    runs = tmp_path_factory.mktemp("straight")
    cfg = smoke_config(smoke_data, runs, f"train.max_steps={STEPS}", "train.checkpoint_every=4",
                       "name=straight", DECAY)
    train(cfg, progress=False)
    return runs / "straight"


def test_unknown_key_is_refused_with_nearest_names():
    with pytest.raises(UserError, match=r"unknown config key 'model.gf_dm'; did you mean model.gf_dim"):
        load_config("smoke_stage1", ["model.gf_dm=3"])
    with pytest.raises(UserError, match=r"invalid value for 'train.seed'"):
        load_config("smoke_stage1", ["train.seed=abc"])


def test_unknown_key_in_a_yaml_file_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("inherit: " + str(Path(__file__).parents[1] / "harness/config/presets/smoke_stage1.yaml")
                   + "\ntrain:\n  epocs: 3\n")
    expected = r"bad.yaml: unknown config key 'train.epocs'; did you mean train.epochs"
    with pytest.raises(UserError, match=expected):
        load_config(str(bad))


def test_same_seed_gives_identical_weights(straight, smoke_data, tmp_path):
    cfg = smoke_config(smoke_data, tmp_path, f"train.max_steps={STEPS}", "name=again", DECAY)
    train(cfg, progress=False)
    assert_bitwise_equal(straight, tmp_path / "again")
    other = smoke_config(smoke_data, tmp_path, f"train.max_steps={STEPS}", "name=other", "train.seed=1",
                         DECAY)
    train(other, progress=False)
    key = "netG.img.0.weight"
    assert not torch.equal(weights(straight)[key], weights(tmp_path / "other")[key])


def test_stopped_and_resumed_equals_straight(straight, smoke_data, tmp_path):
    first = smoke_config(smoke_data, tmp_path, "train.max_steps=5", "name=resumed", DECAY)
    assert train(first, progress=False).steps == 5
    second = smoke_config(smoke_data, tmp_path, f"train.max_steps={STEPS}", "name=resumed", DECAY)
    assert train(second, resume=True, progress=False).steps == STEPS
    assert_bitwise_equal(straight, tmp_path / "resumed")
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["step"] for ln in lines] == [2, 4, 5, 6, 8, 10]
    lr = {json.loads(ln)["step"]: json.loads(ln)["lr_g"] for ln in lines}
    assert lr[10] == pytest.approx(lr[2] * 0.5)  # the decay after epoch 2 happened after resuming


def _spawn(smoke_data, runs, *extra):
    cmd = [sys.executable, "-m", "harness.cli.main", "train", "--config", "smoke_stage1",
           f"data.root={smoke_data}", f"runs_dir={runs}", "tracking.enabled=false",
           "data.check=false", "name=killed", f"train.max_steps={STEPS}", DECAY, *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, proc, timeout=120):
    start = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - start < timeout
        time.sleep(0.05)


def _finish(smoke_data, runs):
    cfg = smoke_config(smoke_data, runs, f"train.max_steps={STEPS}", "name=killed", DECAY)
    train(cfg, resume=True, progress=False)


@pytest.mark.integration
def test_sigterm_writes_a_checkpoint_and_resume_is_bitwise(straight, smoke_data, tmp_path):
    # A slow first step window: stop as soon as the first metrics line appears (step 2).
    proc = _spawn(smoke_data, tmp_path, "train.checkpoint_every=1000", "train.log_every=2")
    _wait_for(tmp_path / "killed" / "metrics.jsonl", proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by signal" in err
    steps = CheckpointStore(tmp_path / "killed" / "checkpoints").steps()
    assert len(steps) == 1 and 2 <= steps[0] < STEPS
    _finish(smoke_data, tmp_path)
    assert_bitwise_equal(straight, tmp_path / "killed")


@pytest.mark.integration
def test_kill_9_after_a_checkpoint_then_resume_is_bitwise(straight, smoke_data, tmp_path):
    proc = _spawn(smoke_data, tmp_path, "train.checkpoint_every=3")
    _wait_for(tmp_path / "killed" / "checkpoints" / "step-000000003.pt", proc)
    proc.kill()
    proc.communicate()
    assert not (tmp_path / "killed" / "checkpoints" / "final.pt").exists()
    _finish(smoke_data, tmp_path)
    assert_bitwise_equal(straight, tmp_path / "killed")
    # Steps redone after the kill are logged once, with the straight run's values.
    logged = [json.loads(ln) for ln in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    reference = [json.loads(ln) for ln in (straight / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [r["step"] for r in reference]
    assert [r["loss_d"] for r in logged] == [r["loss_d"] for r in reference]


def test_resume_with_changed_config_is_refused_with_differences(smoke_data, tmp_path):
    train(smoke_config(smoke_data, tmp_path, "train.max_steps=2", "name=r"), progress=False)
    changed = smoke_config(smoke_data, tmp_path, "train.max_steps=4", "name=r", "model.gf_dim=16",
                           "optim.lr_g=0.001")
    with pytest.raises(UserError) as err:
        train(changed, resume=True, progress=False)
    assert "model.gf_dim: 8 -> 16" in str(err.value) and "optim.lr_g: 0.0002 -> 0.001" in str(err.value)
    assert "train.max_steps:" not in str(err.value)  # a safe key: not listed as a difference
    with pytest.raises(UserError, match="already has checkpoints; pass --resume"):
        train(smoke_config(smoke_data, tmp_path, "train.max_steps=4", "name=r"), progress=False)


def test_crash_mid_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    store = CheckpointStore(tmp_path, keep_last=3)
    store.save({"model": {"w": torch.ones(3)}}, 1)

    real_fdopen = os.fdopen

    class Dying:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()
            return False

        def write(self, data):
            self.handle.write(data[: len(data) // 2])
            raise OSError("disk full")

    monkeypatch.setattr(atomic_mod.os, "fdopen", lambda fd, mode: Dying(real_fdopen(fd, mode)))
    with pytest.raises(UserError, match="step-000000002.pt: cannot write \\(disk full\\)"):
        store.save({"model": {"w": torch.zeros(3)}}, 2)
    monkeypatch.undo()
    assert store.steps() == [1]
    assert torch.equal(load_checkpoint(store.latest())["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["step-000000001.pt"]


def test_keeps_last_k_and_best(smoke_data, tmp_path):
    cfg = smoke_config(smoke_data, tmp_path, "train.max_steps=8", "train.checkpoint_every=2",
                       "train.keep_last=2", "name=k")
    train(cfg, progress=False)
    folder = tmp_path / "k" / "checkpoints"
    assert CheckpointStore(folder).steps() == [6, 8]
    best = json.loads((folder / "best.json").read_text())
    logged = {json.loads(ln)["step"]: json.loads(ln)["loss_g"]
              for ln in (tmp_path / "k" / "metrics.jsonl").read_text().splitlines()}
    assert best["value"] == min(logged.values()) and best["metric"] == "loss_g"


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(smoke_data, tmp_path, monkeypatch):
    import shutil

    from harness.data.safe_pickle import dump_pickle
    from stackgan.model import StackGANModel

    data = tmp_path / "data"
    shutil.copytree(smoke_data, data)
    emb = np.ones((32, 10, 1024), np.float32)
    emb[:] = np.nan
    dump_pickle(emb, data / "train" / "char-CNN-RNN-embeddings.pickle")
    cfg = smoke_config(data, tmp_path, "train.max_steps=6", "name=nan")
    with pytest.raises(TrainingDiverged, match=r"became nan at step 0; the run stopped"):
        train(cfg, progress=False)
    assert not (tmp_path / "nan" / "checkpoints" / "final.pt").exists()

    # Diverging after a checkpoint (step 3): the run stops at the step that went bad, names the
    # checkpoint before it, and writes none of the poisoned weights.
    real_step = StackGANModel.train_step

    def poisoned(self, batch, step):
        stats = real_step(self, batch, step)
        if step == 4:
            with torch.no_grad():
                for p in self.netG.parameters():
                    p.fill_(float("nan"))
            stats["loss_g"] = float("nan")
        return stats

    monkeypatch.setattr(StackGANModel, "train_step", poisoned)
    cfg = smoke_config(smoke_data, tmp_path, "train.max_steps=6", "train.checkpoint_every=3", "name=late")
    with pytest.raises(TrainingDiverged, match=r"loss_g became nan at step 4; .*/step-000000003.pt"):
        train(cfg, progress=False)
    checkpoints = tmp_path / "late" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-000000003.pt"]
    kept = load_checkpoint(checkpoints / "step-000000003.pt")["model"]["netG"]
    assert all(torch.isfinite(v).all() for v in kept.values() if v.is_floating_point())


def test_training_refuses_a_dataset_that_fails_check(smoke_data, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(smoke_data, data)
    next((data / "text_c10").rglob("*.txt")).write_text("one line\n")
    cfg = smoke_config(data, tmp_path, "train.max_steps=2", "data.check=true")
    with pytest.raises(UserError, match="fails `data check`"):
        train(cfg, progress=False)


def test_run_records_provenance(straight):
    prov = json.loads((straight / "provenance.json").read_text())
    assert {"seed", "variant", "data_fingerprint", "git_commit", "git_dirty", "lib.torch",
            "deterministic", "device"} <= prov.keys()
    summary = json.loads((straight / "summary.json").read_text())
    assert summary["steps"] == STEPS and summary["harness_overhead_ratio"] >= 1.0
    # images/s per logging interval: batch 8 x 2 steps over those steps' time, so it stays
    # within the range of single-interval rates rather than shrinking as the run goes on.
    lines = (straight / "metrics.jsonl").read_text().splitlines()
    rates = [json.loads(ln)["images_per_second"] for ln in lines]
    assert summary["train_step_seconds"] > 0
    assert min(rates) > 0.3 * STEPS * 8 / summary["train_step_seconds"]
    assert (straight / "config.yaml").exists() and list((straight / "samples").glob("*.png"))


def test_an_epoch_count_that_cuts_max_steps_short_is_said_and_recorded(smoke_data, tmp_path, capsys):
    train(smoke_config(smoke_data, tmp_path, "train.epochs=1", "train.max_steps=1000", "name=short"),
          progress=False)
    prov = json.loads((tmp_path / "short" / "provenance.json").read_text())
    summary = json.loads((tmp_path / "short" / "summary.json").read_text())
    assert prov["train.stopped_by"] == "epochs" and prov["train.total_steps"] == summary["steps"] < 1000
    assert "before train.max_steps=1000; raise train.epochs" in capsys.readouterr().err
    train(smoke_config(smoke_data, tmp_path, "train.max_steps=2", "name=capped"), progress=False)
    capped = json.loads((tmp_path / "capped" / "provenance.json").read_text())
    assert capped["train.stopped_by"] == "max_steps"


@pytest.mark.parametrize("native", [True, False])
def test_bf16_autocast_on_a_cpu_without_bf16_hardware_is_said(smoke_data, tmp_path, capsys,
                                                              monkeypatch, native):
    from harness.core import speed

    monkeypatch.setattr(speed, "cpu_has_native_bf16", lambda: native)
    train(smoke_config(smoke_data, tmp_path, "train.max_steps=1", "train.autocast_bf16=true"),
          progress=False)
    said = "bf16 is emulated here, slower than fp32" in capsys.readouterr().err
    assert said is not native


class _Killed(BaseException):
    """Stands for kill -9 between two checkpoint writes: nothing after it runs."""


@pytest.mark.parametrize("dies_in", ["save", "save_best"])
def test_kill_between_step_and_best_checkpoint_keeps_best(smoke_data, tmp_path, monkeypatch, dies_in):
    args = ("train.max_steps=8", "train.checkpoint_every=2", "train.keep_last=4")
    train(smoke_config(smoke_data, tmp_path, *args, "name=straight"), progress=False)
    straight_best = json.loads((tmp_path / "straight" / "checkpoints" / "best.json").read_text())

    real = getattr(CheckpointStore, dies_in)

    def dying(self, state, step, *rest):
        result = real(self, state, step, *rest)
        if step == straight_best["step"]:
            raise _Killed
        return result

    monkeypatch.setattr(CheckpointStore, dies_in, dying)
    with pytest.raises(_Killed):
        train(smoke_config(smoke_data, tmp_path, *args, "name=k"), progress=False)
    monkeypatch.undo()
    train(smoke_config(smoke_data, tmp_path, *args, "name=k"), resume=True, progress=False)
    folder = tmp_path / "k" / "checkpoints"
    assert json.loads((folder / "best.json").read_text()) == straight_best
    ours = _flat(load_checkpoint(folder / "best.pt")["model"])
    theirs = _flat(load_checkpoint(tmp_path / "straight" / "checkpoints" / "best.pt")["model"])
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
