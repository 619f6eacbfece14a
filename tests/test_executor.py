"""``--executor local|slurm``: the same bits as the serial run, Stage-II after its Stage-I."""

import json
import os
import shutil
import subprocess
import time

import pytest
import torch
from conftest import required

from harness.checkpoints import load_checkpoint

pytestmark = pytest.mark.integration

# A Stage-II run and the Stage-I it needs, and a GAN-INT-CLS run: three runs, one dependency.
ONLY = ["--only", "cub-sg-256", "--only", "cub-gan-int-cls"]
RUNS = ("cub-s1-64-s0", "cub-sg-256-s0", "cub-gan-int-cls-s0")


def _weights(run):
    state = load_checkpoint(run / "checkpoints" / "final.pt")["model"]
    return {f"{n}.{k}": v for n in ("netG", "netD") for k, v in state[n].items()}


def _base(smoke_data):
    return ["experiment", "run", "table1", "--scale", "smoke", *ONLY, "--data", f"cub={smoke_data}"]


@pytest.fixture(scope="module")
def serial(smoke_data, tmp_path_factory):
    """The three runs trained serially in this process with one thread (what each worker gets)."""
    from harness.cli.main import main

    runs = tmp_path_factory.mktemp("serial")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*_base(smoke_data), "--runs-dir", str(runs)]) == 0
    finally:
        torch.set_num_threads(threads)
    return runs


def _assert_same_bits(serial, other):
    for run in RUNS:
        a, b = _weights(serial / run), _weights(other / run)
        assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == [], run


def test_two_cpu_workers_equal_the_serial_run(serial, smoke_data, tmp_path, monkeypatch, capsys):
    from harness.cli.main import main

    capsys.readouterr()
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    base = _base(smoke_data)
    assert main([*base, "--runs-dir", str(tmp_path / "pool"), "--executor", "local", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert out.index("trained cub-s1-64-s0") < out.index("train  cub-sg-256-s0")  # Stage-II waited
    _assert_same_bits(serial, tmp_path / "pool")
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


def test_submitit_local_cluster_equals_the_serial_run(serial, smoke_data, tmp_path, capsys):
    """The SLURM executor's code path (submitit), its jobs run by submitit's local executor."""
    from harness.cli.main import main

    capsys.readouterr()
    runs = tmp_path / "jobs"
    args = [*_base(smoke_data), "--runs-dir", str(runs), "--executor", "slurm",
            "--slurm-cluster", "local", "--slurm-cpus", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.index("trained cub-s1-64-s0") < out.index("train  cub-sg-256-s0")  # local: no dependencies
    _assert_same_bits(serial, runs)
    assert len(list((runs / ".slurm").glob("*/*_result.pkl"))) == 3  # one submitit job per run


def test_a_serial_executor_refuses_pool_and_cluster_options(smoke_data, tmp_path, capsys):
    from harness.cli.main import main

    base = [*_base(smoke_data), "--runs-dir", str(tmp_path)]
    assert main([*base, "--workers", "2"]) == 2
    assert "--devices and --workers go with --executor local" in capsys.readouterr().err
    assert main([*base, "--executor", "local", "--slurm-partition", "gpu"]) == 2
    assert "--slurm-partition go with --executor slurm" in capsys.readouterr().err
    assert main([*base, "--executor", "slurm", "--slurm-option", "constraint"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


# ------------------------------------------------------------------------- a real SLURM
SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel")


def _slurm_missing() -> str | None:
    missing = [b for b in SLURM_BINARIES if shutil.which(b) is None]
    if missing:
        return ("no SLURM here: " + ", ".join(missing) + " not found (Debian: apt-get install "
                "slurm-wlm munge; the test configures and starts a one-node cluster itself)")
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd for the test needs root"
    return None


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A one-node SLURM cluster of this machine (munged, slurmctld, slurmd on private ports, its
    own key, state and config), stopped at the end."""
    why = _slurm_missing()
    if why and required("STACKGAN_BENCH_REQUIRE_SLURM"):
        pytest.fail(f"{why}; STACKGAN_BENCH_REQUIRE_SLURM is set (CI installs SLURM)")
    if why:
        pytest.skip(why)
    d = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "log", "munge"):
        (d / sub).mkdir()
    (d / "munge").chmod(0o700)
    key = d / "munge" / "munge.key"
    key.write_bytes(os.urandom(128))
    key.chmod(0o600)
    socket = d / "munge" / "munge.socket"
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
    conf = d / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=stackgan-bench-test", f"SlurmctldHost={host}", "SlurmUser=root",
        "SlurmdUser=root", "SlurmctldPort=16817", "SlurmdPort=16818", "AuthType=auth/munge",
        f"AuthInfo=socket={socket}", "CredType=cred/munge", f"StateSaveLocation={d / 'state'}",
        f"SlurmdSpoolDir={d / 'spool'}", f"SlurmctldPidFile={d / 'slurmctld.pid'}",
        f"SlurmdPidFile={d / 'slurmd.pid'}", f"SlurmctldLogFile={d / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={d / 'log' / 'slurmd.log'}", "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "MpiDefault=none",
        "ReturnToService=2", "SchedulerParameters=defer_batch",
        f"NodeName={host} CPUs={os.cpu_count() or 1} RealMemory=2000 State=UNKNOWN",
        "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""]))
    env = dict(os.environ, SLURM_CONF=str(conf))
    started = []
    try:
        for cmd in (["munged", "--force", f"--key-file={key}", f"--socket={socket}",
                     f"--pid-file={d / 'munge' / 'munged.pid'}", f"--log-file={d / 'munge' / 'log'}",
                     f"--seed-file={d / 'munge' / 'seed'}"],
                    ["slurmctld", "-f", str(conf)], ["slurmd", "-f", str(conf)]):
            subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=60)
            started.append(cmd[0])
        deadline = time.time() + 60
        while time.time() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True,
                                   text=True).stdout.strip()
            if state == "idle":
                break
            time.sleep(1)
        else:
            pytest.fail(f"the test cluster did not come up (sinfo: {state!r}); logs in {d / 'log'}")
        yield env
    finally:
        if "slurmctld" in started:  # no job steps left behind the daemons
            subprocess.run(["scancel", "--user", "root"], env=env, check=False)
            deadline = time.time() + 30
            while time.time() < deadline and subprocess.run(
                    ["squeue", "-h"], env=env, capture_output=True, text=True).stdout.strip():
                time.sleep(1)
        for name, pid in (("slurmd", d / "slurmd.pid"), ("slurmctld", d / "slurmctld.pid"),
                          ("munged", d / "munge" / "munged.pid")):
            if name in started and pid.exists():
                subprocess.run(["kill", pid.read_text().strip()], check=False)


def test_a_real_slurm_cluster_runs_the_plan_with_dependencies(serial, smoke_data, slurm_cluster,
                                                              tmp_path, monkeypatch, capsys):
    from harness.cli.main import main

    for k, v in slurm_cluster.items():
        monkeypatch.setenv(k, v)
    capsys.readouterr()
    runs = tmp_path / "cluster"
    args = [*_base(smoke_data), "--runs-dir", str(runs), "--executor", "slurm", "--slurm-cpus", "1",
            "--slurm-time", "10"]
    assert main(args) == 0
    out = capsys.readouterr().out
    # The whole plan is queued at once: the Stage-II job is submitted before its Stage-I finished,
    # held by its dependency.
    assert out.index("train  cub-sg-256-s0 as slurm job") < out.index("trained cub-s1-64-s0")
    _assert_same_bits(serial, runs)
    assert (runs / ".slurm" / "jobs.json").exists()
    assert main([*_base(smoke_data), "--runs-dir", str(runs)]) == 0
    assert "3 done" in capsys.readouterr().out

    # A Stage-I job that fails: its Stage-II job, queued behind it, is cancelled and reported.
    bad = tmp_path / "failing"
    args = ["experiment", "run", "table1", "--scale", "smoke", "--only", "cub-sg-256", "--data",
            f"cub={smoke_data}", "--runs-dir", str(bad), "--executor", "slurm", "--slurm-cpus", "1",
            "--set", "data.root=/nonexistent/birds"]
    assert main(args) in (1, 2)
    out, err = capsys.readouterr()
    if "failed cub-s1-64-s0" in out:  # refused at planning time otherwise (exit 2), also fine
        assert "skip   cub-sg-256-s0: its Stage-I run did not finish" in out
        queued = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True).stdout
        assert "cub-sg-256-s0" not in queued  # not left waiting on a dependency never met


def test_reproduce_trains_on_the_pool_and_a_serial_rerun_finds_every_step_done(tmp_path, monkeypatch):
    from harness.experiments.executors import LocalExecutor
    from harness.experiments.local_executor import cpu_slots
    from harness.reproduce.pipeline import Pipeline, ReproduceOptions

    monkeypatch.chdir(tmp_path)  # the smoke preset's dataset and runs land here

    def pipeline(executor):
        pipe = Pipeline(ReproduceOptions(preset="smoke", progress=False, report=True, human=True,
                                         only_runs=["cub-sg-256"], executor=executor))
        pipe.log.say = lambda text: None
        pipe.run_and_plan()
        return pipe.log

    first = pipeline(LocalExecutor(cpu_slots(2)))
    assert {"train:cub-s1-64-s0", "train:cub-sg-256-s0", "eval:cub-sg-256-s0"} <= set(first.ran)
    assert (tmp_path / "runs" / "smoke" / "cub-sg-256-s0" / "eval.json").exists()
    again = pipeline(None)
    assert again.ran == [] and "train:cub-sg-256-s0" in again.skipped
    # One rated model of Table 1 (as at the quick scale): no study, and the report says why.
    assert not (tmp_path / "runs" / "smoke" / "human-study").exists()
    table1 = (tmp_path / "runs" / "smoke" / "reports" / "table1" / "table.md").read_text()
    assert "No human study at this scale: it needs two of the table's rated models" in table1


def test_one_slurm_job_of_two_tasks_is_one_data_parallel_run(smoke_data, slurm_cluster, tmp_path,
                                                             monkeypatch, capsys):
    """--slurm-tasks-per-node 2: one job whose two tasks are the ranks of one run (rendezvous from
    SLURM's variables), which computes what one process accumulating two micro-batches computes
    (tests/test_distributed.py shows the same for torchrun)."""
    from harness.cli.main import main

    for k, v in slurm_cluster.items():
        monkeypatch.setenv(k, v)
    base = ["experiment", "run", "table2", "--scale", "smoke", "--only", "cub-s1-64", "--data",
            f"cub={smoke_data}"]
    assert main([*base, "--runs-dir", str(tmp_path / "ddp"), "--executor", "slurm",
                 "--slurm-tasks-per-node", "2", "--slurm-cpus", "1", "--slurm-time", "10"]) == 0
    assert "trained cub-s1-64-s0" in capsys.readouterr().out
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main([*base, "--runs-dir", str(tmp_path / "accum"),
                     "--set", "optim.grad_accumulation=2"]) == 0
    finally:
        torch.set_num_threads(threads)

    def params(root):
        w = _weights(root / "cub-s1-64-s0")
        return {k: v for k, v in w.items() if "running_" not in k and "num_batches" not in k}

    a, b = params(tmp_path / "ddp"), params(tmp_path / "accum")
    assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == []


def test_a_rerun_attaches_to_jobs_still_queued_instead_of_submitting_twice(smoke_data, slurm_cluster,
                                                                          tmp_path, monkeypatch):
    from harness.config.load import load_config
    from harness.experiments.jobs import Job, SlurmOptions
    from harness.experiments.slurm_executor import queue_state, run_on_slurm

    for k, v in slurm_cluster.items():
        monkeypatch.setenv(k, v)
    cfg = load_config("smoke_stage1", [f"data.root={smoke_data}", f"runs_dir={tmp_path}",
                                       "data.check=false", "name=held"])
    opts = SlurmOptions(cpus_per_task=1, time_min=5, extra={"begin": "now+600"})  # stays PENDING
    lines = []

    def stop_after(word):
        def report(text):
            lines.append(text)
            if text.startswith(word):
                raise KeyboardInterrupt
        return report

    with pytest.raises(KeyboardInterrupt):
        run_on_slurm([Job("held", cfg)], opts, tmp_path / ".slurm", stop_after("train"))
    job_id = json.loads((tmp_path / ".slurm" / "jobs.json").read_text())[str((tmp_path / "held").resolve())]
    assert queue_state(job_id) == "PENDING"
    with pytest.raises(KeyboardInterrupt):
        run_on_slurm([Job("held", cfg)], opts, tmp_path / ".slurm", stop_after("attach"))
    assert f"attach held to slurm job {job_id} (still PENDING)" in lines
    assert lines[-1].startswith(f"stopped waiting; jobs {job_id} stay queued on the cluster")
    assert len([ln for ln in lines if ln.startswith("train")]) == 1  # submitted once
    subprocess.run(["scancel", job_id], check=True)


def test_sigterm_to_the_pool_checkpoints_its_workers_and_a_rerun_resumes(smoke_data, tmp_path):
    """A scheduler's SIGTERM to `experiment run --executor local`: the workers checkpoint and
    exit with it (none left training), and the same command resumes the runs."""
    import signal
    import sys

    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "harness.cli.main", "experiment", "run", "table1", "--scale", "smoke",
           "--only", "cub-gan-int-cls", "--data", f"cub={smoke_data}", "--runs-dir", str(runs),
           "--executor", "local", "--workers", "1", "--set", "train.max_steps=100000",
           "--set", "train.checkpoint_every=100000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = runs / "cub-gan-int-cls-s0" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    orphans = subprocess.run(["pgrep", "-f", "stackgan-bench-pool-.*/cub-gan-int-cls-s0.yaml"],
                             capture_output=True).stdout
    assert orphans == b""  # no worker left training
    assert list((runs / "cub-gan-int-cls-s0" / "checkpoints").glob("step-*.pt"))  # checkpointed
