"""reproduce / report / gate on the smoke preset (one shared run of the pipeline)."""

import json
import shutil

import pytest

from harness.reproduce.gate import (
    BASELINE,
    NUMPY_ATOL,
    NUMPY_RTOL,
    compare,
    format_moved,
    load_baseline,
    run_smoke,
    value_group,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The gate's smoke experiment (fresh process, portable numerics) with the human study."""
    root = tmp_path_factory.mktemp("reproduce")
    return root, run_smoke(root, human=True)


def _copy_of(smoke, tmp_path):
    """The smoke folder moved elsewhere (its configs hold relative paths: nothing reruns)."""
    copy = tmp_path / "moved"
    shutil.copytree(smoke[0], copy)
    return copy, smoke[1]


def _stamp(root, step: str):
    return root / "runs" / ".reproduce" / f"{step}.json"


def test_every_cub_row_is_trained_and_evaluated(smoke):
    root, result = smoke
    assert len(result["runs"]) == 12 and all(name.startswith("cub-") for name in result["runs"])
    for name in result["runs"]:
        ev = json.loads((root / "runs" / name / "eval.json").read_text())
        assert ev["settings"]["n_images"] == 48  # 24 test images × 2 captions
        assert {"is_mean", "fid", "kid_mean", "rprec_mean", "attr_mean"} <= set(ev["values"])
    assert (root / "runs" / "ceiling" / "eval.json").exists()
    key = json.loads((root / "runs" / "human-study" / "key.json").read_text())
    assert set(key["models"]) == {"cub-sg-256", "cub-gan-int-cls", "cub-gawwn"}


def test_a_second_reproduce_skips_every_step_and_an_interrupted_one_continues(smoke):
    root, first = smoke
    again = run_smoke(root, human=True)
    assert again["ran"] == [] and len(again["skipped"]) > 30
    # Killed mid-training after a checkpoint: no final checkpoint, no stamp. Only that run
    # resumes; it ends bit-identical, so its evaluation (keyed by the weights) stays up to date.
    victim = "cub-s1-64-noca-s0"
    run_dir = root / "runs" / victim
    _stamp(root, f"train_{victim}").unlink()
    (run_dir / "checkpoints" / "final.pt").unlink()
    assert list((run_dir / "checkpoints").glob("*.pt"))  # the step-3 checkpoint
    again = run_smoke(root, human=True)
    assert again["ran"] == [f"train:{victim}"]
    # Killed before any checkpoint: the folder is kept aside, the run trained from scratch and
    # evaluated again (its eval.json went with the old folder).
    _stamp(root, f"train_{victim}").unlink()
    shutil.rmtree(run_dir / "checkpoints")
    again = run_smoke(root, human=True)
    assert again["ran"] == [f"train:{victim}", f"eval:{victim}"]
    assert list(root.glob(f"runs/{victim}.replaced-*"))
    assert again["values"] == first["values"]  # retrained from scratch: the same bits


def test_report_writes_tables_figures_and_index(smoke):
    from reports.build import build_report

    root = smoke[0]
    out = build_report(["table1", "table2"], "smoke", root / "runs", root / "reports")
    t2 = root / "reports" / "table2"
    for name in ("table.md", "table.csv", "table.tex", "index.html", "claims.json",
                 "training_curves.png", "bars_IS.png", "samples_per_caption.png",
                 "stage1_vs_stage2.png", "noise_cub-sg-256.png"):
        assert (t2 / name).stat().st_size > 0, name
    md = (t2 / "table.md").read_text()
    assert md.count("| 256×256 StackGAN |") == 3 and "real images (ceiling)" in md
    assert "3.70 ± 0.04" in md and "text twice helps" in md
    t1 = (root / "reports" / "table1" / "table.md").read_text()
    assert "no oxford102 folder at the smoke scale" in t1
    claims = json.loads((t2 / "claims.json").read_text())
    assert {c["claim"] for c in claims} == {"CA helps", "two stages above one",
                                            "Stage-II above its own Stage-I", "text twice helps"}
    assert all(p["verdict"] == "not tested (1 seed)" for c in claims for p in c["pairs"])
    assert r"\begin{tabular}" in (t2 / "table.tex").read_text()
    assert set(out["reports"]) == {"table1", "table2"}


def _gate_against_baseline(result, runs=None):
    outcome = compare(result["values"], load_baseline(BASELINE), result["platform"], runs=runs)
    if not outcome.comparable:
        pytest.skip(outcome.platform_note)
    return outcome


def test_gate_matches_the_committed_baseline(smoke):
    outcome = _gate_against_baseline(smoke[1])
    assert outcome.passed, outcome.platform_note + "\n" + format_moved(outcome)
    assert outcome.compared > 300
    assert outcome.rules[0].group == "torch" and outcome.rules[0].rule == "exact"


def _other_openblas_kernel(blas: list[str]) -> str:
    return "Sandybridge" if any(lib.endswith("Haswell") for lib in blas) else "Haswell"


def test_evaluation_under_another_openblas_kernel_passes_within_the_stated_tolerance(smoke, tmp_path):
    root, first = _copy_of(smoke, tmp_path)
    kernel = _other_openblas_kernel(first["platform"]["blas"]["blas"])
    for stamp in (root / "runs" / ".reproduce").glob("eval_*.json"):
        stamp.unlink()  # evaluate every run and the ceiling again, under that kernel
    again = run_smoke(root, human=True, env={"OPENBLAS_CORETYPE": kernel})
    assert sorted(again["ran"]) == sorted(f"eval:{r}" for r in [*first["runs"], "ceiling"])
    assert any(lib.endswith(kernel) for lib in again["platform"]["blas"]["blas"])
    assert again["platform"]["torch"] == first["platform"]["torch"]
    outcome = _gate_against_baseline(again)
    assert outcome.passed, outcome.platform_note + "\n" + format_moved(outcome)
    torch_rule, numpy_rule = outcome.rules
    assert torch_rule.rule == "exact" and numpy_rule.rtol == NUMPY_RTOL
    assert kernel in numpy_rule.reason
    # The kernel did change bits, and only where the tolerance applies.
    changed = {k for k in first["values"] if again["values"][k] != first["values"][k]}
    assert changed and {value_group(k) for k in changed} == {"numpy"}
    # With a margin of 5 within the tolerance (relative, or absolute near zero).
    for k in changed:
        a, b = first["values"][k], again["values"][k]
        assert abs(a - b) < max(NUMPY_RTOL * abs(a), NUMPY_ATOL) / 5, (k, a, b)


def test_gate_fails_on_a_changed_kl_weight_and_names_what_moved(smoke, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    root, first = _copy_of(smoke, tmp_path)
    changed = run_smoke(root, extra=["model.kl_weight=1.0"], only_runs=["cub-s1-64"])
    assert not list(home.rglob("*"))  # the gate's caches stay in its work folder, not the user's
    assert changed["ran"] == ["train:cub-s1-64-s0", "eval:cub-s1-64-s0"]
    result = _gate_against_baseline(changed, runs=changed["runs"])
    assert not result.passed
    moved = {k.split("/")[0] for k, _, _ in result.moved}
    assert moved == {"cub-s1-64-s0"}  # the text encoder and classifiers did not move
    assert any("/loss_g/" in k for k, _, _ in result.moved)
    assert "cub-s1-64-s0/loss_g" in format_moved(result)
    # The images FID and KID see changed (compared exactly), whatever FID and KID did.
    assert "cub-s1-64-s0/eval.samples_sha256" in {k for k, _, _ in result.moved}
