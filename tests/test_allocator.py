"""``train.retain_freed_memory`` (harness.core.allocator): freed large blocks stay in the process,
so a step's activations do not page-fault in again every step. Measured in fresh processes,
since the setting is process-wide and cannot be undone."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")

# A step in miniature: allocates a few large activations, fills them and frees them all, eight
# times. The minor page faults of the last round are what a training step pays every step once
# the process is warm (the retained heap settled within 3-6 rounds in 6 tries). One block freed
# and allocated again alone is no test: torch asks glibc for 64-byte-aligned memory, which needs
# a few bytes more than the block it freed.
PROBE = """
import json, resource, sys, torch
from harness.core.allocator import retain_freed_memory
applied = retain_freed_memory() if sys.argv[1] == "retain" else None
for _ in range(8):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    activations = [torch.ones(mib << 18) for mib in (64, 8, 32, 64)]
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del activations
print(json.dumps({"applied": applied, "faults": faults}))
"""


def _probe(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_retained_memory_is_reused_without_page_faults():
    default, retained = _probe("default"), _probe("retain")
    pages = (168 << 20) // 4096
    assert retained["applied"] is True
    # glibc's default maps every block afresh: every page faults in again.
    assert default["faults"] > pages // 2
    assert retained["faults"] < pages // 50


def test_retaining_is_a_resume_safe_speed_option():
    from harness.config.load import config_differences, load_config

    old = load_config("smoke_stage1")
    new = load_config("smoke_stage1", ["train.retain_freed_memory=false"])
    assert old.train.retain_freed_memory is True
    assert config_differences(old, new) == []
    assert config_differences(old, new, ignore_safe=False) == [
        "train.retain_freed_memory: True -> False"]
