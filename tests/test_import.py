"""`model import stackgan-pytorch`: files in the authors' format (PyTorch 0.x legacy serialization,
no BatchNorm counters), built from the official key list in shared/facts, become run folders
whose images equal those of our model holding the same tensors."""

import json
import re
from pathlib import Path

import pytest
import torch

from harness.errors import UserError
from harness.runner.import_official import import_stackgan_pytorch

# A copy of shared/facts/stackgan-pytorch-state-dict.txt: the official key names and shapes.
FACTS = Path(__file__).resolve().parent / "data" / "stackgan-pytorch-state-dict.txt"


def official_keys() -> dict[str, list[tuple[str, tuple[int, ...]]]]:
    """Section name (STAGE1_G, STAGE1_D, STAGE2_G, STAGE2_D) -> [(key, shape)] in file order."""
    sections, current = {}, None
    for line in FACTS.read_text().splitlines():
        if line.startswith("## "):
            current = line[3:].split()[0]
            sections[current] = []
        elif current and "\t" in line:
            key, shape = line.split("\t")
            dims = tuple(int(d) for d in re.findall(r"\d+", shape))
            sections[current].append((key, dims))
    return sections


def write_legacy(path: Path, section: str, seed: int) -> dict[str, torch.Tensor]:
    """A state dict as PyTorch 0.x wrote it: legacy serialization, no num_batches_tracked."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in official_keys()[section]:
        if key.endswith("num_batches_tracked"):
            continue
        if key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[key] = torch.randn(shape, generator=gen) * 0.05
    torch.save(state, path, _use_new_zipfile_serialization=False)
    return state


def _images(run_dir: Path, stage: str) -> torch.Tensor:
    from harness.runner.build import load_run

    _, model, _ = load_run(run_dir)
    gen = torch.Generator().manual_seed(0)
    emb, z = torch.randn(4, 1024, generator=gen), torch.randn(4, 100, generator=gen)
    eps = {k: torch.randn(4, 128, generator=gen) for k in ("eps1", "eps2")}
    return model.generate(emb, z, eps["eps1"], eps["eps2"])[stage]


def _by_order(module: torch.nn.Module, official: dict[str, torch.Tensor]) -> None:
    """Our module holding the same tensors, matched by position (both follow module order),
    not by the importer's renaming."""
    ours = [k for k in module.state_dict() if not k.endswith("num_batches_tracked")]
    values = list(official.values())
    assert len(ours) == len(values)
    state = module.state_dict()
    for key, value in zip(ours, values, strict=True):
        assert state[key].shape == value.shape, key
        state[key] = value
    module.load_state_dict(state)


def test_stage1_files_import_and_generate_what_our_model_generates(tmp_path, smoke_data):
    g, d = tmp_path / "netG_epoch_120.pth", tmp_path / "netD_epoch_last.pth"
    official_g, official_d = write_legacy(g, "STAGE1_G", 1), write_legacy(d, "STAGE1_D", 2)
    run = import_stackgan_pytorch(str(g), "birds_stage1_pytorch", str(tmp_path / "runs" / "official"),
                                  str(d), ["tracking.enabled=false", f"data.root={smoke_data}"])
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["imported"] and len(provenance["files"]["netG"]["sha256"]) == 64
    from harness.config.load import load_config
    from harness.runner.build import build_model

    reference = build_model(load_config("birds_stage1_pytorch"), torch.device("cpu"))  # the project's model
    _by_order(reference.netG, official_g)
    _by_order(reference.netD, official_d)
    reference.eval()
    gen = torch.Generator().manual_seed(0)
    emb, z = torch.randn(4, 1024, generator=gen), torch.randn(4, 100, generator=gen)
    eps = torch.randn(4, 128, generator=gen)
    expected = reference.generate(emb, z, eps)["stage1"]
    assert torch.equal(_images(run, "stage1"), expected)
    from harness.runner.sample import sample_run

    # The imported run samples like any trained run.
    out = sample_run(run, tmp_path / "samples", split="test", limit=2, captions_per_image=1,
                     progress=False)
    assert out["num_images"] == 2 and out["image_size"] == 64


def test_a_wrong_shape_or_an_unknown_key_is_refused_by_name(tmp_path):
    g = tmp_path / "netG.pth"
    state = write_legacy(g, "STAGE1_G", 3)
    state["upsample2.1.weight"] = torch.zeros(256, 512, 5, 5)
    torch.save(state, g, _use_new_zipfile_serialization=False)
    wrong = r"upsample2\.1\.weight \(256, 512, 5, 5\).*expected \(256, 512, 3, 3\)"
    with pytest.raises(UserError, match=wrong):
        import_stackgan_pytorch(str(g), "birds_stage1_pytorch", str(tmp_path / "a"),
                                overrides=["tracking.enabled=false"])
    state["upsample2.1.weight"] = torch.zeros(256, 512, 3, 3)
    state["extra.weight"] = torch.zeros(3)
    del state["img.0.weight"]
    torch.save(state, g, _use_new_zipfile_serialization=False)
    with pytest.raises(UserError, match=r"unknown keys: extra\.weight.*missing keys: img\.0\.weight"):
        import_stackgan_pytorch(str(g), "birds_stage1_pytorch", str(tmp_path / "b"),
                                overrides=["tracking.enabled=false"])
    with pytest.raises(UserError, match="Stage-1 generator but --config birds_stage2_pytorch"):
        import_stackgan_pytorch(str(tmp_path / "netG.pth"), "birds_stage2_pytorch", str(tmp_path / "c"),
                                overrides=["tracking.enabled=false"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.integration
def test_a_stage2_file_imports_both_stages(tmp_path):
    g = tmp_path / "netG_epoch_600.pth"
    official = write_legacy(g, "STAGE2_G", 4)
    run = import_stackgan_pytorch(str(g), "birds_stage2_pytorch", str(tmp_path / "official2"),
                                  overrides=["tracking.enabled=false"])
    from dataclasses import replace

    from harness.config.load import load_config
    from harness.runner.build import build_model
    from stackgan.networks import Stage1Generator

    cfg = load_config("birds_stage2_pytorch", ["train.stage1_run=null"])
    stage1 = Stage1Generator(replace(cfg.model, stage=1))
    _by_order(stage1, {k: v for k, v in official.items() if k.startswith("STAGE1_G.")})
    reference = build_model(cfg, torch.device("cpu"), stage1_state=stage1.state_dict())
    _by_order(reference.netG, {k: v for k, v in official.items() if not k.startswith("STAGE1_G.")})
    reference.eval()
    gen = torch.Generator().manual_seed(0)
    emb, z = torch.randn(4, 1024, generator=gen), torch.randn(4, 100, generator=gen)
    eps = {k: torch.randn(4, 128, generator=gen) for k in ("eps1", "eps2")}
    expected = reference.generate(emb, z, eps["eps1"], eps["eps2"])
    got = _images(run, "stage2")
    assert torch.equal(got, expected["stage2"])
    assert torch.equal(_images(run, "stage1"), expected["stage1"])
