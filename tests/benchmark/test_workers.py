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


def die_in_worker(overrides: list[str]) -> tuple[str, str]:
    """Stands for `_run_in_worker` (the spawned workers import it from here): seed 1's worker dies once while
    it runs (its lock taken, as a killed run leaves it), or every time with `train.max_steps=7`."""
    import os
    import time

    from vtrbench.benchmark.config import resolve_config, run_dir

    config = resolve_config(overrides)
    folder = run_dir(config)
    if config.seed == 1 and (config.train.max_steps == 7 or not (folder / "died").exists()):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "run.lock").write_text("{}")
        (folder / "died").write_text("")
        os._exit(137)  # as the out-of-memory killer ends a process: no cleanup
    time.sleep(1)  # seed 0 runs beside it when it dies
    return "finished", f"seed {config.seed} done"


@pytest.mark.parametrize("always", [False, True])
def test_a_worker_that_dies_fails_its_own_run_at_most(tmp_path, monkeypatch, capsys, always):
    """Found in review: one killed worker broke the pool, and every run not finished (the one running beside
    it, those not started) was recorded failed."""
    from vtrbench.benchmark import launchers
    from vtrbench.benchmark.config import resolve_config, run_dir

    monkeypatch.setattr(launchers, "_run_in_worker", die_in_worker)
    runs = []
    for seed in (0, 1, 2):
        overrides = ["method=linear_probe", "dataset=msrvtt", f"seed={seed}", f"output.runs_dir={tmp_path}",
                     *(["train.max_steps=7"] if always else [])]
        runs.append(launchers.PendingRun(f"[{seed + 1}/3] seed{seed}", overrides, resolve_config(overrides)))

    failed = launchers.run_in_workers(runs, workers=2, quiet=True)

    out = capsys.readouterr().out
    assert "seed0: seed 0 done" in out and "seed2: seed 2 done" in out
    assert "a worker process died (killed, or out of memory)" in out
    if always:
        result = json.loads((run_dir(runs[1].config) / "result.json").read_text())
        assert failed == 1 and result["status"] == "failed"
        assert "its worker process died 2 times while it ran" in result["error"]
    else:
        assert failed == 0 and "seed1: seed 1 done" in out


def sleep_in_worker(overrides: list[str]) -> tuple[str, str]:
    """Stands for `_run_in_worker`: says its process id, then runs for a minute."""
    import os
    import time
    from pathlib import Path

    seed = next(o for o in overrides if o.startswith("seed=")).split("=")[1]
    folder = Path(next(o for o in overrides if o.startswith("output.runs_dir=")).split("=", 1)[1])
    (folder / f"worker{seed}.pid").write_text(str(os.getpid()))
    time.sleep(60)
    return "finished", "slept"


LEADERBOARD_OF_SLEEPERS = """
import sys
from vtrbench.benchmark import launchers
from vtrbench.benchmark.config import resolve_config
from tests.benchmark.test_workers import sleep_in_worker

launchers._run_in_worker = sleep_in_worker
runs = []
for seed in (0, 1, 2):
    overrides = ["method=linear_probe", "dataset=msrvtt", f"seed={seed}", f"output.runs_dir={sys.argv[1]}"]
    runs.append(launchers.PendingRun(f"seed{seed}", overrides, resolve_config(overrides)))
launchers.run_in_workers(runs, workers=2, quiet=True)
"""


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_a_stopped_leaderboard_starts_no_run_and_leaves_no_worker(tmp_path, signal_name):
    """Found in review: interrupted, the leaderboard ran every queued run to its end before it stopped; killed,
    it left its workers running (then idle, 1 GB each) with nobody to report to."""
    import os
    import signal
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    # SIGINT as a terminal's Ctrl-C finds it: a test suite run as a background job (`cmd &` in a script)
    # ignores SIGINT, which every process it starts inherits, and the leaderboard would never see it
    parent = subprocess.Popen([sys.executable, "-c", LEADERBOARD_OF_SLEEPERS, str(tmp_path)], cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 120
    while len(list(tmp_path.glob("worker*.pid"))) < 2 and time.time() < deadline and parent.poll() is None:
        time.sleep(0.2)
    workers = [int(path.read_text()) for path in tmp_path.glob("worker*.pid")]
    assert len(workers) == 2, parent.communicate()
    parent.send_signal(getattr(signal, signal_name))
    parent.communicate(timeout=30)  # not the minute a run takes

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] if Path(f"/proc/{pid}").exists() else "X"
        return state not in "ZX"

    deadline = time.time() + 15
    while any(alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in workers)
    assert not (tmp_path / "worker2.pid").exists()  # the third run never started


def test_workers_count_the_cores_this_process_may_use(monkeypatch):
    """On a node shared through SLURM or a cgroup, the allocation's cores, not the machine's: 2 cores of a
    64-core node used to start 8 workers of 8 threads, which makes OpenMP threads spin against each other.
    (`auto_workers` is one per usable core, at most 8; the tests' conftest replaces it.)"""
    import os

    from vtrbench.processes import usable_cores

    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert usable_cores() == 2
    assert threads_per_worker(1) == 2 and threads_per_worker(2) == 1
