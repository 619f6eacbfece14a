"""A wheel (``pip install .``, not ``-e``) carries everything the commands read at run time: the
config presets, the experiment definitions, the gate's baseline and the rating form's template."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_the_wheel_ships_every_file_the_commands_read(tmp_path):
    import importlib.util

    # Without setuptools in this environment pip builds in isolation (fetching it from PyPI).
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("stackgan_bench-*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    needed = [p.relative_to(ROOT).as_posix() for folder in
              ("harness/config/presets", "harness/experiments/definitions", "harness/human/templates")
              for p in sorted((ROOT / folder).iterdir())]
    needed.append("harness/reproduce/gate_baseline.json")
    missing = [p for p in needed if p not in shipped]
    assert len(needed) > 30 and not missing, missing


def test_presets_and_definitions_are_found_inside_the_package():
    """Looked up beside the code that reads them, not from the repository root."""
    from harness.config.load import CONFIG_DIR
    from harness.experiments.spec import EXPERIMENT_DIR
    from harness.reproduce.gate import BASELINE

    package = ROOT / "harness"
    for path in (CONFIG_DIR, EXPERIMENT_DIR, BASELINE):
        assert path.exists() and package in path.parents, path
