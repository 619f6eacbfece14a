"""The gate's comparison rules on constructed values (the end-to-end gate is in test_reproduce)."""

import json

import pytest

from harness.errors import UserError
from harness.reproduce.gate import (
    NUMPY_RTOL,
    compare,
    format_moved,
    load_baseline,
    record_baseline,
    snapshot,
    value_group,
)

TORCH = {"torch": "2.14.1", "aten_capability": "DEFAULT", "mkl_cbwr": "COMPATIBLE", "onednn": False,
         "nnpack": False, "threads": 2}
BLAS = {"numpy": "2.4.6", "scipy": "1.17.1", "numpy_simd": ["AVX512_SKX"],
        "blas": ["openblas 0.3.31 SkylakeX"]}
VALUES = {"run-a/loss_g/1": 0.75, "run-a/eval.is_mean": 2.5, "run-a/eval.fid": 40.0,
          "run-a/eval.kid_mean": 0.25, "run-b/loss_g/1": 0.5, "run-b/eval.fid": 30.0,
          "classifier/held_out_accuracy": 0.5, "data/fingerprint": "abc123"}


def _baseline(values=VALUES, torch=TORCH, blas=BLAS) -> dict:
    return {"platform": {"torch": torch, "blas": blas}, "values": dict(values)}


def _here(torch=TORCH, blas=BLAS) -> dict:
    return {"torch": dict(torch), "blas": dict(blas)}


def test_groups_follow_what_computes_the_value():
    assert value_group("run-a/eval.fid") == value_group("ceiling/eval.kid_std") == "numpy"
    for key in ("run-a/loss_g/1", "run-a/eval.is_mean", "run-a/eval.rprec_mean",
                "classifier/temperature", "data/fingerprint"):
        assert value_group(key) == "torch"


def test_same_platform_is_exact_in_every_group():
    result = compare(dict(VALUES), _baseline(), _here())
    assert result.passed and [r.rule for r in result.rules] == ["exact", "exact"]
    bumped = dict(VALUES, **{"run-a/eval.fid": 40.0 * (1 + 1e-9)})
    result = compare(bumped, _baseline(), _here())
    assert not result.passed and [k for k, _, _ in result.moved] == ["run-a/eval.fid"]


def test_another_blas_kernel_compares_fid_and_kid_within_the_tolerance_only():
    other = dict(BLAS, blas=["openblas 0.3.31 Haswell"])
    near = dict(VALUES, **{"run-a/eval.fid": 40.0 * (1 + NUMPY_RTOL / 10),
                           "run-a/eval.kid_mean": 0.25 * (1 - NUMPY_RTOL / 10)})
    result = compare(near, _baseline(), _here(blas=other))
    assert result.passed, format_moved(result)
    torch_rule, numpy_rule = result.rules
    assert torch_rule.rule == "exact" and numpy_rule.rtol == NUMPY_RTOL
    assert "Haswell" in numpy_rule.reason and numpy_rule.values == 3
    far = dict(near, **{"run-a/eval.fid": 40.0 * (1 + NUMPY_RTOL * 10)})
    assert [k for k, _, _ in compare(far, _baseline(), _here(blas=other)).moved] == ["run-a/eval.fid"]
    # The tolerance never reaches the torch group, nor the dataset's fingerprint.
    for key, value in (("run-a/loss_g/1", 0.75 * (1 + 1e-9)), ("data/fingerprint", "abc124")):
        result = compare(dict(near, **{key: value}), _baseline(), _here(blas=other))
        assert [k for k, _, _ in result.moved] == [key]


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


def test_another_torch_is_not_comparable_and_says_why():
    result = compare(dict(VALUES), _baseline(), _here(torch=dict(TORCH, torch="2.13.0")))
    assert not result.passed and not result.comparable
    assert result.rules[0].rule == "not comparable"
    assert "torch '2.14.1' vs '2.13.0'" in result.platform_note


def test_selected_runs_compare_only_theirs_and_the_shared_values():
    gone = {k: v for k, v in VALUES.items() if not k.startswith("run-b/")}
    result = compare(gone, _baseline(), _here(), runs=["run-a"])
    assert result.passed and result.compared == 6


def test_baseline_file_round_trip_and_bad_files(tmp_path):
    path = tmp_path / "baseline.json"
    record_baseline(path, {"platform": {"torch": TORCH, "blas": BLAS}, "values": VALUES})
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
