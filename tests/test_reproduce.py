"""reproduce / report / gate on the smoke preset (one shared run of the pipeline)."""

import json
import shutil
import time

import pytest

from harness.reproduce.gate import BASELINE, compare, format_moved, run_gate, snapshot
from harness.reproduce.pipeline import Pipeline, ReproduceOptions

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """reproduce --preset smoke in a fresh folder (what `gate` runs), with the human study."""
    root = tmp_path_factory.mktemp("reproduce")
    opts = ReproduceOptions(preset="smoke", runs_root=str(root / "runs"), progress=False,
                            reports_root=str(root / "reports"), report=False)
    pipe = Pipeline(opts)
    pipe.data_root = root / "data" / "synthbirds-smoke"
    pipe.log.say = lambda text: None
    planned = pipe.run_and_plan()
    return root, opts, pipe, planned


def _again(root, opts):
    pipe = Pipeline(opts)
    pipe.data_root = root / "data" / "synthbirds-smoke"
    pipe.log.say = lambda text: None
    started = time.time()
    pipe.run_and_plan()
    return pipe.log, time.time() - started


def test_every_cub_row_is_trained_and_evaluated(smoke):
    root, _, pipe, planned = smoke
    trained = [p for p in planned if not p.skipped]
    assert {p.spec.id for p in trained} == {p.spec.id for p in planned if p.spec.dataset == "cub"}
    assert len(trained) == 12
    for p in trained:
        ev = json.loads((p.run_dir / "eval.json").read_text())
        assert ev["values"]["is_mean"] >= 1.0 - 1e-6
        assert ev["settings"]["n_images"] == 48  # 24 test images × 2 captions
    assert (root / "runs" / "ceiling" / "eval.json").exists()
    key = json.loads((root / "runs" / "human-study" / "key.json").read_text())
    assert set(key["models"]) == {"cub-sg-256", "cub-gan-int-cls", "cub-gawwn"}


def test_gate_matches_the_committed_baseline(smoke):
    root = smoke[0]
    result = compare(snapshot(root / "runs"), json.loads(BASELINE.read_text()))
    assert result.passed, result.platform_note + "\n" + format_moved(result)
    assert result.compared > 300


def test_a_second_reproduce_skips_every_step_and_an_interrupted_one_continues(smoke):
    root, opts, pipe, planned = smoke
    log, seconds = _again(root, opts)
    assert log.ran == [] and len(log.skipped) > 30
    # Killed mid-training after a checkpoint: no final checkpoint, no stamp. Only that run
    # resumes; it ends bit-identical, so its evaluation (keyed by the weights) stays up to date.
    victim = next(p for p in planned if p.spec.id == "cub-s1-64-noca")
    stamp = root / "runs" / ".reproduce" / f"train_{victim.name}.json"
    stamp.unlink()
    (victim.run_dir / "checkpoints" / "final.pt").unlink()
    assert list((victim.run_dir / "checkpoints").glob("*.pt"))  # the step-3 checkpoint
    log, _ = _again(root, opts)
    assert log.ran == [f"train:{victim.name}"]
    # Killed before any checkpoint: the folder is kept aside, the run trained from scratch and
    # evaluated again (its eval.json went with the old folder).
    stamp.unlink()
    shutil.rmtree(victim.run_dir / "checkpoints")
    log, _ = _again(root, opts)
    assert log.ran == [f"train:{victim.name}", f"eval:{victim.name}"]
    assert list(root.glob(f"runs/{victim.name}.replaced-*"))


def test_report_writes_tables_figures_and_index(smoke):
    from reports.build import build_report

    root, opts, _, _ = smoke
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
    assert {c["claim"] for c in claims} == {"CA helps", "two stages above one", "text twice helps"}
    assert r"\begin{tabular}" in (t2 / "table.tex").read_text()
    assert set(out["reports"]) == {"table1", "table2"}


def test_gate_fails_on_a_changed_kl_weight_and_names_what_moved():
    result = run_gate(extra=["model.kl_weight=1.0"], only_runs=["cub-s1-64"])
    assert not result.passed
    moved = {k.split("/")[0] for k, _, _ in result.moved}
    assert moved == {"cub-s1-64-s0"}  # the text encoder and classifiers did not move
    assert any("/loss_g/" in k for k, _, _ in result.moved)
    assert "cub-s1-64-s0/loss_g" in format_moved(result)
