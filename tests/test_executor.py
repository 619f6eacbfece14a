"""``experiment run --executor local``: the same bits as the serial run."""

import pytest
import torch

from harness.runner.checkpoint import load_checkpoint

pytestmark = pytest.mark.integration

# A Stage-II run and the Stage-I it needs, and a GAN-INT-CLS run: three runs, one dependency.
ONLY = ["--only", "cub-sg-256", "--only", "cub-gan-int-cls"]
RUNS = ("cub-s1-64-s0", "cub-sg-256-s0", "cub-gan-int-cls-s0")


def _weights(run):
    state = load_checkpoint(run / "checkpoints" / "final.pt")["model"]
    return {f"{n}.{k}": v for n in ("netG", "netD") for k, v in state[n].items()}


def test_two_cpu_workers_equal_the_serial_run(smoke_data, tmp_path, monkeypatch, capsys):
    from harness.cli.main import main

    base = ["experiment", "run", "table1", "--scale", "smoke", *ONLY, "--data", f"cub={smoke_data}"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers get one thread each: the serial run too
    try:
        assert main([*base, "--runs-dir", str(tmp_path / "serial")]) == 0
    finally:
        torch.set_num_threads(threads)
    capsys.readouterr()
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert main([*base, "--runs-dir", str(tmp_path / "pool"), "--executor", "local", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert out.index("trained cub-s1-64-s0") < out.index("train  cub-sg-256-s0")  # Stage-II waited
    for run in RUNS:
        a, b = _weights(tmp_path / "serial" / run), _weights(tmp_path / "pool" / run)
        assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == [], run
    # Done runs are recognised by a later serial run: the configs were not touched.
    assert main([*base, "--runs-dir", str(tmp_path / "pool")]) == 0
    assert "3 done" in capsys.readouterr().out


def test_a_failed_stage1_skips_its_stage2(smoke_data, tmp_path, monkeypatch, capsys):
    from harness.cli.main import main
    from harness.experiments import local_executor

    monkeypatch.setattr(local_executor.sys, "executable", "/bin/false")  # every worker fails
    args = ["experiment", "run", "table1", "--scale", "smoke", "--only", "cub-sg-256",
            "--data", f"cub={smoke_data}", "--runs-dir", str(tmp_path / "runs"),
            "--executor", "local", "--workers", "2"]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "failed cub-s1-64-s0 on cpu" in out and "exit 1" in out
    assert "skip   cub-sg-256-s0: its Stage-I run did not finish" in out
