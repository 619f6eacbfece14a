"""The averaged generator (train.ema_half_life): the average against a hand-computed recursion,
training untouched by it, resumes exact, and every reader of a run judging the average."""

import math

import pytest
import torch
from conftest import smoke_config
from torch import nn

from harness.checkpoints import load_checkpoint
from harness.config.load import load_config
from harness.core.averaging import GeneratorAverage, ema_decay, judged_generator_state
from harness.errors import UserError
from harness.runner.build import load_run
from harness.runner.trainer import train

STEPS = 10
EMA = ("train.ema_half_life=3", "train.ema_rampup=0.5")


def test_decay_follows_the_half_life_and_its_ramp_up():
    assert ema_decay(100, 10) == pytest.approx(0.5 ** 0.1)
    assert ema_decay(100, 10) ** 10 == pytest.approx(0.5)  # half the weight after a half-life
    assert ema_decay(4, 10, rampup=0.5) == pytest.approx(0.5 ** (1 / 2))  # capped at 0.5 x 4 steps
    assert ema_decay(100, 10, rampup=0.5) == pytest.approx(0.5 ** 0.1)  # the cap no longer binds
    assert ema_decay(0, 10, rampup=0.5) == 0.0  # nothing to keep at the start


class _Holder:
    def __init__(self):
        torch.manual_seed(0)
        self.netG = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_the_average_is_the_recursion_computed_by_hand_and_copies_batchnorm_statistics():
    model = _Holder()
    average = GeneratorAverage(model, half_life=2.0, rampup=0.5)
    expected = None
    for step in range(1, 7):
        with torch.no_grad():
            for p in model.netG.parameters():
                p.add_(torch.randn_like(p))
        model.netG(torch.randn(5, 3))  # train mode: moves BN's running statistics
        average.update(model)
        w = model.netG[0].weight.detach().clone()
        if expected is None:
            expected = w
        else:
            beta = 0.5 ** (1 / min(2.0, 0.5 * step))
            expected = beta * expected + (1 - beta) * w
    assert average.updates == 6
    torch.testing.assert_close(average.generator[0].weight, expected, rtol=1e-6, atol=1e-6)
    assert not torch.equal(average.generator[0].weight, model.netG[0].weight)
    assert torch.equal(average.generator[1].running_mean, model.netG[1].running_mean)
    assert torch.equal(average.generator[1].num_batches_tracked, model.netG[1].num_batches_tracked)


def test_the_average_stands_in_for_the_generator_only_inside_its_context():
    model = _Holder()
    trained = model.netG
    average = GeneratorAverage(model, half_life=2.0)
    with average.in_place_of_generator(model) as judged:
        assert judged.netG is average.generator
    assert model.netG is trained


def test_half_life_and_ramp_up_are_range_checked():
    with pytest.raises(UserError, match=r"train.ema_rampup: 1.5 is not in \[0, 1\]"):
        load_config("smoke_stage1", ["train.ema_rampup=1.5"])
    with pytest.raises(UserError, match=r"train.ema_half_life"):
        load_config("smoke_stage1", ["train.ema_half_life=-1"])


def _final(run_dir):
    return load_checkpoint(run_dir / "checkpoints" / "final.pt")


@pytest.fixture(scope="module")
def with_and_without(smoke_data, tmp_path_factory):
    runs = tmp_path_factory.mktemp("ema")
    seen = []

    def validator(model):  # what a validation sees: the generator's first weight, summed
        seen.append(float(next(model.netG.parameters()).double().sum()))
        return {"probe": seen[-1]}

    for name, extra in (("plain", ()), ("averaged", EMA)):
        cfg = smoke_config(smoke_data, runs, f"train.max_steps={STEPS}", "train.checkpoint_every=4",
                           "train.validate_every=5", f"name={name}", *extra)
        train(cfg, progress=False, validator=validator if name == "averaged" else None)
    return runs, seen


def test_training_is_untouched_by_the_average(with_and_without):
    runs, _ = with_and_without
    plain, averaged = _final(runs / "plain"), _final(runs / "averaged")
    for net in ("netG", "netD", "optG", "optD"):
        a, b = plain["model"][net], averaged["model"][net]
        if net.startswith("net"):
            assert all(torch.equal(a[k], b[k]) for k in a), net
    assert "generator_average" not in plain
    kept = averaged["generator_average"]
    assert kept["updates"] == STEPS and kept["half_life"] == 3.0
    key = next(iter(kept["netG"]))
    assert not torch.equal(kept["netG"][key], averaged["model"]["netG"][key])


def test_validation_sampling_and_a_stacked_stage_ii_judge_the_average(with_and_without, smoke_data,
                                                                        tmp_path):
    runs, seen = with_and_without
    state = _final(runs / "averaged")
    first = next(iter(state["generator_average"]["netG"]))
    assert seen[-1] == pytest.approx(float(state["generator_average"]["netG"][first].double().sum()),
                                     rel=0, abs=1e-9)  # the last validation, at the final step
    _, model, _ = load_run(runs / "averaged")
    assert torch.equal(model.netG.state_dict()[first], state["generator_average"]["netG"][first])
    assert judged_generator_state(_final(runs / "plain")) is not None
    stage2 = smoke_config(smoke_data, tmp_path, "train.max_steps=1", "name=s2",
                          f"train.stage1_run={runs / 'averaged'}", preset="smoke_stage2")
    train(stage2, progress=False)
    carried = _final(tmp_path / "s2")["model"]["stage1G"]
    # The frozen Stage-I is the average (its BN statistics move in train mode, its weights not).
    assert torch.equal(carried[first], state["generator_average"]["netG"][first])


def test_a_resumed_run_keeps_the_same_average(with_and_without, smoke_data, tmp_path):
    runs, _ = with_and_without
    first = smoke_config(smoke_data, tmp_path, "train.max_steps=5", "train.checkpoint_every=4",
                         "name=resumed", *EMA)
    train(first, progress=False)
    second = smoke_config(smoke_data, tmp_path, f"train.max_steps={STEPS}", "train.checkpoint_every=4",
                          "name=resumed", *EMA)
    train(second, resume=True, progress=False)
    a, b = _final(runs / "averaged")["generator_average"], _final(tmp_path / "resumed")["generator_average"]
    assert a["updates"] == b["updates"]
    assert all(torch.equal(a["netG"][k], b["netG"][k]) for k in a["netG"])
    assert math.isfinite(float(sum(v.double().sum() for v in a["netG"].values())))


def test_the_average_is_judged_with_its_own_batchnorm_statistics(with_and_without):
    """``train.ema_batch_norm=recompute`` (the default): the saved average's first BatchNorm
    holds the mean over the calibration batches of that layer's batch statistics, computed here
    from its inputs, not the trained generator's running statistics."""
    from harness.core.generation import generate_batch
    from harness.runner.build import build_dataset
    from harness.runner.trainer import _calibration_inputs

    runs, _ = with_and_without
    cfg, model, _ = load_run(runs / "averaged")
    norm = next(m for m in model.netG.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    calibration = _calibration_inputs(cfg, build_dataset(cfg), model)
    inputs = []
    hook = norm.register_forward_hook(lambda module, args, out: inputs.append(args[0].double()))
    model.eval()
    size = calibration["batch_size"]
    for start in range(0, len(calibration["embeddings"]), size):
        part = slice(start, start + size)
        generate_batch(model, calibration["embeddings"][part], calibration["seeds"][part],
                       {k: v[part] for k, v in calibration["conditions"].items()})
    hook.remove()
    dims = [0] + list(range(2, inputs[0].dim()))
    mean = torch.stack([x.mean(dims) for x in inputs]).mean(0)
    var = torch.stack([x.var(dims, unbiased=True) for x in inputs]).mean(0)
    torch.testing.assert_close(norm.running_mean.double(), mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(norm.running_var.double(), var, rtol=1e-4, atol=1e-5)
    trained = _final(runs / "averaged")["model"]["netG"]
    key = next(k for k in trained if k.endswith("running_mean"))
    assert not torch.equal(_final(runs / "averaged")["generator_average"]["netG"][key], trained[key])


def test_the_batchnorm_mode_of_the_average_is_checked():
    with pytest.raises(UserError, match=r"train.ema_batch_norm: 'mean' is not one of"):
        load_config("smoke_stage1", ["train.ema_batch_norm=mean"])


def test_the_statistics_are_recomputed_once_per_average(with_and_without):
    """Validating, sampling and saving the same average recompute its statistics once; an update
    (which brings G's statistics back) makes the next judgement recompute them again."""
    from harness.runner.build import build_dataset
    from harness.runner.trainer import _calibration_inputs

    runs, _ = with_and_without
    cfg, model, _ = load_run(runs / "averaged")
    calibration = _calibration_inputs(cfg, build_dataset(cfg), model)
    batches = -(-len(calibration["embeddings"]) // calibration["batch_size"])
    average = GeneratorAverage(model, half_life=2.0, batch_norm="recompute", calibration=calibration)
    norm = next(m for m in average.generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))
    calls = []
    norm.register_forward_hook(lambda module, args, out: calls.append(module.training))
    for _ in range(2):
        with average.judged_in_place_of_generator(model):
            pass
    average.state_dict(model)
    assert calls == [True] * batches
    average.update(model)
    average.state_dict(model)
    assert calls == [True] * (2 * batches)
    average.load_state_dict(average.state_dict())  # a resume: the statistics are recomputed again
    average.state_dict(model)
    assert calls == [True] * (3 * batches)
