"""One writer per folder: an exclusive ``fcntl.flock`` on ``<folder>/.lock``.

Training a run, sampling or evaluating into it, a ``reproduce``/``experiment run`` over a runs
root and ``human make`` into an output each hold the lock of the folder they write; a second
process is refused at once with the holder's PID and command, instead of interleaving logs and
overwriting checkpoints. The kernel drops the lock when its holder exits, however it exits, so a
killed process never leaves a folder locked. Within one process the lock is re-entrant (the
pipeline trains a run it already holds the root of; an evaluation samples into its own run).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from harness.errors import UserError

LOCK_NAME = ".lock"
_held: dict[str, list[int]] = {}  # lock file -> [fd, depth] held by this process


class FolderInUse(UserError):
    """Another process holds the folder's lock."""


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return "another process"
    return f"PID {info.get('pid', '?')} ({info.get('command', '?')}; since {info.get('since', '?')})"


def lock_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / LOCK_NAME


@contextlib.contextmanager
def exclusive(folder: str | os.PathLike, what: str = "writes",
              path: str | os.PathLike | None = None) -> Iterator[Path]:
    """Hold ``folder``'s lock (the file ``path``, default ``<folder>/.lock``) for the block;
    ``what`` says what this process does there, for the message another process gets."""
    folder = Path(folder)
    path = Path(path) if path is not None else lock_path(folder)
    key = str(path.resolve())
    if key in _held:
        _held[key][1] += 1
        try:
            yield folder
        finally:
            _held[key][1] -= 1
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # a read-only or foreign folder: say so, not a traceback
        raise UserError(f"{folder}: cannot write its lock file {path.name} "
                        f"({exc.strerror or exc}); the folder must be writable") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise FolderInUse(f"{folder}: in use by {_holder(path)}; one process {what} there at a "
                          "time (wait for it to finish, or stop it)") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv)[:300], "what": what,
                              "since": time.strftime("%Y-%m-%dT%H:%M:%S")}).encode(), 0)
    _held[key] = [fd, 1]
    try:
        yield folder
    finally:
        del _held[key]
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
