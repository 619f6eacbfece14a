import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from harness.core import OptimConfig
from stackgan.ca import ConditioningAugmentation
from stackgan.config import ModelConfig
from stackgan.losses import discriminator_loss, generator_adversarial_loss
from stackgan.model import StackGANModel
from stackgan.networks import (
    Stage1Generator,
    Stage2Generator,
    stage1_discriminator,
    stage2_discriminator,
)

TINY = dict(gf_dim=8, df_dim=4, ca_dim=8, z_dim=8, text_dim=32, r_num=1)


def n_params(m, trainable=False):
    return sum(p.numel() for p in m.parameters() if p.requires_grad or not trainable)


def test_pytorch_variant_parameter_counts_equal_the_official_code():
    cfg = ModelConfig(variant="pytorch", stage=2)  # birds sizes: GF 128, DF 64, R_NUM 4
    g1, d1 = Stage1Generator(cfg), stage1_discriminator(cfg)
    g2, d2 = Stage2Generator(cfg), stage2_discriminator(cfg)
    assert n_params(g1) == 10_301_248
    assert n_params(d1) == 5_715_713
    assert n_params(g2) == 26_290_080
    assert n_params(g2) + n_params(g1) == 36_591_328
    assert n_params(d2) == 71_269_122
    model = StackGANModel(cfg, stage1_generator=g1)
    assert n_params(model.netG, trainable=True) == 26_290_080
    assert n_params(model.stage1, trainable=True) == 0


@pytest.mark.parametrize("variant", ["paper", "pytorch"])
@pytest.mark.parametrize("stage1_size, stage2_size", [(64, 128), (64, 256), (256, 512)])
def test_forward_shapes(variant, stage1_size, stage2_size):
    cfg = ModelConfig(variant=variant, stage=2, stage1_size=stage1_size, stage2_size=stage2_size, **TINY)
    g1, d1 = Stage1Generator(cfg), stage1_discriminator(cfg)
    g2, d2 = Stage2Generator(cfg), stage2_discriminator(cfg)
    emb, z = torch.randn(3, 32), torch.randn(3, 8)
    img1, mu, log_scale = g1(emb, z)
    assert img1.shape == (3, 3, stage1_size, stage1_size) and mu.shape == log_scale.shape == (3, 8)
    assert img1.abs().max() <= 1
    cond = emb if variant == "paper" else mu
    logits, uncond = d1(img1, cond)
    assert logits.shape == (3,) and uncond is None
    if stage1_size == 64:
        img2, mu2, _ = g2(img1, emb)
        assert img2.shape == (3, 3, stage2_size, stage2_size)
        logits, uncond = d2(img2, emb if variant == "paper" else mu2)
        assert logits.shape == (3,)
        assert (uncond is not None) == (variant == "pytorch")


def _shapes(module, x, *args, names):
    seen = {}
    hooks = [dict(module.named_modules())[n].register_forward_hook(
        lambda m, i, o, n=n: seen.__setitem__(n, tuple(o.shape))) for n in names]
    module(x, *args)
    for h in hooks:
        h.remove()
    return seen


def test_paper_variant_layers_follow_the_tensorflow_code():
    cfg = ModelConfig(variant="paper", stage=2)  # birds sizes, GF 128 (gf_dim*8 = 1024)
    g1 = Stage1Generator(cfg)
    seen = _shapes(g1, torch.randn(2, 1024), torch.randn(2, 100),
                   names=["fc", "body.0", "body.0.branch.0", "body.1", "body.1.branch.0", "body.2",
                          "body.3", "img"])
    assert seen == {"fc": (2, 16384), "body.0": (2, 1024, 4, 4), "body.0.branch.0": (2, 256, 4, 4),
                    "body.1": (2, 512, 8, 8), "body.1.branch.0": (2, 128, 8, 8),
                    "body.2": (2, 256, 16, 16), "body.3": (2, 128, 32, 32), "img": (2, 3, 64, 64)}
    d1 = stage1_discriminator(cfg)
    seen = _shapes(d1, torch.randn(2, 3, 64, 64), torch.randn(2, 1024),
                   names=["encode.main.0", "encode.main.2", "encode.main.5", "encode.main.7",
                          "encode.branch.0", "encode", "text", "cond_logits.joint"])
    assert seen == {"encode.main.0": (2, 64, 32, 32), "encode.main.2": (2, 128, 16, 16),
                    "encode.main.5": (2, 256, 8, 8), "encode.main.7": (2, 512, 4, 4),
                    "encode.branch.0": (2, 128, 4, 4), "encode": (2, 512, 4, 4),
                    "text": (2, 128), "cond_logits.joint": (2, 512, 4, 4)}
    assert isinstance(dict(d1.named_modules())["cond_logits.joint.0"], torch.nn.Conv2d)
    assert dict(d1.named_modules())["cond_logits.joint.0"].kernel_size == (1, 1)
    g2 = Stage2Generator(cfg)
    seen = _shapes(g2, torch.randn(2, 3, 64, 64), torch.randn(2, 1024),
                   names=["encoder", "joint", "residual", "ups.0", "ups.1", "ups.2", "ups.3", "img"])
    assert seen == {"encoder": (2, 512, 16, 16), "joint": (2, 512, 16, 16),
                    "residual": (2, 512, 16, 16), "ups.0": (2, 256, 32, 32),
                    "ups.1": (2, 128, 64, 64), "ups.2": (2, 64, 128, 128), "ups.3": (2, 32, 256, 256),
                    "img": (2, 3, 256, 256)}
    assert len(g2.residual) == 4
    d2 = stage2_discriminator(cfg)
    names = [f"encode.main.{i}" for i in (0, 2, 5, 8, 11, 14, 17, 20)]
    seen = _shapes(d2, torch.randn(2, 3, 256, 256), torch.randn(2, 1024), names=names)
    assert [seen[n][1:] for n in names] == [(64, 128, 128), (128, 64, 64), (256, 32, 32),
                                            (512, 16, 16), (1024, 8, 8), (2048, 4, 4),
                                            (1024, 4, 4), (512, 4, 4)]


def _kinds(seq) -> list[str]:
    names = {torch.nn.Conv2d: "conv", torch.nn.BatchNorm2d: "bn", torch.nn.LeakyReLU: "lrelu"}
    return [names[type(m)] for m in seq]


def test_paper_discriminators_follow_the_tensorflow_layer_sequences():
    cfg = ModelConfig(variant="paper", stage=2)
    d1, d2 = stage1_discriminator(cfg), stage2_discriminator(cfg)
    # stageI/model.py d_encode_image: conv 64, lrelu; conv 128, BN, lrelu; conv 256, BN and no
    # activation; conv 512, BN (then the residual branch and a final lrelu).
    assert _kinds(d1.encode.main) == ["conv", "lrelu", "conv", "bn", "lrelu", "conv", "bn", "conv", "bn"]
    # stageII/model.py hr_d_encode_image: an activation after every BN but the last.
    assert _kinds(d2.encode.main) == (
        ["conv", "lrelu"] + ["conv", "bn", "lrelu"] * 5 + ["conv", "bn", "lrelu", "conv", "bn"])
    # The TF convs have no bias (custom_conv2d); StackGAN-Pytorch's last D conv has one.
    for net in (d1, d2, Stage1Generator(cfg)):
        assert all(m.bias is None for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    pytorch = stage1_discriminator(ModelConfig(variant="pytorch"))
    assert pytorch.cond_logits.out.bias is not None
    # TF draws conv weights from a normal truncated at two standard deviations.
    weights = torch.cat([m.weight.flatten() for m in d2.modules() if isinstance(m, torch.nn.Conv2d)])
    assert weights.abs().max() <= 0.04 and weights.std().item() == pytest.approx(0.0176, rel=0.03)


def _softplus(x):
    return math.log1p(math.exp(x))


def test_losses_match_a_hand_computation():
    real, wrong, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 0.0]), torch.tensor([-3.0, 1.0])
    bce1 = lambda xs: sum(_softplus(-x) for x in xs) / len(xs)  # noqa: E731  BCE(sigmoid(x), 1)
    bce0 = lambda xs: sum(_softplus(x) for x in xs) / len(xs)  # noqa: E731  BCE(sigmoid(x), 0)
    r, w, f = real.tolist(), wrong.tolist(), fake.tolist()
    assert discriminator_loss(real, wrong, fake).item() == pytest.approx(
        bce1(r) + 0.5 * (bce0(w) + bce0(f)), rel=1e-6)
    ru, fu = torch.tensor([0.3, 0.7]), torch.tensor([-0.2, 0.4])
    assert discriminator_loss(real, wrong, fake, ru, fu).item() == pytest.approx(
        (bce1(r) + bce1(ru.tolist())) / 2 + (bce0(f) + bce0(w) + bce0(fu.tolist())) / 3, rel=1e-6)
    assert generator_adversarial_loss(fake).item() == pytest.approx(bce1(f), rel=1e-6)
    assert generator_adversarial_loss(fake, fu).item() == pytest.approx(bce1(f) + bce1(fu.tolist()), rel=1e-6)
    # The same as the official sigmoid + BCELoss.
    ones = torch.ones(2)
    assert discriminator_loss(real, wrong, fake).item() == pytest.approx(
        (F.binary_cross_entropy(torch.sigmoid(real), ones)
         + 0.5 * (F.binary_cross_entropy(torch.sigmoid(wrong), 0 * ones)
                  + F.binary_cross_entropy(torch.sigmoid(fake), 0 * ones))).item(), rel=1e-6)


@pytest.mark.parametrize("variant", ["paper", "pytorch"])
def test_kl_matches_the_closed_form(variant):
    ca = ConditioningAugmentation(16, 6, variant)
    torch.manual_seed(0)
    mu, log_scale = torch.randn(5, 6), torch.randn(5, 6) * 0.5
    sigma = log_scale.exp() if variant == "paper" else (0.5 * log_scale).exp()
    expected = kl_divergence(Normal(mu, sigma), Normal(0.0, 1.0)).mean()
    assert ca.kl(mu, log_scale).item() == pytest.approx(expected.item(), rel=1e-5)


def test_ca_samples_follow_mu_and_sigma_and_paper_eps_is_truncated():
    torch.manual_seed(0)
    ca = ConditioningAugmentation(16, 4, "paper")
    eps = ca.sample_eps(20000)
    assert eps.abs().max() <= 2 and eps.std().item() == pytest.approx(0.88, abs=0.02)
    c, mu, log_scale = ca(torch.randn(3, 16), torch.ones(3, 4))
    assert torch.allclose(c, mu + log_scale.exp())
    # The pytorch variant's log_scale is log sigma^2: c = mu + exp(logvar / 2) * eps.
    ca = ConditioningAugmentation(16, 4, "pytorch")
    with torch.no_grad():
        ca.fc.weight.zero_()
        ca.fc.bias.copy_(torch.tensor([0.5, -1.0, 2.0, 0.0, 1.0, 1.0, 3.0, -2.0]))
    c, mu, log_scale = ca(torch.zeros(2, 16), torch.tensor([[1.0, 1.0, 1.0, 1.0], [-2.0, 0.0, 0.5, 1.0]]))
    assert torch.equal(mu[0], torch.tensor([0.5, 0.0, 2.0, 0.0]))  # after the ReLU
    assert torch.equal(log_scale[0], torch.tensor([1.0, 1.0, 3.0, 0.0]))
    sigma = torch.tensor([math.exp(0.5), math.exp(0.5), math.exp(1.5), 1.0])
    assert torch.allclose(c, mu + sigma * torch.tensor([[1.0, 1.0, 1.0, 1.0], [-2.0, 0.0, 0.5, 1.0]]))
    no_ca = ConditioningAugmentation(16, 4, "paper", use_ca=False)
    c, mu, log_scale = no_ca(torch.randn(3, 16))
    assert log_scale is None and torch.equal(c, mu) and no_ca.kl(mu, None).item() == 0


def _batch(size, b=6, text_dim=32):
    g = torch.Generator().manual_seed(1)
    return {"images": {size: torch.rand(b, 3, size, size, generator=g) * 2 - 1},
            "wrong_images": {size: torch.rand(b, 3, size, size, generator=g) * 2 - 1},
            "embedding": torch.randn(b, text_dim, generator=g)}


@pytest.mark.parametrize("variant", ["paper", "pytorch"])
def test_training_steps_are_finite_and_change_weights(variant):
    cfg = ModelConfig(variant=variant, stage=1, **TINY)
    model = StackGANModel(cfg, OptimConfig())
    before = {k: v.clone() for k, v in model.netG.state_dict().items()}
    before_d = {k: v.clone() for k, v in model.netD.state_dict().items()}
    for step in range(3):
        stats = model.train_step(_batch(64), step)
    assert set(stats) >= {"loss_d", "loss_g", "kl", "d_real", "d_wrong", "d_fake", "grad_norm_d",
                          "grad_norm_g"}
    assert all(math.isfinite(v) for v in stats.values())
    assert any(not torch.equal(before[k], v) for k, v in model.netG.state_dict().items())
    assert any(not torch.equal(before_d[k], v) for k, v in model.netD.state_dict().items())


@pytest.mark.parametrize("preset", ["birds_stage2", "flowers_stage2", "coco_stage2",
                                    "birds_stage2_pytorch", "quick_stage2", "small_stage2"])
def test_every_stage2_preset_runs_stage1_in_bn_train_mode(preset):
    from harness.config.load import load_config

    cfg = load_config(preset)
    assert cfg.model.stage1_bn_mode == "train"
    small = ModelConfig(**{**vars(cfg.model), **TINY, "stage2_size": 128})
    model = StackGANModel(small, stage1_generator=Stage1Generator(ModelConfig(**{**vars(small), "stage": 1})))
    model.train()
    assert model.stage1.training and all(m.training for m in model.stage1.modules())
    model.eval()
    assert not model.stage1.training


@pytest.mark.parametrize("variant, fresh", [("paper", True), ("pytorch", False)])
def test_the_g_update_draws_new_noise_in_the_paper_variant(monkeypatch, variant, fresh):
    """TF runs the G update as its own sess.run (new z and epsilon); StackGAN-Pytorch reuses the
    D step's fake images."""
    torch.manual_seed(0)
    model = StackGANModel(ModelConfig(variant=variant, stage=1, **TINY))
    calls = []
    forward = model.netG.forward

    def spy(embedding, noise, ca_eps=None):
        calls.append(noise.clone())
        return forward(embedding, noise, ca_eps)

    monkeypatch.setattr(model.netG, "forward", spy)
    model.train_step(_batch(64), 0)
    assert len(calls) == (2 if fresh else 1)
    if fresh:
        assert not torch.equal(calls[0], calls[1])
    # The switch restores the other behaviour: the same weights and batch, another G update.
    results = {}
    for mode in ("fresh", "reuse"):
        torch.manual_seed(0)
        other = StackGANModel(ModelConfig(variant=variant, stage=1, g_step_noise=mode, **TINY))
        results[mode] = other.train_step(_batch(64), 0)
    assert results["fresh"]["loss_d"] == results["reuse"]["loss_d"]
    assert results["fresh"]["loss_g"] != results["reuse"]["loss_g"]


@pytest.mark.parametrize("bn_mode", ["eval", "train"])
def test_stage1_stays_frozen_during_stage2(bn_mode):
    cfg1 = ModelConfig(variant="pytorch", stage=1, **TINY)
    stage1 = StackGANModel(cfg1).netG
    params = {k: v.clone() for k, v in stage1.named_parameters()}
    buffers = {k: v.clone() for k, v in stage1.named_buffers()}
    cfg2 = ModelConfig(variant="pytorch", stage=2, stage2_size=128, stage1_bn_mode=bn_mode, **TINY)
    model = StackGANModel(cfg2, stage1_generator=stage1)
    for step in range(2):
        assert math.isfinite(model.train_step(_batch(128), step)["loss_g"])
    assert all(torch.equal(params[k], v) for k, v in stage1.named_parameters())
    assert not any(p.requires_grad for p in stage1.parameters())
    running_stats_same = all(torch.equal(buffers[k], v) for k, v in stage1.named_buffers())
    # eval: BN uses (and keeps) running statistics; train (the official code's mode) updates them.
    assert running_stats_same == (bn_mode == "eval")
    # So the Stage-II checkpoint carries the Stage-I it ran with, and restores it.
    state = model.state_dict()
    assert all(torch.equal(state["stage1G"][k], v) for k, v in stage1.state_dict().items())
    fresh = StackGANModel(cfg2, stage1_generator=StackGANModel(cfg1).netG)
    fresh.load_state_dict(state)
    assert all(torch.equal(fresh.stage1.state_dict()[k], v) for k, v in stage1.state_dict().items())


def test_kl_weight_enters_the_generator_loss():
    cfg = ModelConfig(variant="paper", stage=1, **TINY)
    losses = {}
    for w in (0.0, 1000.0):
        cfg.kl_weight = w
        torch.manual_seed(0)  # the same initial weights for both
        losses[w] = StackGANModel(cfg).train_step(_batch(64), 0)
    assert losses[0.0]["kl"] == pytest.approx(losses[1000.0]["kl"])
    assert losses[1000.0]["loss_g"] - losses[0.0]["loss_g"] == pytest.approx(
        1000.0 * losses[0.0]["kl"], rel=1e-4)


def test_gradient_accumulation_is_deterministic_and_finite():
    cfg = ModelConfig(variant="paper", stage=1, **TINY)
    torch.manual_seed(0)
    a = StackGANModel(cfg, OptimConfig(grad_accumulation=2))
    torch.manual_seed(0)
    b = StackGANModel(cfg, OptimConfig(grad_accumulation=2))
    sa, sb = a.train_step(_batch(64), 0), b.train_step(_batch(64), 0)
    assert sa == sb and all(math.isfinite(v) for v in sa.values())
    # Two micro-batches of 3 are two separate forward passes (BatchNorm statistics and noise per
    # micro-batch): the D step's values are the means of what one model sees on each half alone,
    # with the noise of micro-batch k (micro_offset k of a one-micro-batch model).
    whole, halves = _batch(64), []
    for k in range(2):
        torch.manual_seed(0)
        alone = StackGANModel(cfg, OptimConfig(grad_accumulation=1))
        alone.micro_offset = k
        half = {"images": {64: whole["images"][64][3 * k:3 * k + 3]},
                "wrong_images": {64: whole["wrong_images"][64][3 * k:3 * k + 3]},
                "embedding": whole["embedding"][3 * k:3 * k + 3]}
        halves.append(alone.train_step(half, 0))
    for name in ("loss_d", "d_real", "d_wrong", "d_fake"):
        assert sa[name] == pytest.approx((halves[0][name] + halves[1][name]) / 2, rel=1e-6), name


def test_adam_epsilon_from_the_config_reaches_both_optimisers_of_every_family():
    """optim.eps: 1e-8 by default (all three originals); the gate's smoke scale sets 1e-3."""
    from baselines.gan_int_cls import GanIntClsConfig, GanIntClsModel

    for optim, eps in ((OptimConfig(), 1e-8), (OptimConfig(eps=1e-3), 1e-3)):
        stackgan = StackGANModel(ModelConfig(stage=1, **TINY), optim)
        baseline = GanIntClsModel(GanIntClsConfig(gf_dim=8, df_dim=8, image_size=64), optim)
        for opt in (stackgan.optG, stackgan.optD, baseline.optG, baseline.optD):
            assert [g["eps"] for g in opt.param_groups] == [eps] * len(opt.param_groups)


@pytest.mark.parametrize("variant, encodes", [("paper", ["real", "wrong", "fake", "fake"]),
                                              ("pytorch", ["real", "fake", "fake"])])
def test_the_pytorch_d_step_scores_wrong_pairs_on_the_real_features(variant, encodes):
    """StackGAN-Pytorch's D step encodes the real images once and scores the wrong pairs on
    those features shifted by one (``get_cond_logits(real_features[:B-1], cond[1:])``): the
    encoder runs on real and fake only, and d_wrong is the conditional head on real features
    0..B-2 with conditions 1..B-1 in the same BatchNorm state."""
    torch.manual_seed(0)
    model = StackGANModel(ModelConfig(variant=variant, stage=1, **TINY))
    batch = _batch(64)
    seen = []
    names = {batch["images"][64].data_ptr(): "real", batch["wrong_images"][64].data_ptr(): "wrong"}
    model.netD.encode.register_forward_pre_hook(
        lambda _m, args: seen.append(names.get(args[0].data_ptr(), "fake")))
    heads = []
    model.netD.cond_logits.register_forward_hook(lambda _m, args, out: heads.append((args, out)))
    stats = model.train_step(batch, 0)
    assert seen == encodes
    if variant == "pytorch":
        (h_real, c_real), _ = heads[0]
        (h_wrong, c_wrong), wrong_logits = heads[1]
        assert torch.equal(h_wrong, h_real[:-1]) and torch.equal(c_wrong, c_real[1:])
        assert stats["d_wrong"] == pytest.approx(torch.sigmoid(wrong_logits).mean().item())
