"""Leaderboard launchers: the options, the sbatch script they make, and submitit jobs (submitit's local
executor: one subprocess per run) writing the same results as the in-process launcher."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import submitit  # in the test extra: CI installs it, so these tests run there rather than being skipped

from tests.benchmark.conftest import tiny_run_overrides
from vtrbench.benchmark.config import ConfigError, resolve_config, run_dir
from vtrbench.benchmark.launchers import (
    LaunchOptions,
    PendingRun,
    make_executor,
    run_as_submitit_jobs,
    split_launch_options,
)
from vtrbench.benchmark.leaderboard import run_leaderboard
from vtrbench.benchmark.locks import run_lock
from vtrbench.benchmark.runner import record_failure
from vtrbench.schema import RESULT_FILE


def test_the_test_extra_installs_submitit():
    """CI installs `.[test]`; without submitit there, the SLURM-path tests below would never run in CI."""
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert any(dep.startswith("submitit") for dep in pyproject["project"]["optional-dependencies"]["test"])


def test_launch_options_are_split_from_the_run_overrides():
    options, rest = split_launch_options(
        ["methods=[dgl]", "launcher=slurm", "slurm.gpus_per_node=8", "slurm.partition=gpu", "train.epochs=1"]
    )
    assert rest == ["methods=[dgl]", "train.epochs=1"]
    assert (options.launcher, options.slurm.gpus_per_node, options.slurm.partition) == ("slurm", 8, "gpu")
    assert split_launch_options(["seed=1"]) == (LaunchOptions(), ["seed=1"])  # local by default
    with pytest.raises(ConfigError, match="expected one of"):
        split_launch_options(["launcher=kubernetes"])
    with pytest.raises(ConfigError, match="gpu_per_node"):
        split_launch_options(["launcher=slurm", "slurm.gpu_per_node=8"])


def test_slurm_options_reach_the_sbatch_script(tmp_path, monkeypatch):
    fake_bin = tmp_path / "bin"  # submitit's SLURM executor only checks that srun exists
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:/usr/bin:/bin")
    options, _ = split_launch_options(["launcher=slurm", "slurm.nodes=2", "slurm.gpus_per_node=8",
                                       "slurm.time_min=90", "slurm.partition=gpu", "slurm.additional={exclude: n7}"])
    executor = make_executor(options, tmp_path / "runs")
    script = executor._executor._make_submission_file_text("python -m submitit.core._submit", "uid")
    for line in ("--nodes=2", "--gpus-per-node=8", "--ntasks-per-node=8", "--partition=gpu", "--time=90",
                 "--exclude=n7", f"--error={tmp_path}/runs/.submitit/%j/%j_0_log.err"):
        assert f"#SBATCH {line}\n" in script


def test_a_slurm_launcher_without_slurm_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="launcher=slurm.*srun"):
        make_executor(split_launch_options(["launcher=slurm"])[0], tmp_path)


def results_by_method(runs_dir: Path) -> dict[str, dict]:
    results = {}
    for path in runs_dir.rglob(RESULT_FILE):
        result = json.loads(path.read_text())
        results[result["method"]] = result
    return results


def test_submitit_jobs_write_the_same_results_as_the_local_launcher(tiny_msrvtt, tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.chdir(tmp_path)  # the leaderboard writes its report to ./reports

    def leaderboard(runs: str, *launch: str) -> int:
        overrides = [o for o in tiny_run_overrides(tiny_msrvtt, Path(runs), **{"train.max_steps": 2})
                     if not o.startswith("method=")]
        return run_leaderboard(["methods=[zero_shot,full_finetune]", "datasets=[msrvtt]", *overrides, *launch],
                               quiet=True)

    assert leaderboard("local") == 0
    assert leaderboard("jobs", "launcher=submitit-local", "slurm.gpus_per_node=0", "slurm.time_min=5") == 0
    local, jobs = results_by_method(tmp_path / "local"), results_by_method(tmp_path / "jobs")
    assert set(jobs) == {"zero_shot", "full_finetune"}
    for method, result in jobs.items():
        assert result["status"] == "finished"
        assert result["metrics"] == local[method]["metrics"] and result["ranks"] == local[method]["ranks"]
        assert result["params"] == local[method]["params"]
        assert result["config"] == local[method]["config"] | {"output": result["config"]["output"]}
    assert "job " in capsys.readouterr().out

    assert leaderboard("jobs", "launcher=submitit-local") == 0  # finished runs: skipped, no job submitted
    out = capsys.readouterr().out
    assert out.count("finished earlier with this config, skipped") == 2 and "job " not in out


def test_a_failed_job_is_reported_with_its_log(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    overrides = tiny_run_overrides(tmp_path / "nowhere", tmp_path / "runs", method="zero_shot")
    config = resolve_config(overrides)
    options, _ = split_launch_options(["launcher=submitit-local", "slurm.gpus_per_node=0"])
    assert run_as_submitit_jobs([PendingRun("[1/1] broken", overrides, config)], options) == 1
    out = capsys.readouterr().out
    assert "[1/1] broken: FAILED" in out and "nowhere" in out
    log = Path(out.split("log: ")[-1].strip())
    assert log.is_file() and "FileNotFoundError" in log.read_text()
    failed = json.loads((run_dir(config) / RESULT_FILE).read_text())  # written by the job itself
    assert failed["status"] == "failed" and "nowhere" in failed["error"]


def test_the_submitting_process_never_unpickles_a_job_result(tiny_msrvtt, tmp_path, monkeypatch, capsys):
    def unpickles(self):
        raise AssertionError("job.result() unpickles submitit's output file")

    monkeypatch.setattr(submitit.core.core.Job, "result", unpickles)
    monkeypatch.setattr(submitit.core.core.Job, "results", unpickles)
    overrides = tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot")
    config = resolve_config(overrides)
    options, _ = split_launch_options(["launcher=submitit-local", "slurm.gpus_per_node=0"])
    assert run_as_submitit_jobs([PendingRun("[1/1] zero_shot", overrides, config)], options) == 0
    assert "[1/1] zero_shot: T2V R@1" in capsys.readouterr().out


def test_a_job_that_finds_its_run_held_by_another_process_is_not_a_failure(tiny_msrvtt, tmp_path, monkeypatch,
                                                                             capsys):
    """The job stops at the run's lock and writes nothing. Before, the submitting process read the folder's
    older result file as the job's own account: an earlier call's failure was printed as this job's reason and
    counted as a failure, where the local launchers say the run is being run by another process."""
    monkeypatch.chdir(tmp_path)
    overrides = tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot")
    config = resolve_config(overrides)
    record_failure(config, RuntimeError("CUDA out of memory yesterday"))  # an earlier call's failure
    options, _ = split_launch_options(["launcher=submitit-local", "slurm.gpus_per_node=0"])
    run = PendingRun("[1/1] zero_shot", overrides, config)
    with run_lock(run_dir(config)):  # another process runs it
        assert run_as_submitit_jobs([run], options) == 0
    out = capsys.readouterr().out
    assert run.elsewhere and "[1/1] zero_shot: not run here" in out
    assert "yesterday" not in out and "FAILED" not in out


def test_tune_true_is_refused_with_a_job_launcher(tmp_path, monkeypatch):
    """Found in review: with launcher=slurm every search's trials trained in the submitting process (a login
    node), and only the final runs went to the cluster."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="tune=true runs every search's trials in this process.*vtrbench tune"):
        run_leaderboard(["launcher=submitit-local", "tune=true", "methods=[bitfit]", "datasets=[msrvtt]"])
    assert not list(tmp_path.iterdir())  # refused before anything ran or was written
