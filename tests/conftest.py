import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for the py2pickle helper

from harness.data.synthbirds.build import SynthOptions, build_synthbirds  # noqa: E402

TINY = SynthOptions(classes=12, per_class=4, size=96, seed=3, test_classes=4)


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """A small synthbirds built once per session; copy it before changing it."""
    out = tmp_path_factory.mktemp("synth") / "birds"
    build_synthbirds(out, TINY, workers=1, progress=False)
    return out


@pytest.fixture
def synth_copy(tiny_synth, tmp_path) -> Path:
    dst = tmp_path / "birds"
    shutil.copytree(tiny_synth, dst)
    return dst
