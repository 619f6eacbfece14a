import math

import pytest
import torch

from baselines.gawwn import Discriminator, GawwnConfig, GawwnModel, Generator, box_mask

TINY = dict(gf_dim=8, df_dim=4, t_dim=8, z_dim=8, text_dim=16, image_size=64, grid_size=16)


def test_box_mask_is_the_covered_share_of_each_cell():
    # On a 4×4 grid each cell is 0.25 wide: x from 0.125 to 0.75 covers half of column 0,
    # all of columns 1 and 2; y from 0.5 to 0.875 covers rows 2 and half of row 3.
    mask = box_mask(torch.tensor([[0.125, 0.5, 0.75, 0.875]]), 4)[0, 0]
    expected = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 0],
                             [0.5, 1, 1, 0], [0.25, 0.5, 0.5, 0]])
    assert torch.allclose(mask, expected)
    # The mask's total is the box area in cells.
    box = torch.tensor([[0.1, 0.2, 0.7, 0.9]])
    assert box_mask(box, 16).sum().item() == pytest.approx(0.6 * 0.7 * 256, rel=1e-5)


def test_generator_local_pathway_sees_only_the_box():
    torch.manual_seed(0)
    g = Generator(GawwnConfig(**TINY)).eval()
    emb, z = torch.randn(1, 16), torch.randn(1, 8)
    box = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    t = g.text(emb)
    from baselines.gawwn import _replicate

    mask = box_mask(box, 16)
    local = g.local_path(_replicate(t, 16) * mask) * mask
    assert local[..., 8:, :].abs().sum() == 0 and local[..., :8, 8:].abs().sum() == 0
    assert local[..., :8, :8].abs().sum() > 0
    # Moving the box changes the image: the "where" input is used.
    a = g(emb, z, box)
    b = g(emb, z, torch.tensor([[0.5, 0.5, 1.0, 1.0]]))
    assert a.shape == (1, 3, 64, 64) and not torch.allclose(a, b)


def test_paper_sizes_build_at_128():
    cfg = GawwnConfig()
    g, d = Generator(cfg), Discriminator(cfg)
    boxes = torch.tensor([[0.2, 0.2, 0.8, 0.9]] * 2)
    img = g(torch.randn(2, 1024), torch.randn(2, 100), boxes)
    assert img.shape == (2, 3, 128, 128)
    assert d(img, torch.randn(2, 1024), boxes).shape == (2,)


def _batch(b=6, size=64):
    g = torch.Generator().manual_seed(3)
    boxes = torch.tensor([[0.1, 0.2, 0.8, 0.9]]).repeat(b, 1)
    return {"images": {size: torch.rand(b, 3, size, size, generator=g) * 2 - 1},
            "wrong_images": {size: torch.rand(b, 3, size, size, generator=g) * 2 - 1},
            "embedding": torch.randn(b, 16, generator=g), "box": boxes, "wrong_box": boxes.flip(0)}


def test_trains_a_few_steps_at_smoke_size():
    torch.manual_seed(0)
    model = GawwnModel(GawwnConfig(**TINY))
    before = {k: v.clone() for k, v in model.netG.state_dict().items()}
    for step in range(3):
        stats = model.train_step(_batch(), step)
    assert all(math.isfinite(v) for v in stats.values()) and "d_wrong" in stats
    assert any(not torch.equal(before[k], v) for k, v in model.netG.state_dict().items())


def test_config_errors_name_the_key():
    assert any("default_box" in e for e in GawwnConfig(default_box=[0.5, 0.5, 0.4, 0.9]).validate())
    assert any("grid_size" in e for e in GawwnConfig(grid_size=12).validate())


def test_dataset_boxes_follow_crop_and_flip(smoke_data):
    from harness.data.dataset import DataOptions, TextImageDataset

    ds = TextImageDataset(DataOptions(root=str(smoke_data), image_sizes=(64,), use_bbox=False,
                                      with_boxes=True, wrong_strategy="other_class"))
    x, y, w, h = ds.index.bboxes[0]
    from PIL import Image

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


def test_gawwn_runs_through_the_trainer_and_sampler(smoke_data, tmp_path):
    import json

    from conftest import smoke_config

    from harness.runner.sample import sample_run
    from harness.runner.trainer import train

    train(smoke_config(smoke_data, tmp_path, "name=g", preset="smoke_gawwn"), progress=False)
    prov = json.loads((tmp_path / "g" / "provenance.json").read_text())
    assert prov["family"] == "gawwn"
    out = sample_run(tmp_path / "g", tmp_path / "s", split="test", limit=2, captions_per_image=1,
                     per_caption=2, progress=False)
    assert out["num_images"] == 4 and out["image_size"] == 64
    records = [json.loads(ln) for ln in (tmp_path / "s" / "manifest.jsonl").read_text().splitlines()]
    assert all(len(r["box"]) == 4 for r in records)


def test_gawwn_refuses_a_dataset_without_boxes(smoke_data, tmp_path):
    from harness.data.dataset import DataOptions, TextImageDataset
    from harness.data.sources import load_index
    from harness.errors import UserError

    index = load_index(smoke_data, "train")
    index.bboxes = None
    with pytest.raises(UserError, match="no bounding boxes"):
        TextImageDataset(DataOptions(root=str(smoke_data), with_boxes=True), index)
