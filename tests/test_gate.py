"""The gate's comparison rules on constructed values (the end-to-end gate is in test_reproduce)."""

import json

import numpy as np
import pytest

from harness.errors import UserError
from harness.reproduce.gate import (
    METRICS_RTOL,
    PIXELS_ATOL,
    SPREAD_FACTOR,
    TRAINING_ATOL,
    TRAINING_RTOL,
    compare,
    format_moved,
    load_baseline,
    measured_spread,
    pixel_signature,
    record_baseline,
    snapshot,
    value_group,
)

TORCH = {"torch": "2.14.1+cu130", "dtype": "float64", "aten_capability": "DEFAULT",
         "mkl_cbwr": "COMPATIBLE", "onednn": False, "nnpack": False, "threads": 2}
BLAS = {"numpy": "2.4.6", "scipy": "1.17.1", "numpy_simd": ["AVX512_SKX"],
        "blas": ["openblas 0.3.31 SkylakeX"]}
VALUES = {"run-a/loss_g/1": 0.75, "run-a/kl/1": 1e-5, "run-a/eval.is_mean": 2.5,
          "run-a/eval.fid": 40.0, "run-a/eval.kid_mean": 0.25, "run-a/eval.pixels": [120.0, 64.5, 3.0],
          "run-b/loss_g/1": 0.5, "run-b/eval.fid": 30.0,
          "classifier/held_out_accuracy": 0.5, "data/fingerprint": "abc123"}


def _baseline(values=VALUES, torch=TORCH, blas=BLAS) -> dict:
    return {"platform": {"torch": torch, "blas": blas}, "values": dict(values)}


def _here(torch=TORCH, blas=BLAS) -> dict:
    return {"torch": dict(torch), "blas": dict(blas)}


def _moved(values, **here) -> list[str]:
    return [k for k, _, _ in compare(values, _baseline(), _here(**here)).moved]


def test_groups_follow_what_computes_the_value():
    assert value_group("data/fingerprint") == "data"
    assert value_group("run-a/eval.pixels") == "pixels"
    for key in ("run-a/eval.fid", "ceiling/eval.kid_std", "run-a/eval.is_mean", "run-a/eval.rprec_mean"):
        assert value_group(key) == "metrics"
    for key in ("run-a/loss_g/1", "run-a/kl/3", "classifier/temperature", "text-encoder/final_loss"):
        assert value_group(key) == "training"


def test_each_group_allows_its_tolerance_and_no_more():
    result = compare(dict(VALUES), _baseline(), _here())
    assert result.passed and result.compared == len(VALUES)
    assert "every value identical" in result.platform_note
    inside = dict(VALUES, **{"run-a/loss_g/1": 0.75 * (1 + TRAINING_RTOL / 2),
                             "run-a/kl/1": 1e-5 + TRAINING_ATOL / 2,  # near zero: the absolute floor
                             "run-a/eval.fid": 40.0 * (1 + METRICS_RTOL / 2),
                             "run-a/eval.pixels": [120.0 + PIXELS_ATOL / 2, 64.5, 3.0 - PIXELS_ATOL / 2]})
    result = compare(inside, _baseline(), _here())
    assert result.passed, format_moved(result)
    training = next(g for g in result.groups if g.rule.group == "training")
    assert 0.45 < training.largest <= 0.5 and training.largest_key in ("run-a/loss_g/1", "run-a/kl/1")
    for key, value in (("run-a/loss_g/1", 0.75 * (1 + TRAINING_RTOL * 2)),
                       ("run-a/kl/1", 1e-5 + TRAINING_ATOL * 3),
                       ("run-a/eval.fid", 40.0 * (1 + METRICS_RTOL * 2)),
                       ("run-a/eval.kid_mean", 0.25 * (1 - METRICS_RTOL * 2)),
                       ("run-a/eval.pixels", [120.0, 64.5 + PIXELS_ATOL * 2, 3.0]),
                       ("run-a/eval.pixels", [120.0, 64.5]),  # an image fewer
                       ("data/fingerprint", "abc124")):
        assert _moved(dict(inside, **{key: value})) == [key], key
    # The metrics' looser rule never reaches training values.
    assert _moved(dict(VALUES, **{"run-a/loss_g/1": 0.75 * (1 + METRICS_RTOL / 2)})) == ["run-a/loss_g/1"]


def test_the_verdict_does_not_depend_on_the_kernels_or_the_cpu():
    other_torch = dict(TORCH, aten_capability="AVX512", mkl_cbwr="AUTO", threads=4, torch="2.14.1")
    other_blas = dict(BLAS, blas=["openblas 0.3.31 Haswell"], numpy_simd=["X86_V3"])
    near = dict(VALUES, **{"run-a/loss_g/1": 0.75 * (1 + TRAINING_RTOL / 3)})
    assert compare(near, _baseline(), _here(torch=other_torch, blas=other_blas)).passed
    assert compare(near, _baseline(), _here()).passed
    far = dict(VALUES, **{"run-a/loss_g/1": 0.75 * (1 + TRAINING_RTOL * 3)})
    for here in (_here(), _here(torch=other_torch, blas=other_blas)):
        assert [k for k, _, _ in compare(far, _baseline(), here).moved] == ["run-a/loss_g/1"]


def test_measured_spread_is_pooled_per_run_and_step_and_widens_only_its_values():
    base = {"run-a/loss_g/1": 1.0, "run-a/kl/1": 2.0, "run-a/loss_g/2": 1.0, "run-a/kl/2": 4.0,
            "run-a/loss_g/3": 0.5, "run-b/loss_g/2": 1.0, "run-a/eval.fid": 40.0,
            "run-a/eval.pixels": [10.0, 20.0], "data/fingerprint": "abc"}
    other = dict(base, **{"run-a/kl/2": 4.0 * (1 + 1e-3), "run-a/eval.fid": 40.5,
                          "run-a/eval.pixels": [10.0, 20.25], "run-a/loss_g/1": 1.0 + 1e-9})
    spread = measured_spread(base, other)
    # run-a's step 2 moved by 1e-3 relative (its KL): every run-a curve value from step 2 on may
    # move as much, relative to its own size; step 1 values 1e-9 relative; run-b nothing.
    assert spread["run-a/loss_g/2"] == pytest.approx(1e-3) and spread["run-a/kl/2"] == pytest.approx(4e-3)
    assert spread["run-a/loss_g/3"] == pytest.approx(0.5e-3)
    assert spread["run-a/loss_g/1"] == pytest.approx(1e-9, rel=1e-6)
    assert spread["run-a/kl/1"] == pytest.approx(2e-9, rel=1e-6)
    assert "run-b/loss_g/2" not in spread and "data/fingerprint" not in spread
    assert spread["run-a/eval.fid"] == 0.5 and spread["run-a/eval.pixels"] == 0.25
    baseline = {"platform": _baseline()["platform"], "values": base, "spread": spread}
    allowed = dict(base, **{"run-a/loss_g/3": 0.5 * (1 + SPREAD_FACTOR * 1e-3 * 0.9),
                            "run-a/eval.fid": 40.0 + SPREAD_FACTOR * 0.5 * 0.9})
    result = compare(allowed, baseline, _here())
    assert result.passed, format_moved(result)
    assert result.platform_note.count(f"(1 of them: {SPREAD_FACTOR}x their measured spread") == 2
    for key, value in (("run-a/loss_g/3", 0.5 * (1 + SPREAD_FACTOR * 1e-3 * 1.1)),
                       ("run-a/eval.fid", 40.0 + SPREAD_FACTOR * 0.5 * 1.1),
                       ("run-b/loss_g/2", 1.0 * (1 + TRAINING_RTOL * 2)),  # no spread: the rule
                       ("run-a/kl/1", 2.0 * (1 + TRAINING_RTOL * 2))):
        assert [k for k, _, _ in compare(dict(base, **{key: value}), baseline, _here()).moved] == [key]


def test_a_value_missing_on_either_side_fails_the_gate():
    gone = {k: v for k, v in VALUES.items() if not k.startswith("run-b/")}
    result = compare(gone, _baseline(), _here())
    assert not result.passed
    assert {k for k, _, _ in result.moved} == {"run-b/loss_g/1", "run-b/eval.fid"}
    assert "missing" in format_moved(result)
    extra = dict(VALUES, **{"run-c/loss_g/1": 1.0})
    assert [k for k, _, _ in compare(extra, _baseline(), _here()).moved] == ["run-c/loss_g/1"]
    # Even where the values cannot be compared, a missing value is reported.
    result = compare(gone, _baseline(), _here(torch=dict(TORCH, torch="2.13.0")))
    assert not result.comparable and len(result.moved) == 2


def test_another_torch_release_or_dtype_is_not_comparable_and_says_why():
    result = compare(dict(VALUES), _baseline(), _here(torch=dict(TORCH, torch="2.13.0")))
    assert not result.passed and not result.comparable
    assert "torch '2.14.1+cu130' vs '2.13.0'" in result.platform_note
    result = compare(dict(VALUES), _baseline(), _here(torch=dict(TORCH, dtype="float32")))
    assert not result.comparable and "dtype 'float64' vs 'float32'" in result.platform_note
    # Another build of the same release (a CPU wheel instead of a CUDA one) is compared.
    assert compare(dict(VALUES), _baseline(), _here(torch=dict(TORCH, torch="2.14.1+cpu"))).passed


def test_selected_runs_compare_only_theirs_and_the_shared_values():
    gone = {k: v for k, v in VALUES.items() if not k.startswith("run-b/")}
    result = compare(gone, _baseline(), _here(), runs=["run-a"])
    assert result.passed and result.compared == 8


def test_pixel_signature_is_the_mean_of_each_channel_in_each_quarter(tmp_path):
    from PIL import Image

    arr = np.zeros((4, 6, 3), dtype=np.uint8)
    arr[:2, :3] = (10, 20, 30)
    arr[:2, 3:] = (40, 50, 60)
    arr[2:, :3, 0] = [[0, 1, 2], [3, 4, 5]]  # mean 2.5 in the red channel
    arr[3, 5] = (255, 255, 255)  # one pixel of six in its quarter
    Image.fromarray(arr).save(tmp_path / "a.png")
    assert pixel_signature([tmp_path / "a.png"]) == [10, 20, 30, 40, 50, 60, 2.5, 0, 0,
                                                      42.5, 42.5, 42.5]


def test_baseline_file_round_trip_and_bad_files(tmp_path):
    path = tmp_path / "baseline.json"
    record_baseline(path, {"platform": {"torch": TORCH, "blas": BLAS}, "values": VALUES},
                    {"run-a/loss_g/1": 0.1})
    recorded = json.loads(path.read_text())
    assert recorded["rules"]["training"] == {"rtol": TRAINING_RTOL, "atol": TRAINING_ATOL}
    assert recorded["spread"] == {"run-a/loss_g/1": 0.1} and recorded["spread_run"]["factor"] == SPREAD_FACTOR
    assert compare(dict(VALUES), load_baseline(path), _here()).passed
    with pytest.raises(UserError, match="no baseline yet"):
        load_baseline(tmp_path / "none.json")
    path.write_text("{")
    with pytest.raises(UserError, match="invalid JSON"):
        load_baseline(path)
    path.write_text(json.dumps({"values": {}}))
    with pytest.raises(UserError, match="not a gate baseline"):
        load_baseline(path)


def test_snapshot_ignores_runs_moved_aside(tmp_path):
    for name in ("run-a", "run-a.replaced-20260101-000000"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss_g": 0.5}) + "\n")
    assert snapshot(tmp_path) == {"run-a/loss_g/1": 0.5}
