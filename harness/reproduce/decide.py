"""Seeds where they decide something (``reproduce --decide``).

After the scale's first seeds, seeds are added to the runs of the claims' pairs whose difference
is not yet known precisely enough, the most informative per CPU-second first, until every pair
is precise, its runs reach ``max_seeds``, or the time budget runs out.

The stopping rule looks at precision, never at p: a pair is done when the half-width of its
difference's interval (at the pair's level) is below δ/2, so that the interval can lie inside
±δ or clear zero by δ/2; which verdict follows is read only at the end. (Stopping when p first
dips below α would inflate the error rate; stopping on precision does not.)

One step adds the next seed to a set of rows: the two rows of one pair (so that a paired design
stays paired), with the Stage-I rows their Stage-II runs are built on when those lack the seed.
Its value is the total shrinkage of the half-widths of every imprecise pair that gains a seed
from it, per second of training and evaluation (measured on the rows' earlier seeds), computed
from the current SDs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from scipy import stats as sps


@dataclass
class PairState:
    better: str
    worse: str
    delta: float
    paired: bool = False
    level: float = 0.05


@dataclass
class DecideLog:
    steps: list[dict] = field(default_factory=list)
    stopped: str = ""
    seconds: float = 0.0


def _half_width(sd_b: float, sd_w: float, n_b: int, n_w: int, paired: bool, sd_diff: float,
                level: float) -> float:
    if min(n_b, n_w) < 2:
        return math.inf
    if paired:
        n = min(n_b, n_w)
        return float(sps.t.ppf(1 - level / 2, n - 1) * sd_diff / math.sqrt(n))
    se2 = sd_b ** 2 / n_b + sd_w ** 2 / n_w
    if se2 == 0:
        return 0.0
    df = se2 ** 2 / ((sd_b ** 2 / n_b) ** 2 / max(n_b - 1, 1) + (sd_w ** 2 / n_w) ** 2 / max(n_w - 1, 1))
    return float(sps.t.ppf(1 - level / 2, df) * math.sqrt(se2))


def _sd(values: dict[int, float]) -> float:
    v = list(values.values())
    if len(v) < 2:
        return math.nan
    m = sum(v) / len(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def half_width(pair: PairState, values: dict[str, dict[int, float]],
               extra: dict[str, int] | None = None) -> float:
    """The pair's interval half-width now, or with ``extra`` more seeds on some rows (same SDs)."""
    extra = extra or {}
    b, w = values.get(pair.better, {}), values.get(pair.worse, {})
    n_b, n_w = len(b) + extra.get(pair.better, 0), len(w) + extra.get(pair.worse, 0)
    diffs = {s: b[s] - w[s] for s in set(b) & set(w)}
    return _half_width(_sd(b), _sd(w), n_b, n_w, pair.paired, _sd(diffs), pair.level)


def precise(pair: PairState, values: dict[str, dict[int, float]]) -> bool:
    return half_width(pair, values) < pair.delta / 2


def next_step(pairs: list[PairState], values: dict[str, dict[int, float]],
              cost: Callable[[str], float], needs: Callable[[str], list[str]],
              max_seeds: int) -> tuple[list[str], float] | None:
    """The rows to give their next seed (and the step's value), or None when no imprecise pair
    can get one. ``cost(row)``: seconds a seed of ``row`` takes; ``needs(row)``: the rows it is
    built on (a Stage-II's Stage-I)."""
    best = None
    open_pairs = [p for p in pairs if not precise(p, values)]
    for pair in open_pairs:
        rows = [pair.better, pair.worse]
        if any(len(values.get(r, {})) >= max_seeds for r in rows):
            continue
        target = max(len(values.get(r, {})) for r in rows) + 1  # seed count both rows reach
        add = {r: target - len(values.get(r, {})) for r in rows}
        closure = dict(add)
        for r in rows:
            for dep in needs(r):
                if len(values.get(dep, {})) < target:
                    closure[dep] = max(closure.get(dep, 0), target - len(values.get(dep, {})))
        seconds = sum(cost(r) * k for r, k in closure.items())
        gain = sum(max(0.0, half_width(p, values) - half_width(p, values, closure))
                   for p in open_pairs if p.better in closure or p.worse in closure)
        gain = gain if math.isfinite(gain) else 1e9  # a pair with < 2 seeds: any seed helps most
        value = gain / max(seconds, 1e-9)
        if best is None or value > best[1]:
            best = (sorted(closure), value, closure)
    if best is None:
        return None
    rows = [r for r, k in best[2].items() for _ in range(k)]
    return sorted(rows), best[1]


def decide(pairs: list[PairState], values: dict[str, dict[int, float]],
           train: Callable[[str, int], tuple[float, float]], cost: Callable[[str], float],
           needs: Callable[[str], list[str]], max_seeds: int, budget_seconds: float) -> DecideLog:
    """Add seeds until every pair is precise, no pair can grow, or ``budget_seconds`` are spent.
    ``train(row, seed)`` trains and evaluates one run, returning (metric, seconds); ``values``
    (row -> {seed: metric}) is updated in place."""
    log = DecideLog()
    while True:
        if all(precise(p, values) for p in pairs):
            log.stopped = "every pair precise (half-width below δ/2)"
            return log
        step = next_step(pairs, values, cost, needs, max_seeds)
        if step is None:
            log.stopped = f"the imprecise pairs' runs have {max_seeds} seeds"
            return log
        rows, value = step
        planned = sum(cost(r) for r in rows)
        if log.seconds + planned > budget_seconds:
            log.stopped = (f"budget: the next step needs about {planned:.0f} s, "
                           f"{budget_seconds - log.seconds:.0f} s left")
            return log
        # Stage-I rows first: the Stage-II runs of the same seed are built on them.
        deps_first = sorted(rows, key=lambda r: 0 if any(r in needs(o) for o in rows) else 1)
        for row in deps_first:
            seed = max(values.get(row, {}), default=-1) + 1
            metric, seconds = train(row, seed)
            values.setdefault(row, {})[seed] = metric
            log.seconds += seconds
            log.steps.append({"row": row, "seed": seed, "metric": metric, "seconds": seconds,
                              "value": value})
