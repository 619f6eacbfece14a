"""On a CUDA device: training, bit-exact resume, sampling and evaluation, bf16 autocast.

Marked ``gpu``; skipped with the reason where no CUDA device is present. ``scripts/device-check``
runs them on a GPU machine together with the throughput table."""

import math

import pytest
import torch
from conftest import smoke_config

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="no CUDA device here: the gpu tests run on a GPU machine "
                                        "(scripts/device-check)")]


def _weights(run):
    from harness.checkpoints import load_checkpoint

    state = load_checkpoint(run / "checkpoints" / "final.pt")["model"]
    return {f"{n}.{k}": v for n in ("netG", "netD") for k, v in state[n].items()}


def test_train_and_resume_are_bitwise_on_cuda(smoke_data, tmp_path):
    from harness.runner.trainer import train

    cuda = ["train.device=cuda", "train.deterministic=true"]
    straight = train(smoke_config(smoke_data, tmp_path, "train.max_steps=6", "name=straight", *cuda),
                     progress=False)
    assert straight.steps == 6
    train(smoke_config(smoke_data, tmp_path, "train.max_steps=3", "name=resumed", *cuda), progress=False)
    train(smoke_config(smoke_data, tmp_path, "train.max_steps=6", "name=resumed", *cuda), resume=True,
          progress=False)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_sample_and_evaluate_on_cuda(smoke_data, tmp_path, classifier_ckpt, monkeypatch):
    from harness.eval.evaluate import EvalRequest, evaluate
    from harness.runner.sample import sample_run
    from harness.runner.trainer import train

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    train(smoke_config(smoke_data, tmp_path, "train.max_steps=2", "name=run", "train.device=cuda"),
          progress=False)
    out = tmp_path / "samples"
    info = sample_run(tmp_path / "run", out, split="test", captions_per_image=2, device="cuda",
                      progress=False)
    assert info["num_images"] > 0
    result = evaluate(EvalRequest(fake=str(out), metrics=("is", "fid", "kid"), data=str(smoke_data),
                                  classifier=str(classifier_ckpt), kid_subset_size=8, splits=2))
    assert all(math.isfinite(v) for v in result["values"].values())


def test_bf16_autocast_steps_are_finite(smoke_data, tmp_path):
    import json

    from harness.runner.trainer import train

    train(smoke_config(smoke_data, tmp_path, "train.max_steps=4", "train.log_every=1", "name=bf16",
                       "train.device=cuda", "train.autocast_bf16=true", "train.deterministic=false"),
          progress=False)
    lines = [json.loads(x) for x in (tmp_path / "bf16" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and all(math.isfinite(v) for ln in lines for k, v in ln.items()
                                   if isinstance(v, float))
