import math

import numpy as np
import pytest
import torch
from torch import nn

from baselines.gan_int_cls import (
    VARIANTS,
    Discriminator,
    GanIntClsConfig,
    GanIntClsModel,
    Generator,
    discriminator_loss,
    generator_loss,
    interpolated_conditions,
)

TINY = dict(gf_dim=8, df_dim=4, t_dim=8, z_dim=8, text_dim=16)


def sp(x: float) -> float:  # softplus: BCE(sigmoid(x), 0); sp(-x) is BCE(sigmoid(x), 1)
    return math.log1p(math.exp(x))


def test_interpolated_conditions_pair_the_two_halves_of_the_batch():
    emb = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    # main_cls_int.lua interp_type 1: (t_i + t_{i+B/2}) / 2 for i < B/2.
    assert interpolated_conditions(emb).tolist() == [[3.0, 4.0], [5.0, 6.0]]


def test_matching_aware_loss_matches_a_hand_computation():
    real, fake, wrong = torch.tensor([1.0, -2.0]), torch.tensor([0.5, -0.5]), torch.tensor([2.0, 0.0])
    cls = (sp(-1.0) + sp(2.0)) / 2 + 0.5 * ((sp(2.0) + sp(0.0)) / 2 + (sp(0.5) + sp(-0.5)) / 2)
    plain = (sp(-1.0) + sp(2.0)) / 2 + (sp(0.5) + sp(-0.5)) / 2
    assert discriminator_loss(real, fake, wrong).item() == pytest.approx(cls, rel=1e-6)
    assert discriminator_loss(real, fake).item() == pytest.approx(plain, rel=1e-6)
    weighted = (sp(-1.0) + sp(2.0)) / 2 + 0.3 * (sp(2.0) + sp(0.0)) / 2 + 0.7 * (sp(0.5) + sp(-0.5)) / 2
    assert discriminator_loss(real, fake, wrong, 0.3).item() == pytest.approx(weighted, rel=1e-6)


def test_generator_loss_divides_the_weighted_sum_by_every_entry():
    # Torch's BCECriterion(weights) with sizeAverage: sum(w_i * l_i) / N, N counting the
    # zero-weighted interpolations too (GAN and GAN-CLS through main_cls_int.lua).
    logits = torch.tensor([1.0, -1.0, 0.5, 2.0, -3.0, 0.0])
    w = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])
    expected = (sp(-1.0) + sp(1.0) + sp(-0.5) + sp(-2.0)) / 6
    assert generator_loss(logits, w).item() == pytest.approx(expected, rel=1e-6)
    assert generator_loss(logits).item() == pytest.approx(sum(sp(-v) for v in logits.tolist()) / 6,
                                                          rel=1e-6)


def _layer_kinds(seq: nn.Module) -> list[str]:
    names = {nn.Conv2d: "conv", nn.BatchNorm2d: "bn", nn.LeakyReLU: "lrelu", nn.ReLU: "relu"}
    return [names[type(m)] for m in seq]


def test_discriminator_layers_follow_each_lua_script():
    # main_cls_int.lua: conv 64, lrelu; conv 128, BN, lrelu; conv 256, BN (no activation);
    # conv 512, BN; then the residual branch. main_cls.lua activates after the 256 BN.
    expected = {"cls_int": ["conv", "lrelu", "conv", "bn", "lrelu", "conv", "bn", "conv", "bn"],
                "cls": ["conv", "lrelu", "conv", "bn", "lrelu", "conv", "bn", "lrelu", "conv", "bn"]}
    for script, kinds in expected.items():
        d = Discriminator(GanIntClsConfig(variant="gan_cls", script=script))
        assert _layer_kinds(d.encode.main) == kinds, script
        widths = [m.out_channels for m in d.encode.main if isinstance(m, nn.Conv2d)]
        assert widths == [64, 128, 256, 512]
        # The text head: Linear -> BN -> LeakyReLU (cls_int), Linear -> LeakyReLU (cls).
        assert [type(m) for m in d.text] == ([nn.Linear, nn.BatchNorm1d, nn.LeakyReLU]
                                             if script == "cls_int" else [nn.Linear, nn.LeakyReLU])
        # The Lua code zeroes every conv bias before each update: none here.
        assert all(m.bias is None for m in d.modules() if isinstance(m, nn.Conv2d))


def test_generator_layers_follow_main_cls_int():
    cfg = GanIntClsConfig()  # z 100, text 1024 -> 128, gf 128
    g = Generator(cfg)
    deconvs = [m for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride) for m in deconvs] == [
        (228, 1024, (4, 4), (1, 1)), (1024, 512, (4, 4), (2, 2)), (512, 256, (4, 4), (2, 2)),
        (256, 128, (4, 4), (2, 2)), (128, 3, (4, 4), (2, 2))]
    # The first transposed conv's BN is per channel (SpatialBatchNormalization), not per unit.
    assert isinstance(g.project[1], nn.BatchNorm2d) and g.project[1].num_features == 1024
    assert all(m.bias is None for m in deconvs + [m for m in g.modules() if isinstance(m, nn.Conv2d)])
    # Linear layers keep Torch7's default init U(±1/sqrt(fan_in)) (the Lua init skips them).
    bound = 1 / math.sqrt(1024)
    assert g.text[0].weight.abs().max() <= bound and g.text[0].bias.abs().max() > 0
    assert g.text[0].weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    img = g(torch.randn(2, 1024), torch.randn(2, 100))
    assert img.shape == (2, 3, 64, 64) and Discriminator(cfg)(img, torch.randn(2, 1024)).shape == (2,)


def _batch(b=6):
    g = torch.Generator().manual_seed(3)
    return {"images": {64: torch.rand(b, 3, 64, 64, generator=g) * 2 - 1},
            "wrong_images": {64: torch.rand(b, 3, 64, 64, generator=g) * 2 - 1},
            "embedding": torch.randn(b, 16, generator=g)}


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_trains_at_smoke_size(variant):
    torch.manual_seed(0)
    model = GanIntClsModel(GanIntClsConfig(variant=variant, **TINY))
    before = {k: v.clone() for k, v in model.netG.state_dict().items()}
    batch = _batch()
    if "cls" not in variant:
        del batch["wrong_images"]  # only the matching-aware D reads wrong images
    for step in range(3):
        stats = model.train_step(batch, step)
    assert all(math.isfinite(v) for v in stats.values())
    assert ("d_wrong" in stats) == ("cls" in variant)
    assert any(not torch.equal(before[k], v) for k, v in model.netG.state_dict().items())


@pytest.mark.parametrize("variant, script", [(v, "cls_int") for v in VARIANTS] + [("gan_cls", "cls")])
def test_g_update_is_one_pass_with_fresh_noise(monkeypatch, variant, script):
    """main_cls_int.lua: G and D run once over 1.5·B conditions (B real + B/2 interpolations) with
    new noise, the interpolations weighted by interp_weight (0 without INT); main_cls.lua: B."""
    torch.manual_seed(0)
    model = GanIntClsModel(GanIntClsConfig(variant=variant, script=script, **TINY))
    calls = []
    g_forward, d_forward = model.netG.forward, model.netD.forward

    def g_spy(embedding, noise):
        calls.append(("G", embedding.detach().clone(), noise.clone()))
        return g_forward(embedding, noise)

    def d_spy(images, embedding):
        out = d_forward(images, embedding)
        calls.append(("D", embedding.detach().clone(), out.detach().clone()))
        return out

    monkeypatch.setattr(model.netG, "forward", g_spy)
    monkeypatch.setattr(model.netD, "forward", d_spy)
    batch = _batch(6)
    stats = model.train_step(batch, 0)
    (_, _, d_noise), g_step = calls[0], calls[-2]
    assert g_step[0] == "G" and calls[-1][0] == "D"
    emb = batch["embedding"]
    wanted = torch.cat([emb, interpolated_conditions(emb)]) if script == "cls_int" else emb
    assert torch.equal(g_step[1], wanted) and torch.equal(calls[-1][1], wanted)
    assert g_step[2].shape[0] == len(wanted)
    assert not torch.equal(g_step[2][:6], d_noise)  # fresh noise, not the D step's
    weight = 1.0 if "int" in variant else 0.0
    weights = torch.cat([torch.ones(6), torch.full((len(wanted) - 6,), weight)])
    assert stats["loss_g"] == pytest.approx(generator_loss(calls[-1][2], weights).item(), rel=1e-6)


def test_coco_preset_is_the_released_gan_cls():
    from harness.config.load import load_config

    cfg = load_config("gan_int_cls_coco")
    b = cfg.baseline
    assert (b.variant, b.script, b.gf_dim, b.df_dim, b.t_dim) == ("gan_cls", "cls", 196, 196, 128)
    assert (cfg.data.text_strategy, cfg.train.epochs, cfg.optim.lr_decay_epochs) == ("mean3", 200, 40)
    assert cfg.data.use_bbox is False
    birds = load_config("gan_int_cls_birds")
    assert (birds.baseline.script, birds.data.text_strategy) == ("cls_int", "mean4_replace")
    assert birds.data.preprocessing == "torch7" and birds.data.use_bbox is False


def test_caption_strategies_draw_as_the_originals(smoke_data):
    from harness.data.dataset import DataOptions, TextImageDataset

    def drawn(strategy):
        ds = TextImageDataset(DataOptions(root=str(smoke_data), text_strategy=strategy,
                                          wrong_strategy="none", augment=False))
        return [[c for c in ds[(0, seed)]["caption_ids"].tolist() if c >= 0] for seed in range(40)]

    with_replacement = drawn("mean4_replace")
    assert all(len(c) == 4 for c in with_replacement)
    assert any(len(set(c)) < 4 for c in with_replacement)  # P(no repeat) ≈ 0.5 per draw
    for c in drawn("mean4"):
        assert len(c) == 4 and len(set(c)) == 4
    for c in drawn("mean3"):
        assert len(c) == 3 and len(set(c)) == 3
    held_out = drawn("mean4_holdout1")
    assert all(len(set(c)) == 4 and max(c) <= 8 for c in held_out)  # never the 10th caption
    assert {i for c in held_out for i in c} == set(range(9))


def test_whole_image_models_never_load_the_box_cropped_pickles(smoke_data, tmp_path):
    """The released 76images.pickle is box-cropped: GAN-INT-CLS (use_bbox: false) must decode the
    JPEGs even when the pickle is there; a box-cropping StackGAN run may use it."""
    import shutil

    from conftest import smoke_config

    from harness.data.safe_pickle import dump_pickle
    from harness.data.sources import load_index
    from harness.runner.build import build_dataset

    root = tmp_path / "birds"
    shutil.copytree(smoke_data, root)
    n = len(load_index(root, "train"))
    dump_pickle(np.zeros((n, 76, 76, 3), dtype=np.uint8), root / "train" / "76images.pickle")
    gan = build_dataset(smoke_config(root, tmp_path, "data.preresized=auto", preset="smoke_gan_int_cls"))
    assert gan.preresized is None
    assert gan[(0, 0)]["images"][64].min() > -1  # not the all-black pickle
    stackgan = build_dataset(smoke_config(root, tmp_path, "data.preresized=auto", "data.preprocessing=paper"))
    assert stackgan.preresized is not None
    assert torch.all(stackgan[(0, 0)]["images"][64] == -1)
    from harness.errors import UserError

    with pytest.raises(UserError, match="box-cropped"):
        build_dataset(smoke_config(root, tmp_path, "data.preresized=require", preset="smoke_gan_int_cls"))


def test_baseline_runs_through_the_same_trainer_sampler_and_resume(smoke_data, tmp_path):
    import json

    from conftest import smoke_config

    from harness.checkpoints import load_checkpoint
    from harness.runner.sample import sample_run
    from harness.runner.trainer import train

    straight = smoke_config(smoke_data, tmp_path, "train.max_steps=6", "name=straight",
                            preset="smoke_gan_int_cls")
    train(straight, progress=False)
    train(smoke_config(smoke_data, tmp_path, "train.max_steps=3", "name=resumed",
                       preset="smoke_gan_int_cls"), progress=False)
    train(smoke_config(smoke_data, tmp_path, "train.max_steps=6", "name=resumed",
                       preset="smoke_gan_int_cls"), resume=True, progress=False)
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "final.pt")["model"]["netG"]
    b = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "final.pt")["model"]["netG"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    prov = json.loads((tmp_path / "straight" / "provenance.json").read_text())
    assert prov["family"] == "gan_int_cls" and prov["variant"] == "gan_int_cls"
    out = sample_run(tmp_path / "straight", tmp_path / "s", split="test", limit=2,
                     captions_per_image=1, per_caption=2, progress=False)
    assert out["num_images"] == 4 and out["image_size"] == 64


def test_baseline_config_is_validated():
    from harness.config.load import load_config
    from harness.errors import UserError

    with pytest.raises(UserError, match="baseline.variant 'gan_xyz'"):
        load_config("smoke_gan_int_cls", ["baseline.variant=gan_xyz"])
    with pytest.raises(UserError, match="no INT step"):
        load_config("smoke_gan_int_cls", ["baseline.script=cls"])
    with pytest.raises(UserError, match="no micro-batches"):
        load_config("smoke_gan_int_cls", ["optim.grad_accumulation=2"])
