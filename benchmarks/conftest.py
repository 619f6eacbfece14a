import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

import pytest  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--bench-set", action="append", default=[], metavar="KEY=VALUE",
                     help="a config override for our step in benchmarks/test_bench_reference.py "
                          "(repeatable), e.g. train.channels_last=false")


@pytest.fixture
def bench_overrides(request) -> list[str]:
    return list(request.config.getoption("--bench-set"))
