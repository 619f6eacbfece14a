"""Metric validity: the degradations do what they say, and the checks read the intervals right."""

import numpy as np
import pytest
import torch

from harness.eval.validity import checks, degrade, derangement


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


def test_derangement_moves_every_caption():
    for n in (2, 5, 50):
        p = derangement(n, seed=n)
        assert sorted(p) == list(range(n)) and not np.any(p == np.arange(n))


def _row(value, lo, hi):
    return {"value": value, "ci": [lo, hi]}


def test_checks_need_separated_intervals_in_the_right_direction():
    results = {"real": {"is": _row(5, 4.8, 5.2), "fid": _row(1, 0.8, 1.2), "rprec": _row(0.3, 0.25, 0.35)},
               "down2": {"is": _row(4, 3.8, 4.2), "fid": _row(3, 2.8, 3.2), "rprec": _row(0.2, 0.14, 0.24)},
               "down4": {"is": _row(3.9, 3.7, 4.1), "fid": _row(6, 5.5, 6.5), "rprec": _row(0.1, 0.05, 0.13)},
               "shuffled": {"is": _row(5, 4.8, 5.2), "fid": _row(1, 0.8, 1.2),
                            "rprec": _row(0.012, 0.004, 0.02)}}
    out = checks(results)
    assert out["is: real > down2 > down4"] is False  # down2 [3.8, 4.2] overlaps down4 [3.7, 4.1]
    assert out["fid: real > down2 > down4"] is True  # lower is better, separated
    assert out["rprec: real > down2 > down4"] is True
    assert out["rprec: shuffled captions at chance (1/100 within the CI)"] is True
    assert out["rprec: real above chance (CI above 1/100)"] is True
    results["shuffled"]["rprec"] = _row(0.05, 0.03, 0.07)
    assert checks(results)["rprec: shuffled captions at chance (1/100 within the CI)"] is False


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
    assert set(report["results"]) == {"real", "down2", "down4", "blur", "jpeg", "colour", "shuffled", "noise"}
    for row in report["results"].values():
        for v in row.values():
            assert v["ci"][0] <= v["value"] <= v["ci"][1] or np.isclose(v["ci"][0], v["ci"][1])
    # Pure noise is far from the real images in any classifier's features.
    assert report["results"]["noise"]["fid"]["value"] > report["results"]["real"]["fid"]["value"]
    assert "| real |" in (out / "validity.md").read_text()
