"""A wheel (``pip install .``, not ``-e``) carries everything the commands read at run time: the
config presets, the experiment definitions, the gate's baseline and the rating form's template;
installed without the source tree it runs ``reproduce`` from an empty folder."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.integration
def test_the_wheel_ships_every_file_the_commands_read_and_reproduces_from_an_empty_folder(tmp_path):
    import importlib.util

    # Without setuptools in this environment pip builds in isolation (fetching it from PyPI).
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    # Built from a copy of the tracked files: setuptools writes build/ and *.egg-info beside the
    # sources, which must not land in the checkout.
    source = tmp_path / "source"
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, check=True,
                             text=True).stdout.split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q",
                    "-w", str(tmp_path), str(source)], check=True, capture_output=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("stackgan_bench-*.whl"))
    shipped = set(zipfile.ZipFile(wheel).namelist())
    needed = [p.relative_to(ROOT).as_posix() for folder in
              ("harness/config/presets", "harness/experiments/definitions", "harness/human/templates")
              for p in sorted((ROOT / folder).iterdir())]
    needed.append("harness/reproduce/gate_baseline.json")
    missing = [p for p in needed if p not in shipped]
    assert len(needed) > 30 and not missing, missing

    # Installed into a folder of its own (the dependencies are this environment's), run from an
    # empty folder: the packages must come from the wheel, not from the source tree.
    target, empty = tmp_path / "site", tmp_path / "elsewhere"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                    str(wheel)], check=True, capture_output=True)
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "MLFLOW_TRACKING_URI": ""}
    where = subprocess.run([sys.executable, "-c", "import harness, stackgan, reports; "
                            "print(harness.__file__, stackgan.__file__, reports.__file__)"],
                           env=env, cwd=empty, capture_output=True, text=True, check=True).stdout
    assert all(Path(f).is_relative_to(target) for f in where.split()), where
    done = subprocess.run([str(target / "bin" / "stackgan-bench"), "reproduce", "--preset", "smoke",
                           "--no-progress"], env=env, cwd=empty, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (empty / "runs" / "smoke" / "reports" / "table1" / "index.html").exists()
    assert sorted(p.name for p in empty.iterdir()) == ["data", "runs"]  # every output stays here


def test_presets_and_definitions_are_found_inside_the_package():
    """Looked up beside the code that reads them, not from the repository root."""
    from harness.config.load import CONFIG_DIR
    from harness.experiments.spec import EXPERIMENT_DIR
    from harness.reproduce.gate import BASELINE

    package = ROOT / "harness"
    for path in (CONFIG_DIR, EXPERIMENT_DIR, BASELINE):
        assert path.exists() and package in path.parents, path
