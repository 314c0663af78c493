"""Whether a report folder already holds the report of a runs folder, so a rerun with nothing new need not
write it again (`vtrbench leaderboard` asks; `vtrbench report` always writes).

A report is a function of the files it reads (every ``result.json`` and ``tuning.json`` under the runs
folder, by path and bytes), of its options (the runs folder as named, the paired reference, the bootstrap B,
the published rows), of the code (every source file of the installed vtrbench package, the packaged published
rows) and of the libraries that compute and draw it (numpy, pandas, matplotlib). ``write_report`` records a
fingerprint of all of them and the SHA-256 of every file it wrote in ``REPORT_RECORD``; the report is current
when the fingerprint is the same and every file it wrote is there, unchanged. Anything else writes it again.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

import vtrbench
from vtrbench.schema import RESULT_FILE, TUNING_FILE

REPORT_RECORD = "report_record.json"
LIBRARIES = ("numpy", "pandas", "matplotlib")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def report_fingerprint(runs_dir: str | Path, reference_method: str, resamples: int, published: bool) -> str:
    """SHA-256 over everything a report is computed from (see the module docstring)."""
    digest = hashlib.sha256()

    def add(*parts: object) -> None:
        for part in parts:
            data = part if isinstance(part, bytes) else str(part).encode("utf-8")
            digest.update(len(data).to_bytes(8, "little") + data)

    add("options", str(runs_dir), reference_method, resamples, published)
    runs_dir = Path(runs_dir)
    for path in sorted([*runs_dir.rglob(RESULT_FILE), *runs_dir.rglob(TUNING_FILE)]):
        add("input", path.relative_to(runs_dir).as_posix(), path.read_bytes())
    package = Path(vtrbench.__file__).parent
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".csv", ".yaml", ".json")):
        add("code", path.relative_to(package).as_posix(), path.read_bytes())
    for library in LIBRARIES:
        add("library", library, metadata.version(library))
    return digest.hexdigest()


def _recorded_names(out_dir: Path) -> set[str]:
    """The bare names of the files the report recorded in ``out_dir`` wrote (none without a readable record)."""
    try:
        files = json.loads((out_dir / REPORT_RECORD).read_text(encoding="utf-8"))["files"]
        return {Path(entry["file"]).name for entry in files.values()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


def record_report(out_dir: Path, fingerprint: str, paths: dict[str, Path]) -> None:
    """Write ``REPORT_RECORD``: the fingerprint and each written file (kind -> name, SHA-256). A file the
    previous record names and this report did not write (a dataset's table or plot whose runs are gone) is
    removed, so the folder never holds a stale part that reads as this report's; no other file is touched."""
    written = {kind: {"file": path.name, "sha256": _sha256(path)} for kind, path in paths.items()}
    current = {path.name for path in paths.values()}
    for name in sorted(_recorded_names(out_dir) - current - {REPORT_RECORD}):
        (out_dir / name).unlink(missing_ok=True)
    (out_dir / REPORT_RECORD).write_text(json.dumps({"fingerprint": fingerprint, "files": written}, indent=1),
                                         encoding="utf-8")


def current_report(out_dir: str | Path, fingerprint: str) -> dict[str, Path] | None:
    """The paths of the report in ``out_dir`` when it is the report of ``fingerprint`` with every file as
    written, else None (no record, an unreadable one, another fingerprint, a file missing or changed)."""
    out_dir = Path(out_dir)
    try:
        record = json.loads((out_dir / REPORT_RECORD).read_text(encoding="utf-8"))
        if record["fingerprint"] != fingerprint:
            return None
        paths = {}
        for kind, entry in record["files"].items():
            path = out_dir / Path(entry["file"]).name  # a bare name: never outside the report folder
            if not path.is_file() or _sha256(path) != entry["sha256"]:
                return None
            paths[kind] = path
        return paths
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # AttributeError: `files` not an object
        return None
