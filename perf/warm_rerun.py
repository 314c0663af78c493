"""Wall-clock of a warm `vtrbench leaderboard` (every run finished earlier), with the report written again
and with the report kept, in one call: the issue-21 target is 10 s.

Run it in a folder where `vtrbench leaderboard` has finished (its `runs/` and `reports/`), with the same
VTRBENCH_CACHE; its arguments (key=value) go to the leaderboard. The first call removes
`reports/report_record.json` so that the report is written again; the second finds it current.

    cd <folder of a finished leaderboard> && python <repo>/perf/warm_rerun.py
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    if ": 0 ran here," not in done.stdout:
        raise SystemExit("not a warm rerun: some run was not finished yet; run the leaderboard to its end first")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="leaderboard options (key=value), as the finished run had")
    command = ["vtrbench", "leaderboard", *parser.parse_args().overrides]
    record = Path("reports") / "report_record.json"
    record.unlink(missing_ok=True)
    written = timed(command)
    kept = timed(command)
    print(f"warm rerun, report written again: {written:.1f} s")
    print(f"warm rerun, report current (kept): {kept:.1f} s")
    print(f"ratio written / kept: {written / kept:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
