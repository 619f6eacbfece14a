"""Metric validity: the degradations do what they say, and the checks read the intervals right."""

import numpy as np
import pytest
import torch

from harness.eval.attributes import derangement
from harness.eval.validity import (
    LADDERS,
    checks,
    compared_pairs,
    degrade,
    ladder_conditions,
    paired_difference,
)


def _images(n=4, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)


def test_degradations_keep_shape_and_remove_what_they_say():
    x = _images()
    for kind in ("real", "down2", "down4", "blur", "jpeg", "colour", "shuffled", "noise"):
        y = degrade(x, kind)
        assert y.shape == x.shape and y.dtype == torch.uint8, kind
    assert torch.equal(degrade(x, "real"), x) and torch.equal(degrade(x, "shuffled"), x)
    # Down-up sampling by 4 leaves little of random pixels' high frequencies: smoother than by 2.
    def roughness(t):
        return (t.float()[..., 1:] - t.float()[..., :-1]).abs().mean().item()
    assert roughness(degrade(x, "down4")) < roughness(degrade(x, "down2")) < roughness(x)
    assert not torch.equal(degrade(x, "noise"), x)


def test_every_ladder_gets_worse_step_by_step():
    """Each ladder moves the images further from the real ones at every step (in pixels)."""
    g = torch.Generator().manual_seed(1)
    smooth = torch.nn.functional.interpolate(torch.rand(4, 3, 8, 8, generator=g), size=64,
                                             mode="bilinear") * 255
    x = smooth.round().to(torch.uint8)
    for name, levels in LADDERS.items():
        errors = [(degrade(x, f"{name}{level}").float() - x.float()).abs().mean().item()
                  for level in levels]
        assert all(a < b for a, b in zip(errors, errors[1:], strict=False)), (name, errors)
        assert all(degrade(x, f"{name}{level}").shape == x.shape for level in levels)
    assert torch.equal(degrade(x, "mix100"), degrade(x, "mix100"))  # seeded
    assert len(ladder_conditions()) == 16
    assert ("real", "down2") in compared_pairs() and ("gauss64", "gauss128") in compared_pairs()


def test_derangement_moves_every_caption():
    for n in (2, 5, 50):
        p = derangement(n, seed=n)
        assert sorted(p) == list(range(n)) and not np.any(p == np.arange(n))


def _row(value, lo, hi):
    return {"value": value, "ci": [lo, hi]}


def test_paired_difference_reads_the_draws_in_the_better_direction():
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 1, 2000)  # the resampling noise both conditions share
    better = {"is": 5 + shared, "fid": 1 + 0.1 * shared}
    worse = {"is": 4.9 + shared + 0.01 * rng.normal(0, 1, 2000), "fid": 1.2 + 0.1 * shared}
    values = ({"is": _row(5, 3, 7), "fid": _row(1, 0.8, 1.2)},
              {"is": _row(4.9, 2.9, 6.9), "fid": _row(1.2, 1, 1.4)})
    diff = paired_difference(better, worse, *values)
    # The marginal intervals overlap widely; the paired difference is 0.1 within ±0.02.
    assert diff["is"]["value"] == pytest.approx(0.1)
    assert 0.07 < diff["is"]["ci"][0] < 0.1 < diff["is"]["ci"][1] < 0.13
    assert diff["fid"]["value"] == pytest.approx(0.2) and diff["fid"]["ci"] == pytest.approx([0.2, 0.2])


def test_checks_need_the_paired_difference_above_zero():
    names = ["real", "down2", "down4", "shuffled", *ladder_conditions()]
    results = {k: {"is": _row(5, 4, 6), "rprec": _row(0.3, 0.25, 0.35)} for k in names}
    results["shuffled"]["rprec"] = _row(0.012, 0.004, 0.02)
    results["mix100"]["is"] = _row(1.2, 1.1, 1.3)
    clear = {"is": _row(0.5, 0.2, 0.8), "rprec": _row(0.1, 0.05, 0.15)}
    differences = {f"{a} > {b}": dict(clear) for a, b in compared_pairs()}
    out = checks(results, differences)
    assert out["is: real > down2 > down4"] and out["is: down ladder monotone, every step resolved"]
    assert out["is: a ladder reaches the models' range (IS below 2)"]
    assert out["rprec: shuffled captions at chance (1/100 within the CI)"]
    assert out["rprec: real above chance (CI above 1/100)"]
    differences["blur4 > blur8"] = {**clear, "is": _row(0.1, -0.05, 0.25)}  # one step not resolved
    out = checks(results, differences)
    assert not out["is: blur ladder monotone, every step resolved"]
    assert out["rprec: blur ladder monotone, every step resolved"]
    differences["down2 > down4"] = {**clear, "is": _row(-0.3, -0.5, -0.1)}  # reversed
    assert not checks(results, differences)["is: real > down2 > down4"]
    results["shuffled"]["rprec"] = _row(0.05, 0.03, 0.07)
    assert not checks(results, differences)["rprec: shuffled captions at chance (1/100 within the CI)"]


@pytest.mark.integration
def test_validate_cli_on_a_small_dataset(smoke_data, tmp_path):
    import json

    from harness.cli.main import main
    from harness.eval.classifier import ClassifierOptions, train_classifier

    train_classifier(smoke_data, tmp_path / "clf", ClassifierOptions(steps=20, width=8), progress=False)
    out = tmp_path / "validity"
    assert main(["eval", "--validate", "--data", str(smoke_data), "--size", "64", "--classifier",
                 str(tmp_path / "clf" / "classifier.pt"), "--metrics", "is,fid,kid", "--bootstrap", "20",
                 "--out", str(out)]) == 0
    report = json.loads((out / "validity.json").read_text())
    assert set(report["results"]) == {"real", "down2", "down4", "blur", "jpeg", "colour", "shuffled",
                                      "noise", *ladder_conditions()}
    from harness.eval.classifier import held_out_indices

    held = held_out_indices(tmp_path / "clf" / "classifier.pt", smoke_data)
    assert report["settings"]["evaluated_images"] + report["settings"]["reference_images"] == len(held)
    assert "real > down2" in report["differences"]
    for row in report["results"].values():
        for v in row.values():
            assert v["ci"][0] <= v["value"] <= v["ci"][1] or np.isclose(v["ci"][0], v["ci"][1])
    # Pure noise is far from the real images in any classifier's features.
    assert report["results"]["noise"]["fid"]["value"] > report["results"]["real"]["fid"]["value"]
    assert "| real |" in (out / "validity.md").read_text()


def test_validity_plot_draws_intervals_that_exclude_their_value(tmp_path):
    # A percentile interval of IS on resampled images can lie wholly below the value on the
    # images themselves (the claims miniature's 75 held-out images: IS 23.5, CI [17.8, 21.6]);
    # the figure must still be drawn (matplotlib's errorbar refuses negative bar lengths).
    from reports.figures import validity_plot

    report = {"results": {
        "real": {"is": {"value": 23.5, "ci": [17.8, 21.6]}, "fid": {"value": 0.03, "ci": [0.06, 0.15]}},
        "down2": {"is": {"value": 23.1, "ci": [17.5, 21.3]}, "fid": {"value": 0.06, "ci": [0.07, 0.19]}}}}
    out = validity_plot(report, tmp_path / "validity.png")
    assert out is not None and out.stat().st_size > 0
