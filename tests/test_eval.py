import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from harness.errors import UserError
from harness.eval import inception_weights as iw
from harness.eval.classifier import ClassifierOptions, load_classifier, prepare
from harness.eval.engine import EvalSettings, evaluate_sets, real_cache_name
from harness.serialization import save_torch_atomic


class Images(Dataset):
    def __init__(self, tensor):
        self.t = tensor

    def __len__(self):
        return len(self.t)

    def __getitem__(self, i):
        return self.t[i]


def _images(n, seed, size=32, shift=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(0, 200, (n, 3, size, size), generator=g)
    return (base + shift).clamp(0, 255).to(torch.uint8)


def _settings(ckpt, tmp_path, **kw):
    return EvalSettings(weights_path=str(ckpt), weights_sha256="x", cache_root=str(tmp_path / "cache"), **kw)


def _direct_features(ckpt, images):
    model, _ = load_classifier(ckpt)
    with torch.no_grad():
        out = model.forward_all(prepare(images, 64))
    return out["mid"].double().numpy(), out["pool"], out["logits"]


def numpy_fid(f1, f2):
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def numpy_kid(f1, f2):
    """Unbiased MMD² with the cubic polynomial kernel (x·y/d + 1)^3 on the full sets."""
    d = f1.shape[1]
    k = lambda a, b: (a @ b.T / d + 1) ** 3  # noqa: E731
    kxx, kyy, kxy = k(f1, f1), k(f2, f2), k(f1, f2)
    m, n = len(f1), len(f2)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())


def test_fid_and_kid_match_numpy_scipy_on_the_same_features(classifier_ckpt, tmp_path):
    fake, real = _images(150, 1) // 3, _images(120, 2, shift=30)
    result = evaluate_sets(Images(fake), Images(real), ("fid", "kid"),
                           _settings(classifier_ckpt, tmp_path, kid_subset_size=120, kid_subsets=3))
    f1, f2 = _direct_features(classifier_ckpt, fake)[0], _direct_features(classifier_ckpt, real)[0]
    assert result["values"]["fid"] == pytest.approx(numpy_fid(f1, f2), rel=1e-6)
    # KID against numpy: test_kid_matches_numpy_on_known_features (these features are so close
    # that float32 cancellation dominates the kernel sums).


class PixelFeatures(FeatureExtractorBase):
    """Features read straight from the pixels: the first 16 values of row 0 of channel 0, /255."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)

    @staticmethod
    def get_provided_features_list():
        return ("pixels",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "pixels"

    @staticmethod
    def can_be_compiled():
        return False

    def forward(self, x):
        return (x[:, 0, 0, :16].double() / 255,)


def test_kid_matches_numpy_on_known_features(tmp_path):
    if "test-pixels" not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor("test-pixels", PixelFeatures)
    a, b = _images(120, 3) // 2, _images(120, 12, shift=40)
    settings = EvalSettings(extractor="test-pixels", kid_subset_size=120, kid_subsets=3,
                            cache_root=str(tmp_path))
    kid = evaluate_sets(Images(a), Images(b), ("kid", "fid"), settings)
    fa, fb = (x[:, 0, 0, :16].double().numpy() / 255 for x in (a, b))
    # Subsets as large as the sets are permutations of them; the unbiased MMD² does not depend
    # on the order, so every subset gives the full-set value and the std is 0.
    assert kid["values"]["kid_mean"] == pytest.approx(numpy_kid(fa, fb), rel=1e-6)
    assert kid["values"]["kid_mean"] > 0.01
    assert kid["values"]["kid_std"] == pytest.approx(0.0, abs=1e-12)
    assert kid["values"]["fid"] == pytest.approx(numpy_fid(fa, fb), rel=1e-6)


def test_features_equal_a_direct_forward(classifier_ckpt):
    from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

    from harness.eval import classifier

    classifier.register()
    images = _images(20, 4)
    fx = create_feature_extractor("dataset-classifier", ["pool", "logits"], cuda=False,
                                  feature_extractor_weights_path=str(classifier_ckpt), verbose=False)
    feats = get_featuresdict_from_dataset(Images(images), fx, 7, False, True, False)
    _, pool, logits = _direct_features(classifier_ckpt, images)
    assert torch.allclose(feats["pool"].double(), pool.double(), rtol=1e-5, atol=1e-6)
    assert torch.allclose(feats["logits"], logits, rtol=1e-5, atol=1e-6)


def test_fid_of_a_set_against_itself_is_zero(classifier_ckpt, tmp_path):
    images = _images(100, 5)
    settings = _settings(classifier_ckpt, tmp_path)
    result = evaluate_sets(Images(images), Images(images.clone()), ("fid",), settings)
    assert abs(result["values"]["fid"]) < 1e-6


class OneHotByPixel(FeatureExtractorBase):
    """Logits = 50 × one-hot of the class written in each image's first pixel."""

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)

    @staticmethod
    def get_provided_features_list():
        return ("logits",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return "logits"

    @staticmethod
    def can_be_compiled():
        return False

    def forward(self, x):
        return (50.0 * torch.nn.functional.one_hot(x[:, 0, 0, 0].long(), 4).float(),)


def test_inception_score_on_constructed_logits_uses_population_std(tmp_path):
    if "test-onehot" not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor("test-onehot", OneHotByPixel)
    n, classes, splits, seed = 100, 4, 10, 7
    labels = torch.tensor([i % classes for i in range(n)])
    images = torch.zeros(n, 3, 8, 8, dtype=torch.uint8)
    images[:, 0, 0, 0] = labels.to(torch.uint8)
    settings = EvalSettings(extractor="test-onehot", isc_splits=splits, seed=seed,
                            cache_root=str(tmp_path))
    result = evaluate_sets(Images(images), None, ("is",), settings)
    # With one-hot p(y|x), a split's score is exp(H(q)) of its empirical class distribution q.
    order = np.random.RandomState(seed).permutation(n)
    scores = []
    for i in range(splits):
        chunk = labels[order[i * n // splits:(i + 1) * n // splits]]
        q = np.bincount(chunk.numpy(), minlength=classes) / len(chunk)
        scores.append(math.exp(-sum(p * math.log(p) for p in q if p > 0)))
    assert result["values"]["is_mean"] == pytest.approx(np.mean(scores), rel=1e-6)
    assert result["values"]["is_std"] == pytest.approx(np.std(scores), rel=1e-6)  # population
    assert result["values"]["is_std"] != pytest.approx(np.std(scores, ddof=1), rel=1e-3)
    same = images.clone()
    same[:, 0, 0, 0] = 2  # one class everywhere: IS is exactly 1
    assert evaluate_sets(Images(same), None, ("is",), settings)["values"]["is_mean"] == pytest.approx(1.0)


def test_same_inputs_same_values_and_batch_size_independent(classifier_ckpt, tmp_path):
    fake, real = _images(90, 6), _images(80, 7, shift=20)
    runs = [evaluate_sets(Images(fake), Images(real), ("is", "fid", "kid"),
                          _settings(classifier_ckpt, tmp_path, batch_size=b, kid_subset_size=50,
                                    kid_subsets=5))["values"] for b in (64, 64, 7)]
    assert runs[0] == runs[1]
    for k in runs[0]:
        assert runs[2][k] == pytest.approx(runs[0][k], rel=1e-4, abs=1e-8), k


def test_small_samples_are_flagged_not_crashed(classifier_ckpt, tmp_path):
    fake, real = _images(30, 8), _images(40, 9)
    result = evaluate_sets(Images(fake), Images(real), ("fid", "kid"), _settings(classifier_ckpt, tmp_path))
    text = " ".join(result["warnings"])
    assert "FID from 30 images with 32-dimensional features is unreliable" in text
    assert "KID subset size lowered from 1000 to 30" in text
    assert result["settings"]["kid_subset_size"] == 30 and math.isfinite(result["values"]["kid_mean"])


def test_real_cache_name_covers_every_setting():
    base = EvalSettings(weights_sha256="a")
    desc = {"data": "fp", "split": "test", "size": 64, "bbox": True, "n": 100}
    names = {real_cache_name(base, desc)}
    for change in ({"size": 128}, {"bbox": False}, {"n": 99}, {"data": "fp2"}, {"split": "train"}):
        names.add(real_cache_name(base, {**desc, **change}))
    names.add(real_cache_name(EvalSettings(weights_sha256="b"), desc))
    names.add(real_cache_name(EvalSettings(weights_sha256="a", seed=1), desc))
    names.add(real_cache_name(EvalSettings(weights_sha256="a", extractor="inception-v3-compat"), desc))
    assert len(names) == 9


def test_real_features_are_cached_and_reused(classifier_ckpt, tmp_path, monkeypatch):
    fake, real = _images(60, 10), _images(60, 11)
    desc = {"data": "fp", "split": "test", "size": 32, "n": 60}
    first = evaluate_sets(Images(fake), Images(real), ("fid",), _settings(classifier_ckpt, tmp_path), desc)
    cached = list((tmp_path / "cache").glob(f"{first['settings']['real_cache_name']}*"))
    assert cached

    class Exploding(Images):
        def __getitem__(self, i):
            raise AssertionError("the real set was read again")

    settings = _settings(classifier_ckpt, tmp_path)
    second = evaluate_sets(Images(fake), Exploding(real), ("fid",), settings, desc)
    assert second["values"] == first["values"]


def test_inception_weights_missing_wrong_and_any(tmp_path, monkeypatch):
    monkeypatch.delenv(iw.ENV_VAR, raising=False)
    monkeypatch.setattr(iw, "_hub_cache_path", lambda: tmp_path / "hub" / iw.FILE_NAME)
    missing = iw.resolve_inception_weights()
    assert not missing.available and "no Inception weights file" in missing.unavailable_reason
    assert "--inception-weights" in missing.unavailable_reason
    wrong = tmp_path / "weights.pth"
    wrong.write_bytes(b"not the inception weights")
    with pytest.raises(UserError, match="refusing to use it"):
        iw.resolve_inception_weights(wrong)
    anyw = iw.resolve_inception_weights(wrong, "any")
    assert anyw.available and not anyw.standard and len(anyw.sha256) == 64
    monkeypatch.setenv(iw.ENV_VAR, str(wrong))
    with pytest.raises(UserError, match="refusing"):
        iw.resolve_inception_weights()
    with pytest.raises(UserError, match="not found"):
        iw.resolve_inception_weights(tmp_path / "nope.pth")


@pytest.mark.integration
def test_classifier_learns_and_eval_cli_reports_values_with_settings(tmp_path, capsys, monkeypatch):
    import json

    from harness.cli.main import main
    from harness.data.synthbirds.build import SynthOptions, build_synthbirds
    from harness.eval.classifier import train_classifier

    data = tmp_path / "birds"
    build_synthbirds(data, SynthOptions(classes=20, per_class=10, size=96, seed=2, test_classes=10),
                     workers=1, progress=False)
    metrics = train_classifier(data, tmp_path / "clf", ClassifierOptions(steps=150, width=16),
                               progress=False)
    assert metrics["classes"] == 10 and metrics["held_out_images"] == 20
    assert metrics["held_out_accuracy"] > 3 * metrics["chance"]

    # Real test images as the "generated" folder: the ceiling a table shows beside the models.
    from PIL import Image

    from harness.data.real_images import RealSplitInput

    fake = tmp_path / "fake"
    fake.mkdir()
    real = RealSplitInput(data, "test", 64)
    for i in range(len(real)):
        Image.fromarray(real[i].permute(1, 2, 0).numpy()).save(fake / f"{i:04d}.png")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    args = ["eval", "--fake", str(fake), "--data", str(data), "--classifier",
            str(tmp_path / "clf" / "classifier.pt"), "--metrics", "is,fid,kid", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["values"]) == {"is_mean", "is_std", "fid", "kid_mean", "kid_std"}
    assert abs(out["values"]["fid"]) < 1e-3  # the same images as the real set
    assert out["settings"]["n_fake"] == 100 and out["settings"]["resize"] == 64
    assert out["settings"]["real_cache_name"].startswith("real-")
    assert not any("unreliable" in w for w in out["warnings"])  # 100 images > 64-d features

    monkeypatch.setattr(iw, "_hub_cache_path", lambda: tmp_path / "none" / iw.FILE_NAME)
    monkeypatch.delenv(iw.ENV_VAR, raising=False)
    assert main(["eval", "--fake", str(fake), "--data", str(data), "--extractor",
                 "inception-v3-compat", "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["values"] == {"is": None, "fid": None, "kid": None}
    assert all("no Inception weights file" in why for why in out["unavailable"].values())


def test_fitted_temperature_recovers_a_known_overconfidence():
    from harness.eval.classifier import fit_temperature

    g = torch.Generator().manual_seed(0)
    true_logits = torch.randn(20000, 6, generator=g) * 1.5
    labels = torch.multinomial(true_logits.softmax(1), 1, generator=g).squeeze(1)
    assert fit_temperature(true_logits * 3.0, labels) == pytest.approx(3.0, rel=0.05)
    assert fit_temperature(true_logits, labels) == pytest.approx(1.0, rel=0.05)


def test_is_star_divides_logits_by_the_stored_temperature(classifier_ckpt, tmp_path):
    ckpt = torch.load(classifier_ckpt, weights_only=True)
    ckpt["metrics"] = {"temperature": 1e6}  # softmax(logits / T) is uniform: IS* = 1
    path = tmp_path / "hot.pt"
    save_torch_atomic(ckpt, path)
    out = evaluate_sets(Images(_images(40, 13)), None, ("is", "is_star"),
                        EvalSettings(weights_path=str(path), cache_root=str(tmp_path)))["values"]
    assert out["is_star_mean"] == pytest.approx(1.0, abs=1e-6) and out["is_mean"] > 1.0


def test_ranking_and_fold_statistics_on_constructed_embeddings():
    from harness.eval.rprecision import fold_stats, true_caption_ranks_first

    img = torch.eye(4)
    cand = torch.zeros(4, 3, 4)
    cand[:, 0] = torch.eye(4)  # the true caption equals the image: rank 1 ...
    cand[1, 2] = 2 * torch.eye(4)[1]  # ... except a tie (same direction) for image 1
    cand[3, 0] = torch.eye(4)[0]  # and a true caption orthogonal to image 3
    cand[3, 1] = torch.eye(4)[3]
    hits = true_caption_ranks_first(img, cand)
    assert hits.tolist() == [True, False, True, False]
    # Cosine, not dot product: a short true caption in the image's direction beats a long one
    # 45 degrees off (dot products 0.5 vs 2), and scaling the image changes nothing.
    one = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    short_true = torch.tensor([[[0.5, 0.0, 0.0, 0.0], [2.0, 2.0, 0.0, 0.0]]])
    assert true_caption_ranks_first(one, short_true).tolist() == [True]
    assert true_caption_ranks_first(7 * one, short_true).tolist() == [True]
    stats = fold_stats(np.array([1, 0, 1, 1, 0, 0, 1, 1, 1, 1]), 5)
    assert stats["mean"] == pytest.approx(0.7) and stats["std"] == pytest.approx(np.std([0.5, 1, 0, 1, 1]))


def test_candidates_come_from_other_classes():
    from harness.eval.rprecision import draw_candidates

    pool = np.array([0, 1, 2, 0, 1, 2, 3, 3, 3])
    picks = draw_candidates([0, 3], pool, 4, seed=1)
    assert all(len(p) == 3 and len(set(p)) == 3 for p in picks)
    assert all(pool[j] != 0 for j in picks[0]) and all(pool[j] != 3 for j in picks[1])
    assert [p.tolist() for p in picks] == [p.tolist() for p in draw_candidates([0, 3], pool, 4, seed=1)]


def test_attribute_table_reads_synthbirds(tiny_synth):
    from harness.eval.attributes import named_attributes, read_attributes

    table = read_attributes(tiny_synth)
    assert table.kinds == sorted(["bill_length", "bill_shape", "crown_color", "size", "tail_color",
                                  "underparts_color", "wing_color", "wing_pattern"])
    assert all(set(v) == set(table.kinds) for v in table.image_values.values())
    key = next(iter(table.caption_ids))
    named = named_attributes(table, [f"{key}#3"])[0]
    assert named == table.caption_ids[key][3]
    # Every attribute a caption names is one the image has.
    assert all(table.image_values[key][table.by_id[a][0]] == table.by_id[a][1] for a in named)
    with pytest.raises(UserError, match="not a dataset caption"):
        named_attributes(table, ["line1"])


def test_novel_species_renders_are_no_species_of_the_dataset(tiny_synth, tmp_path):
    import json

    from harness.errors import UserError
    from harness.eval.attribute_renders import SPECIES_KEYS, novel_species, render_novel_birds
    from harness.eval.attributes import AttributeOptions, _render_count

    taken = {tuple(s[k] for k in SPECIES_KEYS) for s in json.loads((tiny_synth / "species.json").read_text())}
    drawn = novel_species(tiny_synth, 50, seed=0)
    keys = [tuple(getattr(sp, k) for k in SPECIES_KEYS) for sp in drawn]
    assert len(set(keys)) == 50 and not set(keys) & taken
    images, values = render_novel_birds(tiny_synth, 3, 40, seed=0, workers=0)
    assert images.shape == (3, 3, 40, 40) and values == [sp.attributes() for sp in drawn[:3]]
    # Default: as many renders as real images on synthbirds; none, or a clear error, elsewhere.
    assert _render_count(tiny_synth, AttributeOptions(), 7) == 7
    assert _render_count(tmp_path, AttributeOptions(), 7) == 0
    with pytest.raises(UserError, match="synthbirds"):
        _render_count(tmp_path, AttributeOptions(renders=5), 7)


def test_attribute_accuracy_matches_a_hand_computation(tiny_synth, monkeypatch):
    from harness.eval import attributes as attr

    table = attr.read_attributes(tiny_synth)
    ids = {f"{k}::{v}": i for i, (k, v) in table.by_id.items()}
    g = {k: n for n, k in enumerate(table.kinds)}
    # Image 0 is predicted red crown + blue wings; image 1 white underparts + long bill.
    preds = torch.zeros(2, len(table.kinds), dtype=torch.long)
    preds[0, g["crown_color"]] = table.values["crown_color"].index("red")
    preds[0, g["wing_color"]] = table.values["wing_color"].index("blue")
    preds[1, g["underparts_color"]] = table.values["underparts_color"].index("white")
    preds[1, g["bill_length"]] = table.values["bill_length"].index("long")
    named = [[ids["crown_color::red"], ids["wing_color::green"]],  # 1 of 2 shown
             [ids["underparts_color::white"], ids["bill_length::long"], ids["size::large"]]]  # 2 of 3
    monkeypatch.setattr(attr, "load_attribute_classifier",
                        lambda path: (None, {"kinds": table.kinds, "options": {},
                                             "metrics": {"held_out_accuracy": {}}}))
    monkeypatch.setattr(attr, "predict", lambda model, images, size: preds)
    monkeypatch.setattr(attr, "AttributeOptions", lambda **kw: type("O", (), {"image_size": 64})())
    out = attr.attribute_accuracy(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), named, table, "x")
    assert out["mean"] == pytest.approx((1 / 2 + 2 / 3) / 2) and out["n"] == 2
    assert out["std"] == pytest.approx(np.std([1 / 2, 2 / 3]))
    # Shuffled (two images: swapped): image 0 is read as underparts, bill length and size of
    # value 0, image 1 as crown and wing colour 0, none of which the other caption names.
    assert all(table.values[k][0] not in ("white", "long", "large", "red", "green")
               for k in ("underparts_color", "bill_length", "size", "crown_color", "wing_color"))
    assert out["shuffled"] == 0.0 and out["gain"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    lo, hi = out["gain_ci"]  # resamples of the two per-image gains 1/2 and 2/3
    assert 1 / 2 <= lo <= hi <= 2 / 3
    # Per kind, by hand: crown red shown (1/1), wing green not (0/1), underparts, bill length
    # shown, size large not; shuffled, none.
    assert out["per_kind"] == {
        "crown_color": {"own": 1.0, "shuffled": 0.0, "n": 1},
        "wing_color": {"own": 0.0, "shuffled": 0.0, "n": 1},
        "underparts_color": {"own": 1.0, "shuffled": 0.0, "n": 1},
        "bill_length": {"own": 1.0, "shuffled": 0.0, "n": 1},
        "size": {"own": 0.0, "shuffled": 0.0, "n": 1}}


@pytest.mark.integration
def test_attribute_classifier_and_ceiling_on_real_images(tmp_path, monkeypatch, capsys):
    import json

    from harness.cli.main import main
    from harness.data.synthbirds.build import SynthOptions, build_synthbirds
    from harness.eval.attributes import AttributeOptions, train_attribute_classifier

    data = tmp_path / "birds"
    build_synthbirds(data, SynthOptions(classes=40, per_class=8, size=96, seed=4, test_classes=10),
                     workers=1, progress=False)
    metrics = train_attribute_classifier(data, tmp_path / "attr", AttributeOptions(steps=600, width=16),
                                         progress=False)
    acc, chance = metrics["held_out_accuracy"], metrics["chance"]
    assert acc["underparts_color"] > 3 * chance["underparts_color"]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    args = ["eval", "--ceiling", "--data", str(data), "--metrics", "attr", "--attr-classifier",
            str(tmp_path / "attr" / "attributes.pt"), "--json"]
    assert main(args) == 0
    real = json.loads(capsys.readouterr().out)["values"]["attr_mean"]
    # The same images with captions of other images: attributes no longer match.
    from harness.eval.attributes import attribute_accuracy, read_attributes
    from harness.eval.inputs import ImageFolderInput

    folder = next((tmp_path / "cache" / "stackgan-bench" / "fidelity" / "ceiling").iterdir())
    images = ImageFolderInput(folder)
    table = read_attributes(data)
    rows = images.rows
    shuffled = [table.caption_ids[r["caption_id"].rpartition("#")[0]][0] for r in rows]
    # The ceiling evaluates every other image (the other half is the FD/KD reference): 4 of each
    # class's 8, one row per caption (10 each); a shift of 4 classes' rows gives each image the
    # captions of an image 4 classes away.
    assert len(rows) == 400 and len({r["file"] for r in rows}) == 40
    shuffled = shuffled[160:] + shuffled[:160]
    stack = torch.stack([images[i] for i in range(len(images))])
    wrong = attribute_accuracy(stack, shuffled, table, tmp_path / "attr" / "attributes.pt")["mean"]
    print(f"ceiling {real:.3f} vs shuffled captions {wrong:.3f}")
    assert real > wrong + 0.03  # measured: 0.494 vs 0.316 at 600 steps (0.279 vs 0.221 before the renders)


def test_channels_last_inception_matches_torch_fidelity_default(tmp_path):
    from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

    from harness.eval import inception_fast

    inception_fast.register()
    weights = inception_fast.random_weights_file(tmp_path / "w.pth")
    images = Images(_images(6, 14, size=64))
    feats = {}
    for name in ("inception-v3-compat", inception_fast.NAME):
        fx = create_feature_extractor(name, ["2048", "logits_unbiased"], cuda=False, verbose=False,
                                      feature_extractor_weights_path=weights)
        feats[name] = get_featuresdict_from_dataset(images, fx, 3, False, True, False)
    for layer in ("2048", "logits_unbiased"):
        a, b = feats["inception-v3-compat"][layer], feats[inception_fast.NAME][layer]
        assert a.std(0).mean() > 1e-3  # the stand-in weights give features that vary by image
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * a.abs().max().item())


def test_inception_weights_need_the_full_standard_hash(tmp_path, monkeypatch):
    """The file name's 8-hex prefix can be brute-forced: only the full SHA-256 passes."""
    weights = tmp_path / iw.FILE_NAME
    weights.write_bytes(b"a file whose hash merely starts like the standard one")
    monkeypatch.setattr(iw, "sha256_file", lambda path: iw.HASH_PREFIX + "0" * 56)
    with pytest.raises(UserError, match="is not that of"):
        iw.resolve_inception_weights(weights)
    monkeypatch.setattr(iw, "sha256_file", lambda path: iw.STANDARD_SHA256)
    assert iw.resolve_inception_weights(weights).standard


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_no_inception_weights_file_is_ever_unpickled_in_full(tmp_path):
    """Even accepted with --inception-sha256 any, a file that is not plain tensors is refused
    before any of its code runs (torch-fidelity itself would load it with weights_only=False)."""
    import pickle

    from harness.eval import inception_fast

    marker = tmp_path / "ran"
    evil = tmp_path / "weights.pth"
    evil.write_bytes(pickle.dumps({"fc.weight": _RunsCode(marker)}))
    accepted = iw.resolve_inception_weights(evil, "any")
    assert accepted.available and not accepted.standard
    with pytest.raises(UserError, match="not a plain state dict"):
        inception_fast.ChannelsLastInceptionV3(inception_fast.NAME, ["2048"],
                                               feature_extractor_weights_path=str(accepted.path))
    assert not marker.exists()


def test_a_planted_or_foreign_cache_file_never_runs_and_is_recomputed(classifier_ckpt, tmp_path):
    """Cached real-set features are an .npz read without pickle, checked against their key."""
    import pickle

    fake, real = _images(60, 10), _images(60, 11)
    desc = {"data": "fp", "split": "test", "size": 32, "n": 60}
    first = evaluate_sets(Images(fake), Images(real), ("fid",), _settings(classifier_ckpt, tmp_path), desc)
    [cached] = (tmp_path / "cache").glob(f"{first['settings']['real_cache_name']}*")
    assert cached.suffix == ".npz"
    marker = tmp_path / "ran"
    cached.write_bytes(pickle.dumps({"features": _RunsCode(marker)}))
    again = evaluate_sets(Images(fake), Images(real), ("fid",), _settings(classifier_ckpt, tmp_path), desc)
    assert again["values"] == first["values"] and not marker.exists()
    # A well-formed file under this name but for another key is not trusted either.
    import numpy as np

    np.savez(cached, key=np.array("real-something-else"), mid=np.zeros((60, 64), np.float32))
    third = evaluate_sets(Images(fake), Images(real), ("fid",), _settings(classifier_ckpt, tmp_path), desc)
    assert third["values"] == first["values"]


def test_the_ceiling_is_real_images_the_classifier_never_trained_on_split_in_half(tiny_synth, tmp_path,
                                                                                 monkeypatch):
    import json

    from harness.data.sources import load_index
    from harness.eval.classifier import ClassifierOptions, held_out_indices, train_classifier
    from harness.eval.evaluate import EvalRequest, ceiling_request

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    train_classifier(tiny_synth, tmp_path / "clf", ClassifierOptions(steps=2, width=8), progress=False)
    clf = tmp_path / "clf" / "classifier.pt"
    held = held_out_indices(clf, tiny_synth)
    index = load_index(tiny_synth, "test")
    # The last 20 % of each class's images, as the classifier held them out of its training.
    for c in set(index.class_ids.tolist()):
        members = [i for i in range(len(index)) if index.class_ids[i] == c]
        k = max(1, round(len(members) * 0.2))
        assert [i for i in held if index.class_ids[i] == c] == members[-k:]
    request = ceiling_request(EvalRequest(fake="", data=str(tiny_synth), classifier=str(clf), size=32), 1)
    rows = [json.loads(line) for line in open(f"{request.fake}/manifest.jsonl", encoding="utf-8")]
    evaluated = [int(r["file"].split("/")[1].split(".")[0]) for r in rows]
    assert evaluated == held[0::2] and list(request.real_indices) == held[1::2]
    assert not set(evaluated) & set(request.real_indices)  # FD/KD: one half against the other
    assert request.splits == 10  # without a model's protocol: the request's splits
    # With a model's protocol (every test image, 1 caption, 1 image each, in 10 splits), IS is
    # taken over splits of a model's split size, never more splits than a model's.
    matched = ceiling_request(EvalRequest(fake="", data=str(tiny_synth), classifier=str(clf), size=32),
                              1, per_caption=1)
    split_size = len(index) / 10
    assert 1 <= matched.splits <= 10
    assert matched.splits == 1 or abs(len(evaluated) / matched.splits - split_size) <= split_size / 2
    ten_each = ceiling_request(EvalRequest(fake="", data=str(tiny_synth), classifier=str(clf), size=32),
                               1, per_caption=10)
    assert ten_each.splits == 1  # a model's splits ten times bigger than the ceiling's images


def test_degraded_training_crops_look_like_generated_images():
    """The attribute classifier's augmentation (harness.eval.attributes.degrade_batch)."""
    from harness.eval.attributes import DEGRADE_NOISE, degrade_batch

    flat = torch.full((64, 3, 32, 32), 128, dtype=torch.uint8)
    assert torch.equal(degrade_batch(flat, 0.0, torch.Generator().manual_seed(0)), flat)
    out = degrade_batch(flat, 1.0, torch.Generator().manual_seed(1))
    assert out.dtype == torch.uint8 and out.shape == flat.shape
    assert torch.equal(out, degrade_batch(flat, 1.0, torch.Generator().manual_seed(1)))
    # On a flat image only the noise shows: its SD is drawn uniformly from [0, DEGRADE_NOISE].
    sd = (out.double() - 128).std(dim=(1, 2, 3))
    assert sd.max() <= DEGRADE_NOISE * 1.05 and sd.mean() == pytest.approx(DEGRADE_NOISE / 2, rel=0.25)
    half = degrade_batch(flat, 0.5, torch.Generator().manual_seed(2))
    untouched = sum(torch.equal(half[i], flat[i]) for i in range(64))
    assert 20 <= untouched <= 44  # about half (an SD below 0.5 level also leaves an image as it was)
    # A sharp edge loses its sharpness in the down-up sampled and blurred images.
    edge = torch.zeros((64, 3, 32, 32), dtype=torch.uint8)
    edge[..., 16:] = 255
    soft = degrade_batch(edge, 1.0, torch.Generator().manual_seed(3)).double()
    step = (soft[..., 17] - soft[..., 14]).mean(dim=(1, 2))
    assert (step < 200).sum() >= 20 and step.max() > 200  # some softened, some only noisy
