"""`workers=N`: the local launcher runs N runs at once, each in a process of its own, with the same results
as one after the other."""

import json
import subprocess
import sys

import pytest

from tests.benchmark.conftest import tiny_run_overrides
from vtrbench.benchmark.config import ConfigError
from vtrbench.benchmark.launchers import split_launch_options, threads_per_worker


def leaderboard(root, runs, workers: int) -> subprocess.CompletedProcess:
    runs.parent.mkdir(parents=True)
    overrides = [o for o in tiny_run_overrides(root, runs) if not o.startswith(("method=", "quiet="))]
    return subprocess.run(
        [sys.executable, "-m", "vtrbench", "leaderboard", "--quiet", "methods=[zero_shot,full_finetune]",
         "datasets=[msrvtt]", f"workers={workers}", f"output.reports_dir={runs.parent / 'reports'}", *overrides],
        capture_output=True, text=True, timeout=600, cwd=runs.parent,
    )


def metrics(runs) -> dict:
    return {path.parent.parent.name: json.loads(path.read_text())["metrics"] for path in runs.rglob("result.json")}


def test_parallel_workers_give_the_results_of_one_run_at_a_time(tiny_msrvtt, tmp_path):
    one, two = tmp_path / "one" / "runs", tmp_path / "two" / "runs"
    serial = leaderboard(tiny_msrvtt, one, workers=1)
    parallel = leaderboard(tiny_msrvtt, two, workers=2)

    assert serial.returncode == 0, serial.stdout + serial.stderr
    assert parallel.returncode == 0, parallel.stdout + parallel.stderr
    assert "2 run(s) on 2 worker process(es)" in parallel.stdout
    assert "worker process" not in serial.stdout
    assert metrics(one) == metrics(two) and len(metrics(one)) == 2


def test_worker_options_are_checked():
    options, rest = split_launch_options(["workers=3", "method=dgl"])
    assert options.workers == 3 and rest == ["method=dgl"]
    assert threads_per_worker(1) >= threads_per_worker(2) >= 1
    with pytest.raises(ConfigError, match="workers=-1"):
        split_launch_options(["workers=-1"])
    with pytest.raises(ConfigError, match="launcher=local's option"):
        split_launch_options(["workers=2", "launcher=submitit-local"])
