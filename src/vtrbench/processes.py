"""Worker processes: how many cores they may use, and ending with the process that started them.

A worker blocked on its task queue never learns that its parent was killed (SIGTERM from SLURM or `timeout`,
SIGKILL, the out-of-memory killer): it would go on running, or hold what its parent held, for ever. On Linux
`end_with_parent` asks the kernel to kill it when its parent ends (PR_SET_PDEATHSIG); elsewhere it does
nothing. The render workers of the offline datasets and the leaderboard's run workers start with it.

`usable_cores` counts the cores this process may run on: on a node shared through SLURM or a cgroup, the
allocation's, not the machine's (`os.cpu_count()`), so that workers x threads never exceed them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def end_with_parent(parent: int) -> None:
    """Called first in a worker: it is killed when the process `parent` ends (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent ended before the line above took effect
        os._exit(1)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a SLURM allocation's or a cgroup's cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1
