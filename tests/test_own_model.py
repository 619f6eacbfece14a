"""A model of the user's own (examples/text_dcgan) through the harness unchanged: config by
file path, training, sampling, evaluation, an experiment file with its row beside Table 1's, the
report, and clear refusals of classes that do not implement the interface."""

import json
from pathlib import Path

import pytest

from harness.errors import UserError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "text_dcgan"


def test_a_class_missing_methods_is_refused_by_name(tmp_path, monkeypatch):
    (tmp_path / "half.py").write_text(
        "class Half:\n    class Config:\n        pass\n    def networks(self):\n        return {}\n")
    monkeypatch.chdir(tmp_path)
    from harness.config.load import load_config

    with pytest.raises(UserError, match="lacks what the harness calls: train, eval, train_step"):
        load_config("smoke_stage1", ["family=half.py:Half"], resolve_code=True)
    for resolve in (True, False):  # an unknown name is refused even by commands that only read
        with pytest.raises(UserError, match="no installed package registers"):
            load_config("smoke_stage1", ["family=not_a_model"], resolve_code=resolve)
    with pytest.raises(UserError, match="has no 'Nope'"):
        load_config("smoke_stage1", ["family=half.py:Nope"], resolve_code=True)


@pytest.mark.integration
def test_the_example_trains_evaluates_and_enters_the_table(smoke_data, tmp_path, monkeypatch,
                                                          classifier_ckpt):
    from harness.cli.main import main

    monkeypatch.chdir(EXAMPLE.parents[1])  # the config names the class by a relative path
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    runs = tmp_path / "runs"
    args = ["experiment", "run", str(EXAMPLE / "table1_with_dcgan.yaml"), "--scale", "smoke",
            "--only", "cub-text-dcgan", "--data", f"cub={smoke_data}", "--runs-dir", str(runs)]
    assert main(args) == 0
    run = runs / "cub-text-dcgan-s0"
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["family"].endswith("model.py:TextDCGAN") and provenance["variant"] == "dcgan-concat"
    assert main(["eval", "--run", str(run), "--data", str(smoke_data), "--classifier",
                 str(classifier_ckpt), "--metrics", "is,fid", "--captions-per-image", "1",
                 "--splits", "1"]) == 0
    evaluated = json.loads((run / "eval.json").read_text())
    assert evaluated["values"]["fid"] > 0 and evaluated["settings"]["protocol"] == "custom"
    from reports.build import build_report

    out = build_report([str(EXAMPLE / "table1_with_dcgan.yaml")], "smoke", runs, tmp_path / "reports")
    table = (Path(out["reports"]["table1_with_dcgan"]) / "table.md").read_text()
    assert "text DCGAN (ours)" in table and "StackGAN above the text DCGAN" in table


def test_matching_aware_dcgan_scores_the_wrong_pair_as_textbook_gan_cls(monkeypatch):
    """The yardstick's D loss: BCE(real, 1) + [BCE(wrong, 0) + BCE(fake, 0)] / 2, checked against
    the losses computed by hand from the same D outputs; without wrong images it is refused."""
    import torch
    import torch.nn.functional as F

    from harness.core import OptimConfig
    from harness.families import model_class

    monkeypatch.chdir(EXAMPLE.parents[1])
    cls = model_class("examples/text_dcgan/model.py:TextDCGAN")
    cfg = cls.Config(gf_dim=8, df_dim=8, image_size=32, matching_aware=True)
    model = cls(cfg, OptimConfig(), seed=0)
    g = torch.Generator().manual_seed(0)
    batch = {"images": {32: torch.rand(4, 3, 32, 32, generator=g) * 2 - 1},
             "wrong_images": {32: torch.rand(4, 3, 32, 32, generator=g) * 2 - 1},
             "embedding": torch.randn(4, 1024, generator=g)}
    seen = []
    real_forward = model.netD.forward
    monkeypatch.setattr(model.netD, "forward", lambda x, e: seen.append(real_forward(x, e)) or seen[-1])
    out = model.train_step(batch, 0)
    real, fake, wrong = (s.detach() for s in seen[:3])
    by_hand = (F.binary_cross_entropy_with_logits(real, torch.ones(4))
               + (F.binary_cross_entropy_with_logits(wrong, torch.zeros(4))
                  + F.binary_cross_entropy_with_logits(fake, torch.zeros(4))) / 2)
    assert out["loss_d"] == pytest.approx(float(by_hand), rel=1e-5)
    del batch["wrong_images"]
    with pytest.raises(ValueError, match="matching_aware needs wrong images"):
        model.train_step(batch, 1)
