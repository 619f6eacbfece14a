import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--bench-set", action="append", default=[], metavar="KEY=VALUE",
                     help="a config override for our step in benchmarks/test_bench_reference.py "
                          "(repeatable), e.g. train.channels_last=false")
    parser.addoption("--bench-rounds", type=int, default=None, metavar="N",
                     help="rounds of the between-processes comparison in "
                          "benchmarks/test_bench_reference.py (default: 5 for Stage-I, 3 for "
                          "Stage-II); more narrow its interval")


@pytest.fixture
def bench_overrides(request) -> list[str]:
    return list(request.config.getoption("--bench-set"))


@pytest.fixture
def bench_rounds(request) -> int | None:
    rounds = request.config.getoption("--bench-rounds")
    if rounds is not None and rounds < 2:
        # One round has no interval; 0 would silently fall back to the default.
        raise pytest.UsageError(f"--bench-rounds {rounds}: give at least 2 rounds")
    return rounds
