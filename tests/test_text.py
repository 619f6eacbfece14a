import json

import numpy as np
import pytest
import torch

from harness.data.dataset import DataOptions, TextImageDataset
from harness.data.safe_pickle import dump_pickle, safe_load_pickle
from harness.data.synthbirds.build import SynthOptions, build_synthbirds
from harness.errors import UserError
from harness.text.alphabet import ALPHABET_SIZE, MAX_LENGTH, PAD, encode
from harness.text.embed import embed_dataset
from harness.text.models import PRESETS, CharCNNRNN, sje_loss
from harness.text.train import TextTrainOptions, load_text_encoder, train_text_encoder


def test_alphabet_matches_reed():
    assert ALPHABET_SIZE == 70 and MAX_LENGTH == 201
    ids = encode("A-b é!")
    # "a" -> 0, "-" -> its later slot (59), 'b' -> 1, ' ' -> 69, 'é' dropped, '!' -> 40
    assert ids[:5] == [0, 59, 1, 69, 40] and ids[5:] == [PAD] * (201 - 5)
    assert len(encode("x" * 500)) == 201


def test_sje_loss_matches_a_hand_computed_loop():
    torch.manual_seed(0)
    img, txt = torch.randn(5, 8), torch.randn(5, 8)
    s = (img @ txt.t()).tolist()
    expected = 0.0
    for i in range(5):
        expected += sum(max(0.0, 1 + s[i][j] - s[i][i]) for j in range(5) if j != i) / 5
        expected += sum(max(0.0, 1 + s[j][i] - s[i][i]) for j in range(5) if j != i) / 5
    assert sje_loss(img, txt).item() == pytest.approx(expected, rel=1e-6)


def test_sje_loss_on_a_known_case():
    # Perfectly separated scores (margin 2) give zero loss; swapped rows give 2 * (1 + 2) / 2 * 2.
    img = torch.eye(2) * 2 ** 0.5
    txt = torch.eye(2) * 2 ** 0.5
    assert sje_loss(img, txt).item() == 0.0
    assert sje_loss(img, txt.flip(0)).item() == pytest.approx(6.0)


def test_char_cnn_rnn_shapes_for_both_presets():
    for name, cfg in PRESETS.items():
        out = CharCNNRNN(cfg)(torch.tensor([encode("a red bird")] * 3))
        assert out.shape == (3, 1024), name


SMALL = SynthOptions(classes=120, per_class=5, size=76, seed=1, test_classes=20)
STEPS = 800  # ~35 s on 2 cores; measured at seeds 0/1: caption->image 2.8-4.3x chance,
# image->class 4.6-5.2x chance. The 200-class quick-start data reaches 10x / 21x at 4000 steps.


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("text") / "birds"
    build_synthbirds(root, SMALL, workers=2, progress=False)
    out = root.parent / "enc"
    metrics = train_text_encoder(root, out, TextTrainOptions(steps=STEPS), progress=False)
    return root, out, metrics


@pytest.mark.integration
def test_encoder_beats_chance_by_a_wide_margin(trained):
    _, _, metrics = trained
    assert metrics["chance"] == pytest.approx(1 / 20) and metrics["test_captions"] == 1000
    assert metrics["caption_to_image_top1"] > 2 * metrics["chance"]
    assert metrics["image_to_class_top1"] > 3 * metrics["chance"]


@pytest.mark.integration
def test_untrained_encoder_is_near_chance(trained):
    """The same evaluation with random weights: shows the margin comes from training."""
    from harness.data.real_images import load_real_tensor
    from harness.data.sources import load_index
    from harness.data.transforms import load_size
    from harness.text.models import build_image_encoder
    from harness.text.train import evaluate

    root, _, _ = trained
    cfg = PRESETS["small"]
    torch.manual_seed(0)
    index = load_index(root, "test")
    m = evaluate(CharCNNRNN(cfg), build_image_encoder(cfg), cfg, index,
                 load_real_tensor(root, "test", load_size(cfg.image_size), progress=False))
    assert m["caption_to_image_top1"] < 2.5 * m["chance"]


def test_trained_embeddings_have_unit_spread_on_the_training_captions(trained):
    """The output scale is set after training so that the conditioning networks see text at
    the scale of their noise, whatever scale the joint training left (harness.text.train)."""
    from harness.data.sources import load_index
    from harness.text.train import EMBEDDING_SD, encode_texts

    root, out, metrics = trained
    model, cfg, _ = load_text_encoder(out / "encoder.pt")
    assert float(model.output_scale) == metrics["output_scale"] != 1.0
    scale = metrics["output_scale"]  # 3 significant digits (in the buffer's dtype): kernels' last bits cut
    assert scale == pytest.approx(float(f"{scale:.3g}"), rel=1e-7)
    index = load_index(root, "train")
    captions = [c for i in range(0, len(index), 3) for c in index.captions(i)]
    sd = float(encode_texts(model, captions, cfg.max_length).std(dim=0).mean())
    assert sd == pytest.approx(EMBEDDING_SD, rel=0.1)  # another sample of the same captions
    # The scale does not change what the encoder retrieves (dot products scale together).
    model.output_scale.fill_(1.0)
    raw = encode_texts(model, captions[:5], cfg.max_length)
    model.output_scale.fill_(metrics["output_scale"])
    assert torch.allclose(encode_texts(model, captions[:5], cfg.max_length), raw * metrics["output_scale"])


def test_second_train_call_reuses_the_checkpoint(trained, capsys):
    root, out, metrics = trained
    before = (out / "encoder.pt").stat().st_mtime_ns
    again = train_text_encoder(root, out, TextTrainOptions(steps=STEPS), progress=False)
    assert again == metrics and (out / "encoder.pt").stat().st_mtime_ns == before
    assert "reusing" in capsys.readouterr().out


def test_embed_writes_released_format_and_is_cached(trained, capsys):
    root, out, _ = trained
    written = embed_dataset(root, out / "encoder.pt", progress=False)
    emb = np.asarray(safe_load_pickle(written["train"]))
    n_train = len(safe_load_pickle(root / "train" / "filenames.pickle"))
    assert emb.shape == (n_train, 10, 1024) and emb.dtype == np.float32
    # Recompute one caption directly: the file holds the model's output for that caption.
    model, cfg, _ = load_text_encoder(out / "encoder.pt")
    key = safe_load_pickle(root / "train" / "filenames.pickle")[3]
    caption = (root / "text_c10" / f"{key}.txt").read_text().splitlines()[7]
    with torch.no_grad():
        direct = model(torch.tensor([encode(caption)]))[0].numpy()
    assert np.allclose(emb[3, 7], direct, atol=1e-5)
    meta = json.loads((root / "train" / "char-CNN-RNN-embeddings.pickle.meta.json").read_text())
    assert meta["shape"] == [n_train, 10, 1024]
    mtime = written["train"].stat().st_mtime_ns
    embed_dataset(root, out / "encoder.pt", progress=False)
    assert written["train"].stat().st_mtime_ns == mtime and "up to date" in capsys.readouterr().out
    ds = TextImageDataset(DataOptions(str(root)))
    assert ds[0]["embedding"].shape == (1024,)


def test_embed_never_overwrites_foreign_embeddings(trained, tmp_path):
    import shutil

    root, out, _ = trained
    copy = tmp_path / "birds"
    shutil.copytree(root, copy)
    for meta in copy.glob("*/*.meta.json"):
        meta.unlink()
    released = copy / "train" / "char-CNN-RNN-embeddings.pickle"
    dump_pickle(np.zeros((3, 10, 1024), np.float32), released)
    with pytest.raises(UserError, match="not written by `text embed`"):
        embed_dataset(copy, out / "encoder.pt", progress=False)
    assert np.asarray(safe_load_pickle(released)).shape == (3, 10, 1024)


def test_bad_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "encoder.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="encoder.pt: not a readable encoder checkpoint"):
        load_text_encoder(bad)


def test_training_refuses_a_dataset_that_fails_check(synth_copy, tmp_path):
    next((synth_copy / "text_c10").rglob("*.txt")).write_text("only one line\n")
    with pytest.raises(UserError, match="fails `data check`"):
        train_text_encoder(synth_copy, tmp_path / "enc", TextTrainOptions(steps=1), progress=False)


@pytest.mark.integration
def test_sample_from_free_text_uses_the_runs_encoder(trained, tmp_path):
    from harness.cli.main import main
    from harness.config.load import load_config
    from harness.runner.trainer import train

    root, out, _ = trained
    embed_dataset(root, out / "encoder.pt", progress=False)
    cfg = load_config("smoke_stage1", [f"data.root={root}", f"runs_dir={tmp_path}", "data.check=false",
                                       "tracking.enabled=false", "train.max_steps=2"])
    train(cfg, progress=False)
    captions = tmp_path / "captions.txt"
    captions.write_text("this bird has a red crown and blue wings\n\na small yellow bird\n")
    assert main(["sample", "--run", str(tmp_path / "smoke_stage1"), "--captions", str(captions),
                 "--per-caption", "3", "--out", str(tmp_path / "s")]) == 0
    rows = [json.loads(ln) for ln in (tmp_path / "s" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and rows[0]["caption"] == "this bird has a red crown and blue wings"
    assert rows[5]["caption_id"] == "line2" and rows[5]["sample_index"] == 2
    assert (tmp_path / "s" / rows[5]["file"]).exists()


@pytest.mark.integration
def test_r_precision_real_images_beat_chance_and_eval_run_logs_to_mlflow(trained, tmp_path):
    from harness.cli.main import main
    from harness.config.load import load_config
    from harness.data.real_images import RealSplitInput
    from harness.data.sources import load_index
    from harness.eval.rprecision import r_precision
    from harness.runner.trainer import train

    root, out, _ = trained
    evaluator = tmp_path / "evaluator"  # trained apart from the generator's encoder
    train_text_encoder(root, evaluator, TextTrainOptions(steps=STEPS, seed=7), progress=False)
    index = load_index(root, "test")
    real = RealSplitInput(root, "test", 64)
    # Every caption of every test image: 1,000 queries, enough to tell 2-3% from 1% chance.
    images = torch.stack([real[i] for i in range(len(real)) for _ in range(10)])
    captions = [c for i in range(len(index)) for c in index.captions(i)]
    classes = [int(index.class_ids[i]) for i in range(len(index)) for _ in range(10)]
    pool = [c for i in range(len(index)) for c in index.captions(i)]
    pool_classes = [int(index.class_ids[i]) for i in range(len(index)) for _ in range(10)]
    ceiling = r_precision(images, captions, classes, pool, pool_classes, evaluator / "encoder.pt")
    assert ceiling["chance"] == 0.01 and ceiling["n"] == 1000 and ceiling["folds"] == 10
    assert ceiling["mean"] > 2 * ceiling["chance"]  # a weak 800-step evaluator
    # Captions of an image of the next class (5 images x 10 captions per class) as the "true"
    # ones: back to chance.
    shifted = captions[50:] + captions[:50]
    other = classes[50:] + classes[:50]
    assert all(a != b for a, b in zip(classes, other, strict=True))
    shuffled = r_precision(images, shifted, other, pool, pool_classes, evaluator / "encoder.pt")
    assert shuffled["mean"] < ceiling["mean"] / 1.5
    with pytest.raises(UserError, match="generator's own text encoder"):
        from harness.data.fingerprint import sha256_file

        r_precision(images, captions, classes, pool, pool_classes, out / "encoder.pt",
                    generator_encoder_sha256=sha256_file(out / "encoder.pt"))

    embed_dataset(root, out / "encoder.pt", progress=False)
    cfg = load_config("smoke_stage1", [f"data.root={root}", f"runs_dir={tmp_path}", "data.check=false",
                                       "train.max_steps=2"])
    train(cfg, progress=False)
    run = tmp_path / "smoke_stage1"
    assert main(["eval", "--run", str(run), "--data", str(root), "--metrics", "rprec",
                 "--rprec-encoder", str(evaluator / "encoder.pt"), "--protocol", "all-captions"]) == 0
    result = json.loads((run / "eval.json").read_text())
    assert 0 <= result["values"]["rprec_mean"] <= 1
    assert result["settings"]["rprec"]["evaluator_seed"] == 7
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlrun = client.get_run((run / "mlflow_run_id").read_text())
    assert mlrun.data.metrics["eval.rprec_mean"] == pytest.approx(result["values"]["rprec_mean"])
    assert mlrun.info.status == "FINISHED" and "eval.rprec.evaluator_sha256" in mlrun.data.tags
    # Samples from elsewhere: the same images in a folder of the documented manifest format score
    # the same R-precision through eval --fake, and go into a blinded study beside the run.
    import shutil

    samples = run / result["samples"]
    external = tmp_path / "external"
    (external / "pictures").mkdir(parents=True)
    rows = []
    for n, line in enumerate((samples / "manifest.jsonl").read_text().splitlines()):
        rec = json.loads(line)
        shutil.copy(samples / rec["file"], external / "pictures" / f"{n}.png")
        rows.append({"file": f"pictures/{n}.png", "caption_id": rec["caption_id"],
                     "caption": rec["caption"], "class_id": rec["class_id"]})
    (external / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["eval", "--fake", str(external), "--data", str(root), "--metrics", "rprec",
                 "--rprec-encoder", str(evaluator / "encoder.pt"), "--json"]) == 0
    from harness.eval.evaluate import EvalRequest, evaluate

    outside = evaluate(EvalRequest(fake=str(external), metrics=("rprec",), data=str(root),
                                   rprec_encoder=str(evaluator / "encoder.pt")))
    assert outside["values"]["rprec_mean"] == result["values"]["rprec_mean"]
    study = tmp_path / "study"
    assert main(["human", "make", "--runs", str(run), "--samples", f"elsewhere={external}",
                 "--captions", "2", "--per-model", "1", "--raters", "2", "--no-checks",
                 "--out", str(study)]) == 0
    key = json.loads((study / "key.json").read_text())
    assert set(key["models"]) == {run.name, "elsewhere"}
