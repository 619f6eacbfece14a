import re

import pytest

from harness.config.load import config_differences, load_config
from harness.errors import UserError
from harness.experiments.plan import plan_runs
from harness.experiments.spec import load_experiment, load_scales, merge_runs
from harness.experiments.train_plan import execute, run_status

TEST_SET = ["tracking.enabled=false", "data.check=false", "train.max_steps=1",
            "train.sample_every=1000", "train.checkpoint_every=1000"]


@pytest.fixture(scope="module")
def runs():
    return merge_runs([load_experiment("table1"), load_experiment("table2")])


def test_table2_has_the_papers_ten_rows_as_config(runs):
    exp = load_experiment("table2")
    assert len(exp.rows) == 10
    plan = {p.spec.id: p for p in plan_runs(exp.runs, load_scales()["smoke"], "runs/x")}
    seen = set()
    for row in exp.rows:
        m = plan[row.run].config.model
        size = m.stage1_size if m.stage == 1 else m.stage2_size
        assert row.columns["model"].startswith(f"{size}×{size}")
        assert ("StackGAN" in row.columns["model"]) == (m.stage == 2)
        assert m.use_ca == (row.columns["ca"] == "yes")
        if m.stage == 2:
            assert m.stage2_text == (row.columns["text_twice"] == "yes")
        seen.add((m.stage, size, m.use_ca, m.stage2_text if m.stage == 2 else None))
    assert len(seen) == 10


def test_paper_scale_uses_the_official_hyperparameters_unchanged(runs):
    scale = load_scales()["paper"]
    for p in plan_runs(runs, scale, "runs/paper"):
        official = load_config(p.preset)
        diffs = config_differences(official, p.config, ignore_safe=False)
        allowed = {"name", "runs_dir", "train.seed", "data.root", "train.stage1_run",
                   "tracking.experiment", *(o.split("=")[0] for o in p.spec.set)}
        assert {d.split(":")[0] for d in diffs} <= allowed, (p.name, diffs)


def test_rows_without_data_at_a_scale_are_skipped_with_the_reason(runs):
    plan = plan_runs(runs, load_scales()["small"], "runs/s")
    skipped = {p.spec.id: p.skipped for p in plan if p.skipped}
    assert set(skipped) == {r for r in runs if not r.startswith("cub-")}
    assert "--data oxford102=DIR" in skipped["oxford102-s1-64"]
    assert skipped["oxford102-sg-256"]


def test_a_scale_may_train_only_some_rows_and_says_where_the_others_are(runs):
    scale = load_scales()["quick"]
    plan = {p.spec.id: p for p in plan_runs(runs, scale, "runs/q")}
    trained = {k for k, p in plan.items() if not p.skipped}
    assert trained == {"cub-s1-64", "cub-sg-256", "cub-gan-int-cls"}
    assert "published report" in plan["cub-gawwn"].skipped
    assert "published report" in plan["cub-sg-128"].skipped
    assert "--data oxford102=DIR" in plan["oxford102-s1-64"].skipped  # no folder: that reason


@pytest.mark.integration
def test_every_table2_row_and_table1_cub_model_trains_one_step(smoke_data, tmp_path, runs):
    wanted = {k: v for k, v in runs.items() if k.startswith("cub-")}
    plan = plan_runs(wanted, load_scales()["smoke"], tmp_path, {"cub": str(smoke_data)}, TEST_SET)
    messages = []
    outcomes = execute(plan, progress=False, report=messages.append)
    assert [o.status for o in outcomes] == ["trained"] * len(wanted)
    assert all(o.detail == "1 steps" for o in outcomes)
    # The Stage-II runs were built on their own Stage-I runs.
    for p in plan:
        if p.spec.stage1:
            assert p.config.train.stage1_run.endswith(f"{p.spec.stage1}-s0")
    # Running again leaves finished runs alone.
    again = execute(plan, progress=False, report=messages.append)
    assert {o.status for o in again} == {"done"}
    # A changed config is refused with the differences rather than silently reused.
    changed = plan_runs({"cub-s1-64": wanted["cub-s1-64"]}, load_scales()["smoke"], tmp_path,
                        {"cub": str(smoke_data)}, [*TEST_SET, "model.kl_weight=1.0"])
    assert run_status(changed[0]) == "resume"
    with pytest.raises(UserError, match="model.kl_weight: 2.0 -> 1.0"):
        execute(changed, progress=False, report=messages.append)


def test_bad_experiment_files_are_refused_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: x\ntitle: t\nmetrics: [is]\nrows: []\n"
                   "runs:\n  a: {kind: stage2, dataset: cub, stage1: nope}\n")
    with pytest.raises(UserError, match=r"runs.a.stage1: 'nope' is not a stage1 run"):
        load_experiment(str(bad))
    bad.write_text("experiment: x\ntitle: t\nmetrics: [is]\nrows: []\n"
                   "runs:\n  a: {kind: stage1, dataset: cub, sett: []}\n")
    with pytest.raises(UserError, match=r"runs.a: unknown key\(s\) \['sett'\]"):
        load_experiment(str(bad))
    bad.write_text("experiment: x\ntitle: t\nmetrics: [is]\nruns:\n  a: {kind: stage1, dataset: cub}\n"
                   "rows:\n  - {run: b, paper: {}}\n")
    with pytest.raises(UserError, match=r"rows\[0\].run: 'b' is not one of"):
        load_experiment(str(bad))


def test_one_id_names_one_run_across_files(tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text("experiment: x\ntitle: t\nmetrics: [is]\nrows: []\n"
                     "runs:\n  cub-s1-64: {kind: stage1, dataset: cub, set: [model.use_ca=false]}\n")
    with pytest.raises(UserError, match="defined differently"):
        merge_runs([load_experiment("table2"), load_experiment(str(other))])


def test_cli_plan_lists_runs(capsys):
    from harness.cli.main import main

    assert main(["experiment", "plan", "table2", "--scale", "paper", "--only", "cub-sg-128"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in out] == ["cub-s1-64-s0", "cub-sg-128-s0"]
    assert main(["experiment", "plan", "table2", "--scale", "huge"]) == 2
    assert "choose one of smoke, quick, small, paper" in capsys.readouterr().err


def test_a_typo_in_a_scales_pipeline_section_is_refused_with_the_nearest_key(tmp_path):
    """The pipeline section is typed like a run config: a misspelt key was silently ignored."""
    import yaml

    from harness.experiments.spec import EXPERIMENT_DIR

    scales = yaml.safe_load((EXPERIMENT_DIR / "scales.yaml").read_text())
    cases = (("eval", {"sise": 64}, "unknown key 'eval.sise'; did you mean eval.size"),
             (None, {"text_step": 3}, "unknown key 'text_step'; did you mean text_steps"),
             ("synth", {"clases": 3}, "synth: unknown key 'clases'; did you mean classes"),
             ("human", {"raters": "ten"}, "invalid value for 'human.raters'"))
    for section, bad, expected in cases:
        changed = {**scales["quick"], "pipeline": dict(scales["quick"]["pipeline"])}
        target = changed["pipeline"]
        if section:
            target[section] = {**target.get(section, {}), **bad}
        else:
            target.update(bad)
        path = tmp_path / "scales.yaml"
        path.write_text(yaml.safe_dump({"quick": changed}))
        with pytest.raises(UserError, match=re.escape(expected)):
            load_scales(path)
    quick = load_scales()["quick"].pipeline
    assert (quick.eval.kid_subset_size, quick.human.raters, quick.validity) == (500, 3, None)
    assert quick.declared["eval"]["kid_subset_size"] == 500  # the steps' hashes read what is written


@pytest.mark.parametrize("mode, native, expected", [
    ("off", True, None), ("on", False, "true"), ("native", True, "true"), ("native", False, "false")])
def test_a_scale_asks_for_bf16_off_on_or_where_the_hardware_has_it(monkeypatch, mode, native, expected):
    """pipeline.autocast_bf16 becomes an explicit override of every run (so each config.yaml
    records what it trained with), resolved once per reproduce and said in its log; the user's
    --set comes last and wins."""
    from harness.core import speed
    from harness.reproduce.pipeline import Pipeline, ReproduceOptions

    monkeypatch.setattr(speed, "hardware_has_bf16", lambda: native)
    pipe = Pipeline(ReproduceOptions(preset="smoke", extra=["train.seed=3"]))
    pipe.pipe.autocast_bf16 = mode
    said = []
    pipe.log.say = said.append
    overrides = pipe.run_overrides()
    bf16 = [o.split("=")[1] for o in overrides if o.startswith("train.autocast_bf16=")]
    assert bf16 == ([expected] if expected else []) and overrides[-1] == "train.seed=3"
    assert pipe.run_overrides() == overrides  # resolved once
    assert (len([s for s in said if "[numerics]" in s]) == 1) is (mode == "native")
    user = Pipeline(ReproduceOptions(preset="smoke", extra=["train.autocast_bf16=false"]))
    user.pipe.autocast_bf16 = "on"
    assert user.run_overrides()[-1] == "train.autocast_bf16=false"
    user.pipe.autocast_bf16 = "always"
    with pytest.raises(UserError, match="choose off, on or native"):
        user.run_overrides()
