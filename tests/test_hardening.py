"""Two processes on one folder, torn and partial writes, a full disk (issue 15)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import smoke_config

from harness.checkpoints import CheckpointStore, load_checkpoint
from harness.errors import UserError
from harness.locks import FolderInUse, exclusive
from harness.runner.trainer import train

REPO = Path(__file__).resolve().parents[1]


def _hold_lock(folder: Path, *, beside: str | None = None) -> subprocess.Popen:
    """Another process holding ``folder``'s lock until killed."""
    path = f", path={str(folder.parent / beside)!r}" if beside else ""
    code = textwrap.dedent(f"""
        import sys, time
        from harness.locks import exclusive
        with exclusive({str(folder)!r}, "trains"{path}):
            print("held", flush=True)
            time.sleep(300)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _steps(run: Path) -> list[int]:
    return [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]


def test_second_process_on_a_run_folder_is_refused_with_the_holder(smoke_data, tmp_path):
    run = tmp_path / "busy"
    holder = _hold_lock(run)
    try:
        cfg = smoke_config(smoke_data, tmp_path, "train.max_steps=2", "name=busy")
        with pytest.raises(FolderInUse, match=rf"busy: in use by PID {holder.pid} \(.*; since"):
            train(cfg, progress=False)
        assert not (run / "checkpoints").exists()  # nothing written by the refused process
        from harness.eval.run_eval import evaluate_run

        with pytest.raises(FolderInUse, match=f"PID {holder.pid}"):
            evaluate_run(run, None)
        # the CLI says it in one line, exit status 2, no traceback
        cli = subprocess.run([sys.executable, "-m", "harness.cli.main", "train", "--config",
                              "smoke_stage1", f"data.root={smoke_data}", f"runs_dir={tmp_path}",
                              "tracking.enabled=false", "name=busy", "train.max_steps=2"],
                             cwd=REPO, capture_output=True, text=True)
        assert cli.returncode == 2 and f"in use by PID {holder.pid}" in cli.stderr
        assert "Traceback" not in cli.stderr
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the lock with its killed holder: the folder is usable at once
    assert train(cfg, progress=False).steps == 2


def test_lock_is_reentrant_within_one_process(tmp_path):
    with exclusive(tmp_path, "reproduces"), exclusive(tmp_path, "trains"):
        pass
    with exclusive(tmp_path):  # released after the outer block
        pass


def test_sampling_into_a_run_takes_its_lock(smoke_data, tmp_path):
    from harness.runner.sample import sample_run

    train(smoke_config(smoke_data, tmp_path, "train.max_steps=2", "name=s"), progress=False)
    holder = _hold_lock(tmp_path / "s")
    try:
        with pytest.raises(FolderInUse, match=f"PID {holder.pid}"):
            sample_run(tmp_path / "s", tmp_path / "s" / "samples" / "x", split="test", limit=2,
                       progress=False)
        # outside the run, another process's training does not block sampling
        sample_run(tmp_path / "s", tmp_path / "elsewhere", split="test", limit=2, progress=False)
    finally:
        holder.kill()
        holder.wait()


def test_human_make_output_is_locked(smoke_data, tmp_path):
    from harness.human.study import StudyOptions, make_study

    for name in ("h", "g"):
        train(smoke_config(smoke_data, tmp_path, "train.max_steps=2", f"name={name}"),
              progress=False)
    out = tmp_path / "study"
    holder = _hold_lock(out, beside=".study.lock")
    try:
        opts = StudyOptions(sources=[str(tmp_path / "h"), str(tmp_path / "g")], out=str(out),
                            captions=2, per_model=1, raters=2, progress=False)
        with pytest.raises(FolderInUse, match=f"PID {holder.pid}"):
            make_study(opts)
    finally:
        holder.kill()
        holder.wait()
    # a killed maker's half-written folder is cleared by the next one
    (tmp_path / ".study.abc123.partial").mkdir()
    make_study(opts)
    assert not (tmp_path / ".study.abc123.partial").exists() and (out / "share").is_dir()


def test_resume_cuts_a_torn_metrics_log_back_to_the_checkpoint(smoke_data, tmp_path):
    args = ("train.checkpoint_every=2", "train.log_every=1", "name=torn")
    train(smoke_config(smoke_data, tmp_path, "train.max_steps=4", *args), progress=False)
    log = tmp_path / "torn" / "metrics.jsonl"
    with open(log, "a") as f:  # a killed run logged steps 5, 6 and tore the next line
        f.write(json.dumps({"step": 5, "loss_d": 1.0}) + "\n")
        f.write(json.dumps({"step": 6, "loss_d": 1.0}) + "\n")
        f.write('{"step": 7, "loss_d": 0.')
    for p in (tmp_path / "torn" / "checkpoints").glob("step-00000000[56].pt"):
        p.unlink()
    train(smoke_config(smoke_data, tmp_path, "train.max_steps=6", *args), resume=True,
          progress=False)
    assert _steps(tmp_path / "torn") == [1, 2, 3, 4, 5, 6]
    assert all(r["loss_d"] != 1.0 for r in map(json.loads, log.read_text().splitlines()))


def test_starting_over_without_a_checkpoint_drops_the_old_log(smoke_data, tmp_path):
    run = tmp_path / "fresh"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s}) + "\n" for s in (1, 2, 3)))
    train(smoke_config(smoke_data, tmp_path, "train.max_steps=3", "train.log_every=1",
                       "name=fresh"), resume=True, progress=False)
    assert _steps(run) == [1, 2, 3]


def test_damaged_latest_checkpoint_falls_back_to_the_previous(smoke_data, tmp_path, capsys):
    args = ("train.checkpoint_every=2", "train.keep_last=3")
    train(smoke_config(smoke_data, tmp_path, "train.max_steps=6", *args, "name=straight"),
          progress=False)
    train(smoke_config(smoke_data, tmp_path, "train.max_steps=4", *args, "name=cut"),
          progress=False)
    ckpts = tmp_path / "cut" / "checkpoints"
    latest = ckpts / "step-000000004.pt"
    latest.write_bytes(latest.read_bytes()[:1000])  # a copy cut short
    (ckpts / ".step-000000006.pt.x1y2.tmp").write_bytes(b"half")  # a killed writer's leftover
    (tmp_path / "cut" / ".samples.q.partial").mkdir()
    train(smoke_config(smoke_data, tmp_path, "train.max_steps=6", *args, "name=cut"),
          resume=True, progress=False)
    err = capsys.readouterr().err
    assert "step-000000004.pt" in err and "resuming from the checkpoint before it" in err
    assert (ckpts / "step-000000004.pt.damaged").exists()
    assert not list(ckpts.glob("*.tmp")) and not list((tmp_path / "cut").glob("*.partial"))
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "final.pt")["model"]["netG"]
    b = load_checkpoint(ckpts / "final.pt")["model"]["netG"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # redone from step 2, same bits


def test_no_readable_checkpoint_is_a_clear_error(smoke_data, tmp_path):
    train(smoke_config(smoke_data, tmp_path, "train.max_steps=2", "train.checkpoint_every=2",
                       "name=gone"), progress=False)
    for p in CheckpointStore(tmp_path / "gone" / "checkpoints").folder.glob("step-*.pt"):
        p.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="no readable checkpoint to resume from"):
        train(smoke_config(smoke_data, tmp_path, "train.max_steps=4", "train.checkpoint_every=2",
                           "name=gone"), resume=True, progress=False)


def test_a_write_past_the_file_size_limit_names_the_file(tmp_path):
    # A real EFBIG from the kernel (as a quota or a full disk gives ENOSPC), in a child
    # process whose file-size limit is 64 KiB.
    target = tmp_path / "checkpoints" / "step-000000001.pt"
    code = textwrap.dedent(f"""
        import resource, signal, sys, torch
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
        from harness.errors import UserError
        from harness.checkpoints import save_checkpoint
        try:
            save_checkpoint({{"model": {{"w": torch.zeros(100_000)}}}}, {str(target)!r})
        except UserError as exc:
            print(exc)
            sys.exit(3)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 3, out.stderr
    assert f"{target}: cannot write (File too large)" in out.stdout
    assert os.listdir(target.parent) == []  # no temporary left behind
