"""The second adversarial probe's findings (issue 28): image bombs, manifests that leave their
folder, configs whose code runs on read-only commands, imported weights that are not numbers,
names that write outside reports/, YAML alias bombs, tracebacks instead of errors, usability."""

import json
import os
import shutil
import stat
import struct
import time
import zlib
from pathlib import Path

import pytest
import torch
from conftest import smoke_config
from PIL import Image

from harness.errors import UserError

# ---------------------------------------------------------------- item 2: image size


def _png_declaring(path: Path, width: int, height: int) -> Path:
    """A tiny valid 1x1 PNG whose header then claims ``width`` x ``height`` (CRC fixed)."""
    Image.new("RGB", (1, 1), (200, 10, 10)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("side", [12000, 30000])
def test_an_image_declaring_a_huge_size_is_refused_before_decoding(tmp_path, side):
    from harness.data.dataset import load_image

    bomb = _png_declaring(tmp_path / "bomb.png", side, side)
    assert bomb.stat().st_size < 1000
    start = time.perf_counter()
    with pytest.raises(UserError, match=r"bomb.png: declares (12000x12000 pixels|more than)"):
        load_image(bomb)
    assert time.perf_counter() - start < 5  # refused from the header, nothing decoded


def test_eval_of_a_folder_with_a_bomb_is_a_clear_error_and_not_sized_by_it(tmp_path, classifier_ckpt):
    from harness.eval.evaluate import EvalRequest, default_size, evaluate

    folder = tmp_path / "fake"
    folder.mkdir()
    _png_declaring(folder / "a.png", 12000, 12000)
    Image.new("RGB", (48, 48)).save(folder / "b.png")
    request = EvalRequest(fake=str(folder), metrics=("is",), classifier=str(classifier_ckpt))
    assert default_size(request) == 64  # the classifier's input size, not the first image's
    with pytest.raises(UserError, match="a.png: declares 12000x12000"):
        evaluate(request)


# ---------------------------------------------------------------- item 3: code in configs


def _evil_config(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "ran"
    (tmp_path / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\nclass X: pass\n")
    config = tmp_path / "evil.yaml"
    config.write_text(f"inherit: {Path('harness/config/presets/smoke_stage1.yaml').resolve()}\n"
                      f"family: {tmp_path / 'evil.py'}:X\n")
    return config, marker


def test_reading_a_config_never_runs_the_code_it_names(tmp_path):
    from harness.config.load import load_config

    config, marker = _evil_config(tmp_path)
    cfg = load_config(str(config))  # what experiment plan, report and the tables do
    assert cfg.family.endswith("evil.py:X") and not marker.exists()
    with pytest.raises(UserError, match="lacks what the harness calls"):
        load_config(str(config), resolve_code=True)  # what train does: the feature
    assert marker.exists()


def test_experiment_plan_does_not_run_a_models_code(tmp_path):
    from harness.cli.main import main

    config, marker = _evil_config(tmp_path)
    exp = tmp_path / "exp.yaml"
    exp.write_text(f"""experiment: evil
title: t
metrics: [is]
runs:
  cub-evil: {{kind: model, dataset: cub, preset: {config}}}
rows:
  - {{run: cub-evil, model: evil, paper: {{}}}}
""")
    assert main(["experiment", "plan", str(exp), "--scale", "smoke"]) == 0
    assert not marker.exists()


# ---------------------------------------------------------------- items 4 and 9: manifests


def _folder_with_manifest(tmp_path: Path, rows: list, raw: bytes | None = None) -> Path:
    folder = tmp_path / "samples"
    (folder / "images").mkdir(parents=True)
    Image.new("RGB", (32, 32)).save(folder / "images" / "ok.png")
    (folder / "manifest.jsonl").write_bytes(raw if raw is not None else
                                            b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    return folder


@pytest.mark.parametrize("file", ["../outside.png", "/etc/hostname", "images/../../outside.png", "link.png"])
def test_manifest_paths_stay_inside_their_folder(tmp_path, file):
    from harness.eval.inputs import ImageFolderInput
    from harness.human.study import _images_from_samples

    Image.new("RGB", (32, 32)).save(tmp_path / "outside.png")
    folder = _folder_with_manifest(tmp_path, [{"file": file, "caption_id": "a#0"}])
    os.symlink(tmp_path / "outside.png", folder / "link.png")
    with pytest.raises(UserError, match=r"manifest.jsonl: line 1: file .* lies outside"):
        ImageFolderInput(folder)
    with pytest.raises(UserError, match="lies outside"):  # human make would hand it to raters
        _images_from_samples(folder, ["a#0"], 1)


def test_a_link_inside_the_folder_is_allowed(tmp_path):
    from harness.eval.inputs import ImageFolderInput

    folder = _folder_with_manifest(tmp_path, [{"file": "alias.png"}])
    os.symlink(folder / "images" / "ok.png", folder / "alias.png")
    assert len(ImageFolderInput(folder)) == 1


@pytest.mark.parametrize("rows, raw, message", [
    (None, b'{"file": "images/ok.png"}\n\xff\xfe\n', "not UTF-8"),
    (None, b'{"file": "images/ok.png"\n', "line 1 is not valid JSON"),
    ([{"caption_id": "a#0"}], None, "line 1: `file` must be"),
    ([{"file": 5}], None, "line 1: `file` must be"),
    ([["images/ok.png"]], None, "line 1: expected a JSON object"),
    (None, b"[" * 100000 + b"]" * 100000 + b"\n", "line 1 is not valid JSON"),
])
def test_malformed_manifests_are_errors_naming_the_line(tmp_path, rows, raw, message):
    from harness.eval.inputs import ImageFolderInput

    folder = _folder_with_manifest(tmp_path, rows or [], raw)
    with pytest.raises(UserError, match=message):
        ImageFolderInput(folder)


def test_a_human_study_manifest_needs_caption_ids(tmp_path):
    from harness.human.study import _images_from_samples

    folder = _folder_with_manifest(tmp_path, [{"file": "images/ok.png"}])
    with pytest.raises(UserError, match="line 1: `caption_id` must be a string"):
        _images_from_samples(folder, ["a#0"], 1)


# ---------------------------------------------------------------- item 5: imported weights


@pytest.mark.parametrize("bad, message", [
    (lambda w: torch.full_like(w, float("nan")), "holds 4 non-finite values"),
    (lambda w: w.double(), "is torch.float64"),
    (lambda w: w.long(), "is torch.int64"),
])
def test_imported_weights_must_be_finite_and_of_the_right_dtype(tmp_path, bad, message):
    from harness.runner.import_official import load_into

    module = torch.nn.Linear(2, 2)
    official = {"weight": bad(torch.ones(2, 2)), "bias": torch.zeros(2)}
    with pytest.raises(UserError, match=rf"netG.pth: .*weight {message}"):
        load_into(module, official, [], tmp_path / "netG.pth")
    assert torch.isfinite(module.weight).all()


def test_the_sampler_refuses_a_generator_that_outputs_nan(two_runs, tmp_path):
    from harness.checkpoints import load_checkpoint, save_checkpoint
    from harness.runner.sample import sample_run

    run = tmp_path / "broken"
    shutil.copytree(two_runs / "modelA", run)
    ckpt = run / "checkpoints" / "final.pt"
    state = load_checkpoint(ckpt)
    first = next(k for k, v in state["model"]["netG"].items() if v.is_floating_point() and v.dim() > 1)
    state["model"]["netG"][first].fill_(float("nan"))
    save_checkpoint(state, ckpt)
    with pytest.raises(UserError, match="output holds non-finite values"):
        sample_run(run, tmp_path / "out", split="test", limit=2, progress=False)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- item 6: names become folders


@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a/b", ".."])
def test_experiment_and_run_names_cannot_leave_their_folder(tmp_path, name):
    from harness.experiments.spec import load_experiment

    exp = tmp_path / "exp.yaml"
    base = {"experiment": "ok", "title": "t", "metrics": ["is"],
            "runs": {"cub-s1-64": {"kind": "stage1", "dataset": "cub"}},
            "rows": [{"run": "cub-s1-64", "paper": {}}]}
    exp.write_text(json.dumps(base | {"experiment": name}))
    with pytest.raises(UserError, match="experiment: .* is not a valid name"):
        load_experiment(str(exp))
    exp.write_text(json.dumps(base | {"runs": {name: {"kind": "stage1", "dataset": "cub"}},
                                      "rows": [{"run": name, "paper": {}}]}))
    with pytest.raises(UserError, match="is not a valid name"):
        load_experiment(str(exp))


# ---------------------------------------------------------------- item 8: YAML bombs


def test_yaml_aliases_and_deep_nesting_are_refused_quickly(tmp_path):
    from harness.config.load import load_config

    laughs = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"] + [
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(laughs) + "\n")
    assert bomb.stat().st_size < 600
    start = time.perf_counter()
    with pytest.raises(UserError, match="bomb.yaml: .*aliases are not allowed"):
        load_config(str(bomb))
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 100000 + "]" * 100000 + "\n")
    with pytest.raises(UserError, match="deep.yaml: .*nested deeper than"):
        load_config(str(deep))
    assert time.perf_counter() - start < 10


# ---------------------------------------------------------------- item 9: locks, item 10: usability


def test_a_runs_folder_that_cannot_be_written_is_a_clear_error(smoke_data, tmp_path, monkeypatch):
    import harness.locks as locks
    from harness.runner.trainer import train

    real_open = os.open

    def read_only(path, flags, *rest):
        if str(path).endswith(".lock"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *rest)

    monkeypatch.setattr(locks.os, "open", read_only)  # as root, chmod alone would not refuse
    with pytest.raises(UserError, match=r"cannot write its lock file .lock \(Permission denied\)"):
        train(smoke_config(smoke_data, tmp_path, "train.max_steps=1", "name=ro"), progress=False)


def test_overrides_after_an_option_are_overrides():
    from harness.cli.main import parse

    args = parse(["model", "import", "stackgan-pytorch", "--netG", "g.pth", "--config", "c",
                  "--out", "X", "data.root=D", "train.seed=1"])
    assert args.out == "X" and args.overrides == ["data.root=D", "train.seed=1"]
    with pytest.raises(SystemExit):
        parse(["model", "import", "stackgan-pytorch", "--netG", "g", "--config", "c", "--out", "X",
               "--bogus"])


def test_atomic_writes_follow_the_umask(tmp_path):
    from harness.atomic import atomic_directory, write_text_atomic

    old = os.umask(0o027)
    try:
        with atomic_directory(tmp_path / "shared") as tmp:
            (tmp / "f").write_text("x")
        write_text_atomic(tmp_path / "file.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared").stat().st_mode) == 0o750
    assert stat.S_IMODE((tmp_path / "file.txt").stat().st_mode) == 0o640


def test_a_study_is_group_readable_but_its_key_is_not(two_runs, tmp_path):
    from harness.human.study import StudyOptions, make_study

    old = os.umask(0o022)
    try:
        make_study(StudyOptions(sources=[str(two_runs / "modelA"), str(two_runs / "modelB")],
                                out=str(tmp_path / "study"), captions=2, per_model=1, raters=1,
                                progress=False))
    finally:
        os.umask(old)
    out = tmp_path / "study"
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert stat.S_IMODE((out / "study.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((out / "key.json").stat().st_mode) == 0o600
