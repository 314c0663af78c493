"""Where the suite keeps what it builds once and reuses: the offline backbone's weights, the generated
datasets and the frame caches. `$VTRBENCH_CACHE`, else `~/.cache/vtrbench`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


def cache_dir() -> Path:
    configured = os.environ.get("VTRBENCH_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "vtrbench"


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold an advisory lock on `path` (created if needed), waiting for another process that holds it: what is
    built once and shared (the offline backbone, the generated datasets) is built by one process at a time."""
    try:
        import fcntl
    except ImportError:  # no advisory locks (Windows): the atomic renames alone keep the cache consistent
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
