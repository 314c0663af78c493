"""One process per run: `run.lock` in the run folder, held for as long as a process executes the run.

The lock is an advisory `flock` on that file, which the kernel drops when its holder ends however it ends
(kill -9 included): a lock left by a dead process is stale by construction and the next process takes it
over at once. The file holds the holder's pid, host and start time, for the message another process prints;
it is removed when the run ends. A second process does not wait: a leaderboard skips a locked run and says
so, `vtrbench run` stops with an error naming the holder. Where the file system cannot lock (flock
unsupported), the run goes on unlocked after a warning.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = "run.lock"


class RunLockedError(RuntimeError):
    """Another live process holds the run's lock."""

    def __init__(self, run_dir: Path, holder: dict):
        self.run_dir, self.holder = run_dir, holder
        super().__init__(f"{run_dir} is being run by {describe(holder)} ({run_dir / LOCK_FILE}); run again once "
                         f"it has ended: its finished result is then reused")


def describe(holder: dict) -> str:
    if not holder:
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("started", 0)))
    return f"process {holder.get('pid', '?')} on {holder.get('host', '?')} since {started}"


def _holder(path: Path) -> dict:
    try:
        holder = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _try_lock(path: Path) -> int | None:
    """An open descriptor of `path` holding its lock, or None when another process holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError:
            os.close(fd)
            raise
        try:  # the holder before us removes the file as it lets go: then lock the file that is there now
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def is_run_writer() -> bool:
    """Whether this process writes its run's files: any process but ranks 1.. of a torchrun group (RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the lock of `run_dir` (only process 0 of a torchrun group takes it); RunLockedError at once when
    another live process holds it."""
    if not is_run_writer():
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    try:
        fd = _try_lock(path)
    except OSError as err:
        if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        print(f"{path}: this file system cannot lock ({err.strerror}); running unlocked: make sure no other "
              f"process runs the same run", file=sys.stderr)
        yield
        return
    if fd is None:
        raise RunLockedError(run_dir, _holder(path))
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
                 .encode())
        yield
    finally:
        path.unlink(missing_ok=True)  # while still held, so that nobody locks a file about to vanish
        os.close(fd)


def locked_by_another(run_dir: Path) -> dict | None:
    """The holder of `run_dir`'s lock when a live process other than this one holds it, else None."""
    path = run_dir / LOCK_FILE
    if not path.is_file():
        return None
    try:
        fd = _try_lock(path)
    except OSError:
        return None
    if fd is None:
        return _holder(path)
    path.unlink(missing_ok=True)  # a stale lock of a process that died: nobody holds it
    os.close(fd)
    return None
