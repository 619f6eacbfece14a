import math

import numpy as np
import pytest
import torch

from baselines.gawwn import (
    GawwnConfig,
    GawwnModel,
    build_discriminator,
    build_generator,
    crop_box,
    keypoint_maps,
    paste_into_box,
)

TINY = dict(gf_dim=8, df_dim=4, t_dim=8, z_dim=8, text_dim=16, image_size=64)


# ----------------------------------------------------------------------------- spatial transformer
def test_a_constant_map_pasted_into_a_box_is_the_box_mask():
    ones = torch.ones(1, 1, 16, 16)
    # Box x in [0, 0.5]: output column j samples input column 2j exactly (corners aligned), so
    # columns 0..7 are inside and 8.. outside; y spans the image.
    mask = paste_into_box(ones, torch.tensor([[0.0, 0.0, 0.5, 1.0]]))[0, 0]
    assert torch.allclose(mask, torch.tensor([[1.0] * 8 + [0.0] * 8] * 16), atol=1e-6)
    # Box x in [0, 0.53]: column j samples p = j / 0.53; p = 15.09 for j = 8 is past the last
    # input column, which keeps the weight 16 - p = 0.906 of it (zero beyond).
    row = paste_into_box(ones, torch.tensor([[0.0, 0.0, 0.53, 1.0]]))[0, 0, 5]
    assert row.tolist() == pytest.approx([1.0] * 8 + [16 - 8 / 0.53] + [0.0] * 7, abs=1e-5)


def test_edges_of_a_pasted_box_follow_bilinear_sampling_with_zeros_outside():
    """Any box: output column j samples input position p_j (corners aligned); a constant map
    gives 1 inside [0, 15] and the in-range neighbour's weight within one pixel outside."""
    x0, x1, c = 0.21, 0.67, 2.5
    row = paste_into_box(torch.full((1, 1, 16, 16), c), torch.tensor([[x0, 0.0, x1, 1.0]]))[0, 0, 3]
    s, t = x1 - x0, x0 + x1 - 1
    for j in range(16):
        u = -1 + 2 * j / 15
        p = ((u - t) / s + 1) / 2 * 15
        expected = c * min(max(min(p + 1, 16 - p), 0.0), 1.0)
        assert row[j].item() == pytest.approx(expected, abs=1e-5), j
    assert row.sum().item() == pytest.approx(c * s * 16, abs=c)  # about the box's width


def test_a_map_pasted_into_a_half_size_box_is_shrunk_by_two():
    pattern = torch.arange(256, dtype=torch.float32).view(1, 1, 16, 16)
    out = paste_into_box(pattern, torch.tensor([[0.0, 0.0, 0.5, 0.5]]))[0, 0]
    assert torch.allclose(out[:8, :8], pattern[0, 0, ::2, ::2], atol=1e-4)
    # Row/column 8 samples input position 16 (one past the edge) up to float rounding.
    assert out[8:].abs().max() < 1e-3 and out[:, 8:].abs().max() < 1e-3


def _crop_and_resize(image: np.ndarray, box, size: int) -> np.ndarray:
    """A direct crop-and-resize: the box's corners at pixel coordinates frac·(n - 1) (the
    corner-aligned convention), ``size`` samples across, bilinear."""
    h, w = image.shape
    ys = np.linspace(box[1] * (h - 1), box[3] * (h - 1), size)
    xs = np.linspace(box[0] * (w - 1), box[2] * (w - 1), size)
    out = np.zeros((size, size))
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            y0, x0 = min(int(y), h - 2), min(int(x), w - 2)
            fy, fx = y - y0, x - x0
            out[i, j] = ((1 - fy) * (1 - fx) * image[y0, x0] + (1 - fy) * fx * image[y0, x0 + 1]
                         + fy * (1 - fx) * image[y0 + 1, x0] + fy * fx * image[y0 + 1, x0 + 1])
    return out


def test_the_discriminators_crop_of_a_box_equals_a_direct_crop_and_resize():
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(1, 1, 16, 16, generator=g)
    box = [0.13, 0.27, 0.71, 0.94]
    cropped = crop_box(maps, torch.tensor([box]))[0, 0].numpy()
    assert np.allclose(cropped, _crop_and_resize(maps[0, 0].numpy(), box, 16), atol=1e-5)


def test_keypoint_maps_mark_visible_parts_like_the_lua_loader():
    parts = torch.tensor([[[0.5, 0.25, 1.0],   # round(8) = 8, round(4) = 4 -> cell (3, 7)
                           [0.0, 1.0, 1.0],    # clipped to [1, 16] -> cell (15, 0)
                           [0.7, 0.7, 0.0],    # not visible -> an empty map
                           [0.53, 0.47, 1.0]]])  # floor(8.48 + .5) = 8, floor(7.52 + .5) = 8 -> (7, 7)
    maps = keypoint_maps(parts)
    assert maps.shape == (1, 4, 16, 16) and maps.sum().item() == 3
    assert maps[0, 0, 3, 7] == 1 and maps[0, 1, 15, 0] == 1 and maps[0, 2].sum() == 0
    assert maps[0, 3, 7, 7] == 1


# ----------------------------------------------------------------------------- networks
def _lua_bbox_counts(ngf: int, ndf: int, nt: int, nz: int, txt: int) -> tuple[int, int]:
    """Parameters of main_cub_bbox.lua's netG and netD, layer by layer (convs with bias, BN with
    weight and bias), as written in the Lua file."""
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    bn = lambda c: 2 * c  # noqa: E731
    lin = lambda cin, cout: cin * cout + cout  # noqa: E731
    g = lin(txt, 4 * ngf)  # prep_txt_g, shared by both pathways
    g += 3 * (conv(4 * ngf, 4 * ngf, 4) + bn(4 * ngf))  # txtGlobalG: 16 -> 8 -> 4 -> 1
    g += lin(nz, 4 * ngf)  # combiner_global's noise
    g += conv(8 * ngf, 8 * ngf, 4) + bn(8 * ngf) + conv(8 * ngf, 4 * ngf, 4) + bn(4 * ngf)
    g += conv(4 * ngf, 2 * ngf, 4) + bn(2 * ngf)  # globalG: 4 -> 8 -> 16
    g += lin(nz, 4 * ngf)  # prep_noise
    g += conv(8 * ngf, 8 * ngf, 4) + bn(8 * ngf)
    g += conv(8 * ngf, 2 * ngf, 1) + bn(2 * ngf) + conv(2 * ngf, 2 * ngf, 3) + bn(2 * ngf)
    g += conv(2 * ngf, 8 * ngf, 3) + bn(8 * ngf)
    g += conv(8 * ngf, 4 * ngf, 4) + bn(4 * ngf)
    g += conv(4 * ngf, ngf, 1) + bn(ngf) + conv(ngf, ngf, 3) + bn(ngf) + conv(ngf, 4 * ngf, 3) + bn(4 * ngf)
    g += conv(4 * ngf, 2 * ngf, 4) + bn(2 * ngf)  # convG
    g += conv(4 * ngf, 2 * ngf, 3) + bn(2 * ngf) + conv(2 * ngf, ngf, 4) + bn(ngf)
    g += conv(ngf, 32, 4) + bn(32) + conv(32, 3, 4)  # the output pathway
    d = conv(3, ndf, 4) + conv(ndf, ndf, 4) + conv(ndf, 2 * ndf, 4) + bn(2 * ndf)
    d += conv(2 * ndf, 2 * ndf, 3) + bn(2 * ndf)  # imgGlobalD (one module, used twice)
    d += lin(txt, nt)  # prep_txt_d
    d += conv(2 * ndf + nt, 2 * ndf, 3) + bn(2 * ndf) + conv(2 * ndf, 2 * ndf, 1) + bn(2 * ndf)
    d += conv(2 * ndf, ndf, 1)  # regionD
    d += conv(2 * ndf, 4 * ndf, 4) + bn(4 * ndf) + conv(4 * ndf, 8 * ndf, 4) + bn(8 * ndf)
    d += conv(nt, 4 * ndf, 4) + bn(4 * ndf) + conv(4 * ndf, ndf, 4) + bn(ndf)
    d += conv(9 * ndf, 4 * ndf, 1) + bn(4 * ndf) + conv(4 * ndf, ndf, 4) + bn(ndf)  # globalD
    d += lin(2 * ndf, ndf) + bn(ndf) + lin(ndf, 1)
    return g, d


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_box_model_has_the_parameters_of_the_lua_definition():
    cfg = GawwnConfig()  # NGF = NDF = 128, nt 128, z 100
    g, d = build_generator(cfg), build_discriminator(cfg)
    assert (_count(g), _count(d)) == _lua_bbox_counts(128, 128, 128, 100, 1024)
    assert (_count(g), _count(d)) == (73_545_699, 16_763_137)  # ≈ 73.5M / 16.8M (reedscot/nips2016)
    boxes = torch.tensor([[0.2, 0.2, 0.8, 0.9]] * 2)
    img = g(torch.randn(2, 1024), torch.randn(2, 100), boxes)
    assert img.shape == (2, 3, 128, 128) and d(img, torch.randn(2, 1024), boxes).shape == (2,)


def test_d_head_without_batchnorm_is_the_only_change():
    default, deviation = GawwnConfig(df_dim=16, gf_dim=16), GawwnConfig(df_dim=16, gf_dim=16, d_head_bn=False)
    d, d_nobn = build_discriminator(default), build_discriminator(deviation)
    assert _count(d) - _count(d_nobn) == 2 * 16  # the BatchNorm1d's weight and bias
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in d.head)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in d_nobn.head)


def test_keypoint_model_builds_at_128():
    cfg = GawwnConfig(conditioning="keypoints")
    g, d = build_generator(cfg), build_discriminator(cfg)
    parts = torch.rand(2, 15, 3)
    img = g(torch.randn(2, 1024), torch.randn(2, 100), parts)
    assert img.shape == (2, 3, 128, 128) and d(img, torch.randn(2, 1024), parts).shape == (2,)
    # The part maps enter G (and D) directly: moving a part changes the image.
    g.eval()
    moved = parts.clone()
    moved[:, :, :2] = 1 - moved[:, :, :2]
    emb, z = torch.randn(2, 1024), torch.randn(2, 100)
    assert not torch.allclose(g(emb, z, parts), g(emb, z, moved))


def test_where_the_box_is_changes_the_image():
    torch.manual_seed(0)
    g = build_generator(GawwnConfig(**TINY)).eval()
    emb, z = torch.randn(1, 16), torch.randn(1, 8)
    a = g(emb, z, torch.tensor([[0.0, 0.0, 0.5, 0.5]]))
    b = g(emb, z, torch.tensor([[0.5, 0.5, 1.0, 1.0]]))
    assert a.shape == (1, 3, 64, 64) and not torch.allclose(a, b)


# ----------------------------------------------------------------------------- training step
def _batch(b=6, size=64, parts=False):
    g = torch.Generator().manual_seed(3)
    batch = {"images": {size: torch.rand(b, 3, size, size, generator=g) * 2 - 1},
             "embedding": torch.randn(b, 16, generator=g)}
    if parts:
        batch["parts"] = torch.rand(b, 15, 3, generator=g)
    else:
        batch["box"] = torch.tensor([[0.1, 0.2, 0.8, 0.9]]).repeat(b, 1)
    return batch


@pytest.mark.parametrize("conditioning", ["bbox", "keypoints"])
def test_trains_a_few_steps_at_smoke_size(conditioning):
    torch.manual_seed(0)
    model = GawwnModel(GawwnConfig(conditioning=conditioning, **TINY))
    before = {k: v.clone() for k, v in model.netG.state_dict().items()}
    for step in range(3):
        stats = model.train_step(_batch(parts=conditioning == "keypoints"), step)
    assert all(math.isfinite(v) for v in stats.values()) and "d_wrong" in stats
    assert any(not torch.equal(before[k], v) for k, v in model.netG.state_dict().items())


def test_wrong_pair_is_the_same_image_and_box_with_shuffled_text_and_g_reuses_d(monkeypatch):
    torch.manual_seed(0)
    model = GawwnModel(GawwnConfig(**TINY))
    calls = []
    forward = model.netD.forward

    def spy(images, embedding, box):
        calls.append((images, embedding, box))
        return forward(images, embedding, box)

    monkeypatch.setattr(model.netD, "forward", spy)
    batch = _batch()
    model.train_step(batch, 0)
    assert len(calls) == 3  # real, wrong, fake: G's loss reuses the fake pass of the D step
    real = batch["images"][64]
    (r_img, r_emb, _), (w_img, w_emb, w_box), (f_img, _, _) = calls
    assert torch.equal(r_img, real) and torch.equal(w_img, real) and torch.equal(w_box, batch["box"])
    rows = [next(i for i in range(6) if torch.equal(w_emb[k], r_emb[i])) for k in range(6)]
    assert sorted(rows) == list(range(6))  # a permutation of the batch's texts
    assert f_img.requires_grad  # not detached: G's gradient flows through this D output


def test_config_errors_name_the_key():
    assert any("default_box" in e for e in GawwnConfig(default_box=[0.5, 0.5, 0.4, 0.9]).validate())
    assert any("conditioning" in e for e in GawwnConfig(conditioning="mask").validate())
    assert any("image_size" in e for e in GawwnConfig(image_size=96).validate())


# ----------------------------------------------------------------------------- data
def test_dataset_boxes_follow_crop_and_flip(smoke_data):
    from PIL import Image

    from harness.data.dataset import DataOptions, TextImageDataset

    ds = TextImageDataset(DataOptions(root=str(smoke_data), image_sizes=(64,), use_bbox=False,
                                      with_boxes=True, wrong_strategy="other_class"))
    x, y, w, h = ds.index.bboxes[0]
    width, height = Image.open(ds.index.image_paths[0]).size
    # Without augmentation: the centred 64 crop of the 76×76 resize.
    plain = TextImageDataset(DataOptions(root=str(smoke_data), image_sizes=(64,), use_bbox=False,
                                         with_boxes=True, augment=False, wrong_strategy="none"))
    box = plain[0]["box"]
    expected = [(x / width * 76 - 6) / 64, (y / height * 76 - 6) / 64,
                ((x + w) / width * 76 - 6) / 64, ((y + h) / height * 76 - 6) / 64]
    assert box.tolist() == pytest.approx([min(max(v, 0), 1) for v in expected], abs=1e-5)
    # A flipped sample mirrors the box; the box moves with the random crop.
    seen = set()
    for seed in range(12):
        s = ds[(0, seed)]
        assert 0 <= s["box"][0] < s["box"][2] <= 1 and 0 <= s["box"][1] < s["box"][3] <= 1
        assert "wrong_box" in s
        seen.add(tuple(round(v, 4) for v in s["box"].tolist()))
    assert len(seen) > 1


def test_dataset_parts_follow_crop_and_flip(smoke_data):
    from PIL import Image

    from harness.data.dataset import DataOptions, TextImageDataset

    opts = dict(root=str(smoke_data), image_sizes=(64,), use_bbox=False, with_parts=True,
                wrong_strategy="none", preprocessing="torch7", load_size=76)
    plain = TextImageDataset(DataOptions(augment=False, **opts))
    raw = plain.index.load_parts()[0]
    width, height = Image.open(plain.index.image_paths[0]).size
    parts = plain[0]["parts"]
    assert parts.shape == (15, 3) and torch.equal(parts[:, 2], torch.tensor(raw[:, 2], dtype=torch.float32))
    for (x, y, _), (px, py, _) in zip(raw, parts.tolist(), strict=True):
        assert px == pytest.approx(min(max((x / width * 76 - 6) / 64, 0), 1), abs=1e-5)
        assert py == pytest.approx(min(max((y / height * 76 - 6) / 64, 0), 1), abs=1e-5)
    ds = TextImageDataset(DataOptions(**opts))
    flipped = [s for s in (ds[(0, seed)] for seed in range(16)) if s["parts"][:, 0].sum() > 0]
    assert len({tuple(s["parts"][:, 0].tolist()) for s in flipped}) > 1


def test_gawwn_refuses_a_dataset_without_boxes(smoke_data):
    from harness.data.dataset import DataOptions, TextImageDataset
    from harness.data.sources import load_index
    from harness.errors import UserError

    index = load_index(smoke_data, "train")
    index.bboxes = None
    with pytest.raises(UserError, match="no bounding boxes"):
        TextImageDataset(DataOptions(root=str(smoke_data), with_boxes=True), index)


@pytest.mark.parametrize("preset", ["smoke_gawwn", "smoke_gawwn_keypoints"])
def test_gawwn_trains_samples_and_evaluates_through_the_harness(smoke_data, tmp_path, preset,
                                                                classifier_ckpt, monkeypatch):
    import json

    from conftest import smoke_config

    from harness.runner.sample import sample_run
    from harness.runner.trainer import train

    cfg = smoke_config(smoke_data, tmp_path, "name=g", preset=preset)
    train(cfg, progress=False)
    prov = json.loads((tmp_path / "g" / "provenance.json").read_text())
    assert prov["family"] == "gawwn" and prov["variant"] == cfg.gawwn.conditioning
    out = sample_run(tmp_path / "g", tmp_path / "s", split="test", limit=2, captions_per_image=1,
                     per_caption=2, progress=False)
    assert out["num_images"] == 4 and out["image_size"] == 64
    records = [json.loads(ln) for ln in (tmp_path / "s" / "manifest.jsonl").read_text().splitlines()]
    key = "box" if preset == "smoke_gawwn" else "parts"
    assert all(key in r for r in records)
    assert all(len(r["parts"]) == 15 for r in records) if key == "parts" else True
    from harness.eval.evaluate import EvalRequest, evaluate

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    result = evaluate(EvalRequest(fake=str(tmp_path / "s"), metrics=("is", "fid"), data=str(smoke_data),
                                  split="test", classifier=str(classifier_ckpt), size=64, splits=1))
    assert math.isfinite(result["values"]["is_mean"]) and result["values"]["fid"] > 0
