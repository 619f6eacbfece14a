import numpy as np
import torch
from conftest import write_random_embeddings
from PIL import Image

from harness.data.crop import bbox_crop_box
from harness.data.dataset import DataOptions, TextImageDataset


def _with_embeddings(root):
    return write_random_embeddings(root, 32, seed=1)


def test_paper_preprocessing_matches_independent_pil_pipeline(synth_copy):
    root = _with_embeddings(synth_copy)
    ds = TextImageDataset(DataOptions(str(root), image_sizes=(64, 128), augment=False))
    i = 5
    sample = ds[i]
    index = ds.index
    with Image.open(index.image_paths[i]) as im:
        im = im.convert("RGB")
        crop = im.crop(bbox_crop_box(index.bboxes[i], *im.size))
    big = crop.resize((152, 152), Image.BICUBIC)  # 128 * 76 / 64
    small = big.resize((76, 76), Image.BICUBIC)  # low-res: downsample of the high-res image
    for size, src in ((128, big), (64, small)):
        off = (src.size[0] - size) // 2
        arr = np.asarray(src, np.float32)[off:off + size, off:off + size] / 127.5 - 1
        assert np.allclose(sample["images"][size].permute(1, 2, 0).numpy(), arr, atol=1e-5)


def test_sample_contract_and_strategies(synth_copy):
    root = _with_embeddings(synth_copy)
    emb = np.asarray(TextImageDataset(DataOptions(str(root))).embeddings)
    torch.manual_seed(0)
    ds = TextImageDataset(DataOptions(str(root), image_sizes=(64,), text_strategy="mean4"))
    for i in (0, 7):
        s = ds[i]
        ids = s["caption_ids"].tolist()
        assert len(set(ids)) == 4 and all(0 <= c < 10 for c in ids)
        assert np.allclose(s["embedding"].numpy(), emb[i, ids].mean(0), atol=1e-6)
        assert s["caption"] in ds.index.captions(i)
        assert s["class_id"] == int(ds.index.class_ids[i])
        assert ds.index.class_ids[s["wrong_index"]] != s["class_id"]
        assert s["wrong_images"][64].shape == (3, 64, 64)
        x = s["images"][64]
        assert x.shape == (3, 64, 64) and x.min() >= -1 and x.max() <= 1
    one = TextImageDataset(DataOptions(str(root), text_strategy="one", wrong_strategy="in_batch",
                                       preprocessing="pytorch", image_sizes=(64, 256)))
    s = one[3]
    assert s["caption_ids"].tolist()[1:] == [-1, -1, -1] and "wrong_images" not in s
    assert np.allclose(s["embedding"].numpy(), emb[3, s["caption_ids"][0]])
    assert s["images"][256].shape == (3, 256, 256)


def test_augmentation_is_governed_by_the_torch_seed(synth_copy):
    root = _with_embeddings(synth_copy)
    ds = TextImageDataset(DataOptions(str(root)))
    torch.manual_seed(7)
    a = ds[4]
    torch.manual_seed(7)
    b = ds[4]
    assert torch.equal(a["images"][64], b["images"][64]) and torch.equal(a["embedding"], b["embedding"])
    # Augmentation is on: other seeds crop and flip the same image differently ...
    seen = set()
    for seed in range(8):
        torch.manual_seed(seed)
        seen.add(ds[4]["images"][64].numpy().tobytes())
    assert len(seen) > 1
    # ... and off, every seed gives the same (centre) crop.
    plain = TextImageDataset(DataOptions(str(root), augment=False))
    fixed = set()
    for seed in range(4):
        torch.manual_seed(seed)
        fixed.add(plain[4]["images"][64].numpy().tobytes())
    assert len(fixed) == 1


def test_dataloader_collates_samples(synth_copy):
    root = _with_embeddings(synth_copy)
    ds = TextImageDataset(DataOptions(str(root), image_sizes=(64,)))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch["images"][64].shape == (4, 3, 64, 64) and len(batch["caption"]) == 4
    assert batch["embedding"].shape == (4, 32)


def test_image_cache_is_exact(synth_copy):
    root = _with_embeddings(synth_copy)
    plain = TextImageDataset(DataOptions(str(root), image_sizes=(64, 128)))
    cached = TextImageDataset(DataOptions(str(root), image_sizes=(64, 128), cache_images=True))
    for _ in range(2):  # the second pass reads from the cache
        for i in (0, 3):
            a, b = plain[(i, 11 + i)], cached[(i, 11 + i)]
            assert all(torch.equal(a["images"][s], b["images"][s]) for s in (64, 128))
            assert all(torch.equal(a["wrong_images"][s], b["wrong_images"][s]) for s in (64, 128))
    assert len(cached._cache) >= 2 and not plain._cache


def test_torch7_scale_matches_a_hand_computation():
    import numpy as np

    from harness.data.transforms import torch7_scale

    # Shrinking 6 -> 4 pixels (scale 1.5): each output averages its 1.5-pixel span, edge pixels
    # weighted by the fraction covered (torch/image scaleLinear_rowcol).
    row = np.array([[[0], [30], [60], [90], [120], [150]]], dtype=np.uint8)  # 1 × 6 × 1
    out = torch7_scale(row, 1, 4)[0, :, 0]
    expected = [(0 + 0.5 * 30) / 1.5, (0.5 * 30 + 60) / 1.5, (90 + 0.5 * 120) / 1.5,
                (0.5 * 120 + 150) / 1.5]
    assert out.tolist() == [round(v) for v in expected]
    # Enlarging 3 -> 5: linear with both end pixels aligned.
    col = np.array([[[0]], [[100]], [[200]]], dtype=np.uint8)  # 3 × 1 × 1
    assert torch7_scale(col, 5, 1)[:, 0, 0].tolist() == [0, 50, 100, 150, 200]
