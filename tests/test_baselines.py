import math

import pytest
import torch

from baselines.gan_int_cls import (
    VARIANTS,
    Discriminator,
    GanIntClsConfig,
    GanIntClsModel,
    Generator,
    discriminator_loss,
    interpolated_conditions,
)

TINY = dict(gf_dim=8, df_dim=4, t_dim=8, z_dim=8, text_dim=16)


def test_interpolated_conditions_match_a_hand_computation():
    emb = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    # i = 0 pairs with the last row (t_{-1}), i = 1 with row 0; beta = 0.5 averages them.
    assert interpolated_conditions(emb, 0.5).tolist() == [[4.0, 5.0], [2.0, 3.0]]
    assert interpolated_conditions(emb, 0.25).tolist() == [[0.25 * 1 + 0.75 * 7, 0.25 * 2 + 0.75 * 8],
                                                            [0.25 * 3 + 0.75 * 1, 0.25 * 4 + 0.75 * 2]]


def test_matching_aware_loss_matches_a_hand_computation():
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731  softplus
    real, fake, wrong = torch.tensor([1.0, -2.0]), torch.tensor([0.5, -0.5]), torch.tensor([2.0, 0.0])
    cls = (sp(-1.0) + sp(2.0)) / 2 + 0.5 * ((sp(2.0) + sp(0.0)) / 2 + (sp(0.5) + sp(-0.5)) / 2)
    plain = (sp(-1.0) + sp(2.0)) / 2 + (sp(0.5) + sp(-0.5)) / 2
    assert discriminator_loss(real, fake, wrong).item() == pytest.approx(cls, rel=1e-6)
    assert discriminator_loss(real, fake).item() == pytest.approx(plain, rel=1e-6)


def test_layers_follow_reference_4():
    cfg = GanIntClsConfig()  # z 100, text 1024 -> 128, gf 128, df 64
    g, d = Generator(cfg), Discriminator(cfg)
    deconvs = [m for m in g.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels) for m in deconvs] == [(1024, 512), (512, 256), (256, 128),
                                                                  (128, 3)]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in d.text.modules()) == 1
    img = g(torch.randn(2, 1024), torch.randn(2, 100))
    assert img.shape == (2, 3, 64, 64) and d(img, torch.randn(2, 1024)).shape == (2,)


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


def test_int_adds_half_a_batch_of_interpolated_conditions(monkeypatch):
    seen = []
    torch.manual_seed(0)
    model = GanIntClsModel(GanIntClsConfig(variant="gan_int", **TINY))
    original = model.netG.forward

    def spy(embedding, noise):
        seen.append(embedding.shape[0])
        return original(embedding, noise)

    monkeypatch.setattr(model.netG, "forward", spy)
    model.train_step(_batch(6), 0)
    assert seen == [6, 3]


def test_baseline_runs_through_the_same_trainer_sampler_and_resume(smoke_data, tmp_path):
    import json

    from conftest import smoke_config

    from harness.runner.checkpoint import load_checkpoint
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
    with pytest.raises(UserError, match="no micro-batches"):
        load_config("smoke_gan_int_cls", ["optim.grad_accumulation=2"])
