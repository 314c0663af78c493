"""Where the suite keeps what it builds once and reuses: the offline backbone's weights, the generated
datasets and the frame caches. `$VTRBENCH_CACHE`, else `~/.cache/vtrbench`."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    configured = os.environ.get("VTRBENCH_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "vtrbench"
