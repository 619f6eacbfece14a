"""In-training validation (val.fid): it changes nothing training computes, and measures what it
claims on known inputs."""

import json
import math

import torch
from conftest import smoke_config

from harness.checkpoints import load_checkpoint
from harness.eval.training_fid import FidValidator
from harness.runner.trainer import train


def test_validating_leaves_training_bitwise_unchanged(smoke_data, tmp_path, classifier_ckpt):
    plain = smoke_config(smoke_data, tmp_path, "name=plain", "train.max_steps=6")
    checked = smoke_config(smoke_data, tmp_path, "name=checked", "train.max_steps=6",
                           "train.validate_every=2")
    train(plain, progress=False)
    validator = FidValidator(checked, str(classifier_ckpt), size=64, images=16)
    train(checked, progress=False, validator=validator)
    a = load_checkpoint(tmp_path / "plain" / "checkpoints" / "final.pt")["model"]
    b = load_checkpoint(tmp_path / "checked" / "checkpoints" / "final.pt")["model"]
    for net in ("netG", "netD"):
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net])
    records = [json.loads(ln) for ln in (tmp_path / "checked" / "metrics.jsonl").read_text().splitlines()]
    val = [(r["step"], r["val.fid"]) for r in records if "val.fid" in r]
    assert [s for s, _ in val] == [2, 4, 6] and all(math.isfinite(v) and v > 0 for _, v in val)


def test_log_spaced_validations_fall_evenly_in_log_steps_over_the_last_doubling():
    from harness.runner.trainer import validation_steps

    assert validation_steps(2000, 0, 5) == {1000, 1149, 1320, 1516, 1741, 2000}
    assert validation_steps(2000, 500, 2, doublings=2) == {500, 707, 1000, 1414, 1500, 2000}
    assert validation_steps(7, 3) == {3, 6, 7} and validation_steps(7, 0) == set()
    assert validation_steps(3, 0, 4, doublings=3) == {1, 2, 3}  # short runs: no step 0


def test_the_trainer_validates_at_the_log_spaced_steps(smoke_data, tmp_path):
    cfg = smoke_config(smoke_data, tmp_path, "train.max_steps=8", "train.validate_per_doubling=2",
                       "train.validate_doublings=2")
    seen = []
    train(cfg, progress=False, validator=lambda model: seen.append(len(seen)) or {"val.fid": 1.0})
    records = [json.loads(ln) for ln in (tmp_path / cfg.name / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val.fid" in r] == [2, 3, 4, 6, 8] and len(seen) == 5


class _Replay:
    """A stand-in model whose images are given: the real test images, or noise."""

    conditions = ()

    def __init__(self, images):
        self.images, self.used = images, 0

    def eval(self):
        pass

    def train(self):
        pass

    def sample_noise(self, batch, generator):
        return {"z": torch.zeros(batch, 1)}

    def generate(self, embedding, noise, *eps):
        out = self.images[self.used:self.used + len(embedding)]
        self.used += len(embedding)
        return {"stage1": out}


def test_real_images_score_zero_and_noise_does_not(smoke_data, tmp_path):
    from harness.data.real_images import load_real_tensor
    from harness.eval.classifier import ClassifierOptions, train_classifier

    train_classifier(smoke_data, tmp_path, ClassifierOptions(steps=30, width=8), progress=False)
    cfg = smoke_config(smoke_data, "unused")
    real = load_real_tensor(smoke_data, "test", 64, progress=False)
    validator = FidValidator(cfg, str(tmp_path / "classifier.pt"), size=64, images=len(real))
    assert len(validator.items) == len(real)  # every test image, in order: the same set
    same = validator(_Replay(real.float() / 127.5 - 1))["val.fid"]
    assert abs(same) < 1e-6
    noise = torch.rand(len(real), 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert validator(_Replay(noise))["val.fid"] > 1.0


def test_a_worker_builds_the_same_validation_itself(smoke_data, tmp_path, classifier_ckpt):
    """The pool's and SLURM's workers get the validator as a spec and build it; the curve they
    log is the in-process one, value for value."""
    from harness.config.load import to_yaml
    from harness.experiments.worker import train_job

    here = smoke_config(smoke_data, tmp_path, "name=here", "train.max_steps=4", "train.validate_every=2")
    there = smoke_config(smoke_data, tmp_path, "name=there", "train.max_steps=4", "train.validate_every=2")
    train(here, progress=False, validator=FidValidator(here, str(classifier_ckpt), size=64, images=16))
    out = train_job(to_yaml(there), validate={"classifier": str(classifier_ckpt), "size": 64, "images": 16},
                    threads=torch.get_num_threads())
    assert out == {"steps": 4, "stopped_by_signal": None}

    def curve(name):
        lines = (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        return [(r["step"], r["val.fid"]) for r in map(json.loads, lines) if "val.fid" in r]

    assert curve("there") == curve("here") and len(curve("here")) == 2
