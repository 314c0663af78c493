"""Where the suite keeps what it builds once and reuses: the offline backbone's weights, the generated
datasets and the frame caches. `$VTRBENCH_CACHE`, else `~/.cache/vtrbench`."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path


def cache_dir() -> Path:
    configured = os.environ.get("VTRBENCH_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "vtrbench"


# The descriptors of the locks this process holds. A child forked while one is held (the workers that render a
# dataset's videos) drops its copy at once: flock belongs to the open file, so a copy left in a worker would
# hold the lock for as long as that worker lives, past the death of the process that took it.
_HELD: set[int] = set()


def _drop_held_locks() -> None:
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_held_locks)


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an advisory lock on `path` (created if needed), waiting for another process that holds it (and saying
    so): what is built once and shared (the offline backbone, the generated datasets) is built by one process
    at a time."""
    try:
        import fcntl
    except ImportError:  # no advisory locks (Windows): the atomic renames alone keep the cache consistent
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for {path}: another process is building what it guards", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        _HELD.add(handle.fileno())
        try:
            yield
        finally:
            _HELD.discard(handle.fileno())
            fcntl.flock(handle, fcntl.LOCK_UN)
