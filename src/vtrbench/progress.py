"""How long phases tell the user where they are: a line on stdout when a phase starts and ends (so a log file
or CI output is never silent for minutes), and a progress bar only on a terminal."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


@contextlib.contextmanager
def phase(description: str, enabled: bool = True) -> Iterator[None]:
    """`description: started` before the block and `description: done in N s` after it, on stdout."""
    started = time.perf_counter()
    if enabled:
        print(f"{description}: started", flush=True)
    yield
    if enabled:
        print(f"{description}: done in {time.perf_counter() - started:.0f} s", flush=True)


def bar(items: Iterable[T], description: str, enabled: bool = True, total: int | None = None) -> Iterator[T]:
    """A tqdm bar over `items` when enabled and stderr is a terminal; the plain iterable otherwise."""
    show = enabled and sys.stderr.isatty()
    return iter(tqdm(items, desc=description, disable=not show, leave=False, total=total))
