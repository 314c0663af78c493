"""One run at a time against several side by side, on this machine's CPU cores (`workers=N`).

    python perf/workers.py [--methods bitfit adaptformer] [--dataset lsmdc] [--workers 2]

Runs the same leaderboard matrix twice into fresh runs folders (the offline backbone and data are built
first, outside the timing): once with `workers=1` (one run after the other, in one process with every core's
thread), once with `workers=N` (N worker processes with cores // N threads each), and prints the wall time
of each and their ratio, measured in this one call. The results of both must be equal (checked and printed):
the launcher changes where a run executes, never what it computes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def leaderboard(runs: Path, methods: list[str], dataset: str, workers: int) -> float:
    command = [sys.executable, "-m", "vtrbench", "leaderboard", "--quiet", f"methods=[{','.join(methods)}]",
               f"datasets=[{dataset}]", f"workers={workers}", f"output.runs_dir={runs}",
               f"output.reports_dir={runs.parent / (runs.name + '-report')}"]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    return time.perf_counter() - started


def metrics(runs: Path) -> dict[str, dict]:
    return {str(path.relative_to(runs).parent): json.loads(path.read_text())["metrics"]
            for path in sorted(runs.rglob("result.json"))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["bitfit", "adaptformer"])
    parser.add_argument("--dataset", default="lsmdc")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vtrbench-workers-") as tmp:
        tmp = Path(tmp)
        # build the shared assets (backbone, data, frame cache) once, untimed: a zero-shot leaderboard
        leaderboard(tmp / "warm", ["zero_shot"], args.dataset, 1)
        serial = leaderboard(tmp / "serial", args.methods, args.dataset, 1)
        parallel = leaderboard(tmp / "parallel", args.methods, args.dataset, args.workers)
        metrics_of_serial = metrics(tmp / "serial")
        same = metrics_of_serial == metrics(tmp / "parallel")
    cores = os.cpu_count() or 1
    runs = len(metrics_of_serial)
    print(f"{runs} runs ({', '.join(args.methods)}, every seed of the preset) on offline {args.dataset}, {cores} cores")
    print(f"workers=1 (one run at a time, {cores} threads): {serial:.1f} s")
    print(f"workers={args.workers} ({max(1, cores // args.workers)} thread(s) each): {parallel:.1f} s")
    print(f"ratio serial / parallel: {serial / parallel:.2f}; identical results: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
