"""Atomic writes, the one way the package writes a file that someone may read while it is being written.

The content goes to a temporary file beside the target, which is then renamed over it: a reader sees the old
file or the new one, never half of one, and an interrupted write leaves the target as it was. The file gets
the permissions of the process umask, as any file the user makes (some writers, such as safetensors and
tempfile, create theirs 0600).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """`write(tmp)` writes the content to the temporary path `tmp`; then it replaces `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~process_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: Path, text: str, encoding: str | None = None) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding=encoding))


def process_umask() -> int:
    try:  # Linux shows it; os.umask can only read it by setting it, which races with other threads
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
