"""The --decide loop on a toy objective: a fake trainer whose metric is a known mean + noise."""

import numpy as np

from harness.reproduce.decide import PairState, decide, half_width, next_step, precise


def _trainer(means: dict[str, float], sds: dict[str, float], seconds: dict[str, float], seed=0):
    rng = np.random.default_rng(seed)
    calls = []

    def train(row, s):
        calls.append((row, s))
        return float(means[row] + sds[row] * rng.standard_normal()), seconds[row]

    return train, calls


def test_the_loop_stops_when_every_pair_is_precise_and_keeps_pairs_aligned():
    means = {"a": 3.0, "b": 2.5, "c": 2.0, "d": 2.0}
    sds = {"a": 0.3, "b": 0.3, "c": 0.05, "d": 0.05}
    cost = {"a": 10.0, "b": 10.0, "c": 10.0, "d": 10.0}
    train, calls = _trainer(means, sds, cost)
    values = {r: {s: train(r, s)[0] for s in range(3)} for r in means}
    calls.clear()
    pairs = [PairState("a", "b", delta=0.4), PairState("c", "d", delta=0.4)]
    assert precise(pairs[1], values) and not precise(pairs[0], values)
    log = decide(pairs, values, train, cost.get, lambda r: [], max_seeds=50, budget_seconds=1e6)
    assert log.stopped.startswith("every pair precise")
    assert all(precise(p, values) for p in pairs)
    # Only the noisy pair got seeds, both rows each time: still aligned.
    assert {r for r, _ in calls} == {"a", "b"} and len(values["a"]) == len(values["b"]) > 3
    # It stopped at the first seed count whose half-width is below δ/2 (not one seed later).
    fewer = {r: dict(list(v.items())[:-1]) for r, v in values.items()}
    assert half_width(pairs[0], fewer) >= 0.2 > half_width(pairs[0], values)


def test_the_cheaper_information_goes_first_and_stage1_rows_come_along():
    values = {"s1": {0: 2.0, 1: 2.4}, "sg": {0: 3.0, 1: 3.5}, "x": {0: 1.0, 1: 1.6},
              "y": {0: 1.2, 1: 0.9}}
    pairs = [PairState("sg", "s1", delta=0.1, paired=True), PairState("x", "y", delta=0.1)]
    cost = {"s1": 100.0, "sg": 300.0, "x": 10.0, "y": 10.0}
    rows, _ = next_step(pairs, values, cost.get, lambda r: ["s1"] if r == "sg" else [], 10)
    assert rows == ["x", "y"]  # as uncertain, 20 times cheaper
    cost["x"] = cost["y"] = 1000.0
    rows, _ = next_step(pairs, values, cost.get, lambda r: ["s1"] if r == "sg" else [], 10)
    assert rows == ["s1", "sg"]


def test_max_seeds_and_the_budget_end_the_loop():
    means, sds = {"a": 1.0, "b": 1.0}, {"a": 1.0, "b": 1.0}
    cost = {"a": 5.0, "b": 5.0}
    train, calls = _trainer(means, sds, cost)
    values = {r: {s: train(r, s)[0] for s in range(2)} for r in means}
    pair = [PairState("a", "b", delta=0.01)]  # never precise at these SDs
    log = decide(pair, values, train, cost.get, lambda r: [], max_seeds=4, budget_seconds=1e6)
    assert "have 4 seeds" in log.stopped and len(values["a"]) == len(values["b"]) == 4
    values = {r: dict(list(v.items())[:2]) for r, v in values.items()}
    log = decide(pair, values, train, cost.get, lambda r: [], max_seeds=100, budget_seconds=35)
    assert log.stopped.startswith("budget") and log.seconds <= 35 and len(values["a"]) == 5
