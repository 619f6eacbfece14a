"""Bad configs, bad dataset files and bad rating exports get a message naming the file and the
key, never a traceback or a run written somewhere unexpected (issue 15)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.config.load import from_yaml_file, load_config
from harness.data.safe_pickle import dump_pickle
from harness.errors import UserError

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("override, message", [
    ("data.batch_size=0", "data.batch_size: 0 is less than 1"),
    ("data.batch_size=-4", "data.batch_size: -4 is less than 1"),
    ("train.log_every=0", "train.log_every: 0 is less than 1"),
    ("train.max_steps=-5", "train.max_steps: -5 is less than 1"),
    ("train.checkpoint_every=0", "train.checkpoint_every: 0 is less than 1"),
    ("data.num_workers=-1", "data.num_workers: -1 is less than 0"),
    ("optim.lr_g=0", r"optim.lr_g: 0.0 is not in \(0, inf\)"),
    ("optim.beta2=1", r"optim.beta2: 1.0 is not in \[0, 1\)"),
    ("optim.eps=0", r"optim.eps: 0.0 is not in \(0, inf\)"),
    ("optim.lr_decay_factor=1.5", r"optim.lr_decay_factor: 1.5 is not in \(0, 1\]"),
    ("model.kl_weight=inf", r"model.kl_weight: inf is not in \[0, inf\)"),
    ("model.r_num=0", "model.r_num: 0 is less than 1"),
])
def test_numeric_keys_are_range_checked(override, message):
    with pytest.raises(UserError, match=message):
        load_config("smoke_stage1", [override])


@pytest.mark.parametrize("name", ["../../escape", "/abs/path", "a/b", ".hidden", "..", "",
                                  "x y", "semi;colon"])
def test_run_names_stay_inside_runs_dir(name):
    # An empty value is refused earlier, by the typed schema ("name=" reads as null).
    with pytest.raises(UserError, match="is not a folder name|invalid value for 'name'"):
        load_config("smoke_stage1", [f"name={name}"])


def test_interpolation_is_refused_in_overrides_presets_and_run_configs(tmp_path):
    with pytest.raises(UserError, match=r"override 'name=\$\{oc.env:HOME\}': interpolation"):
        load_config("smoke_stage1", ["name=${oc.env:HOME}"])
    preset = tmp_path / "p.yaml"
    preset.write_text("inherit: smoke_stage1\ntracking:\n  experiment: ${oc.env:PATH}\n")
    with pytest.raises(UserError, match=r"p.yaml: interpolation .* at 'tracking.experiment'"):
        load_config(str(preset))
    run_cfg = tmp_path / "config.yaml"
    run_cfg.write_text("name: ${oc.env:HOME}\n")
    with pytest.raises(UserError, match="config.yaml: interpolation"):
        from_yaml_file(run_cfg)


def test_yaml_tags_in_a_run_config_are_a_message(tmp_path):
    run_cfg = tmp_path / "config.yaml"
    run_cfg.write_text("train: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(UserError, match="config.yaml: not a readable YAML config"):
        from_yaml_file(run_cfg)
    run_cfg.write_text("- a list\n")
    with pytest.raises(UserError, match="config.yaml: expected a mapping"):
        from_yaml_file(run_cfg)


def test_a_bad_config_through_the_cli_is_one_line_and_writes_nothing(tmp_path):
    out = subprocess.run([sys.executable, "-m", "harness.cli.main", "train", "--config",
                          "smoke_stage1", f"runs_dir={tmp_path}", "name=../outside",
                          "tracking.enabled=false"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("stackgan-bench: error: name: '../outside'")
    assert not (tmp_path.parent / "outside").exists() and not list(tmp_path.iterdir())


def test_class_info_that_is_not_a_list_of_ids_names_the_file(synth_copy):
    from harness.data.sources import load_index

    path = synth_copy / "train" / "class_info.pickle"
    dump_pickle({"not": "a list"}, path)
    with pytest.raises(UserError, match=r"class_info.pickle: holds a dict, expected a list of "
                                        "integer class ids"):
        load_index(synth_copy, "train")
    dump_pickle(["a", "b"], path)
    with pytest.raises(UserError, match="class_info.pickle: expected a list of integer class ids"):
        load_index(synth_copy, "train")


@pytest.mark.parametrize("export, reason", [
    ({"responses": 5}, '"responses": expected a list of responses, found a int'),
    ({"responses": {"a": 1}}, '"responses": expected a list of responses, found a dict'),
])
def test_a_malformed_server_export_is_rejected_with_the_reason(tmp_path, export, reason):
    from harness.human.responses import read_responses

    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    study = {"study_id": "s", "raters": [{"rater_id": "r1"}], "items": [], "models": ["a", "b"]}
    result = read_responses(study, {}, [path])
    assert result.rejected == [(str(path), reason)] and not result.accepted


def test_a_rater_id_that_is_not_a_string_is_rejected(tmp_path):
    from harness.human.responses import read_responses

    path = tmp_path / "export.json"
    path.write_text(json.dumps({"responses": [{"rater_id": ["x"], "format": "?"}]}))
    study = {"study_id": "s", "raters": [{"rater_id": "r1"}], "items": [], "models": ["a", "b"]}
    result = read_responses(study, {}, [path])
    assert len(result.rejected) == 1 and "not a stackgan-bench-response/1" in result.rejected[0][1]


def test_preresized_images_that_are_not_numbers_name_the_file(synth_copy):
    from harness.data.sources import load_index

    index = load_index(synth_copy, "train")
    path = synth_copy / "train" / "76images.pickle"
    dump_pickle(np.array(["x"] * len(index)), path)
    with pytest.raises(UserError, match="76images.pickle: holds <U1 values, expected an array"):
        index.load_preresized(76)
