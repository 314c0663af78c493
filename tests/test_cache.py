"""The lock that guards what is built once (the offline backbone, the generated datasets)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

HOLD_FORK_AND_DIE = """
import multiprocessing, os, signal, sys, time
from pathlib import Path
from vtrbench.cache import exclusive_lock
with exclusive_lock(Path(sys.argv[1])):
    worker = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
    worker.start()
    Path(sys.argv[2]).write_text(str(worker.pid))
    os.kill(os.getpid(), signal.SIGKILL)  # killed while it holds the lock, its worker alive
"""


def test_a_worker_forked_under_the_lock_does_not_keep_it_after_its_parent_dies(tmp_path: Path) -> None:
    """Found in review: the workers that render a dataset inherited the lock, so a killed generation left them
    holding it and every later use of that dataset waited for ever, saying nothing."""
    lock, pid_file = tmp_path / ".msrvtt.lock", tmp_path / "worker.pid"
    # no pipes: the worker would hold them open, and waiting for their end would wait for the worker
    subprocess.run([sys.executable, "-c", HOLD_FORK_AND_DIE, str(lock), str(pid_file)], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60, check=False)
    worker = int(pid_file.read_text())
    try:
        os.kill(worker, 0)  # still alive
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError while the worker held it
    finally:
        os.kill(worker, signal.SIGKILL)


def test_a_process_that_waits_for_the_lock_says_so(tmp_path: Path) -> None:
    from vtrbench.cache import exclusive_lock

    lock = tmp_path / ".vatex.lock"
    code = f"from pathlib import Path\nfrom vtrbench.cache import exclusive_lock\n" \
           f"with exclusive_lock(Path({str(lock)!r})):\n    print('got it')"
    with exclusive_lock(lock):
        waiting = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        first_line = waiting.stderr.readline()
    out, _ = waiting.communicate(timeout=60)
    assert first_line.startswith(f"waiting for {lock}: another process is building what it guards")
    assert out == "got it\n"
