"""One process per run: a run another live process holds is skipped (leaderboard) or refused (`run`), a lock
left by a killed process is taken over, and two leaderboards on one runs dir run every run once."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmark.conftest import tiny_run_overrides
from vtrbench.benchmark.cli import main
from vtrbench.benchmark.config import resolve_config, run_dir
from vtrbench.benchmark.leaderboard import run_leaderboard

HOLD = """
import sys, time
from pathlib import Path
from vtrbench.benchmark.locks import run_lock
with run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(600)
"""


def hold_lock(directory: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def leaderboard_overrides(root: Path, tmp: Path, *matrix: str) -> list[str]:
    base = [o for o in tiny_run_overrides(root, tmp / "runs") if not o.startswith("method=")]
    return [*base, "datasets=[msrvtt]", *matrix]


def test_a_locked_run_is_left_to_its_holder_then_taken_over_when_it_dies(tiny_msrvtt, tmp_path, capsys):
    overrides = leaderboard_overrides(tiny_msrvtt, tmp_path, "methods=[zero_shot]",
                                      f"output.reports_dir={tmp_path / 'reports'}")
    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot"))
    folder = run_dir(config)
    holder = hold_lock(folder)
    try:
        with_report = run_leaderboard(overrides, quiet=True)
        out = capsys.readouterr().out
        assert f"being run by process {holder.pid} on " in out and "skipped here" in out
        assert "0 ran here" in out and "1 being run by another process" in out
        assert with_report == 0 and not (folder / "result.json").exists()

        assert main(["run", *tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"is being run by process {holder.pid}" in err
        assert not (folder / "result.json").exists()  # the refused run recorded no failure
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert json.loads((folder / "run.lock").read_text())["pid"] == holder.pid  # left behind by the dead

    assert run_leaderboard(overrides, quiet=True) == 0
    assert "1 ran here" in capsys.readouterr().out
    assert json.loads((folder / "result.json").read_text())["status"] == "finished"
    assert not (folder / "run.lock").exists()


def test_two_leaderboards_on_one_runs_dir_run_each_run_once(tiny_msrvtt, tmp_path):
    commands = [
        [sys.executable, "-m", "vtrbench", "leaderboard", "--quiet",
         *leaderboard_overrides(tiny_msrvtt, tmp_path, "methods=[zero_shot]", "seeds=[0,1,2,3]",
                                f"output.reports_dir={tmp_path / f'reports{i}'}")]
        for i in range(2)
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for command in commands]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    ran = [int(re.search(r"(\d+) ran here", out).group(1)) for out in outputs]
    assert sum(ran) == 4, outputs
    for seed in range(4):
        folder = run_dir(resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot",
                                                           seed=seed)))
        assert json.loads((folder / "result.json").read_text())["status"] == "finished"
        assert not (folder / "run.lock").exists()


def test_a_run_finished_by_another_process_while_it_held_the_lock_is_not_run_again(tiny_msrvtt, tmp_path,
                                                                                    monkeypatch):
    from vtrbench.benchmark import runner

    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot"))
    finished = runner.execute(config)
    checks = []
    real = runner.finished_result

    def not_yet_then_finished(out_dir, requested):  # the other process ends between the two checks
        checks.append(out_dir)
        return None if len(checks) == 1 else real(out_dir, requested)

    monkeypatch.setattr(runner, "finished_result", not_yet_then_finished)
    monkeypatch.setattr(runner, "execute_locked", lambda *args: pytest.fail("ran a finished run again"))
    result, ran = runner.execute_or_reuse(config)
    assert not ran and result["metrics"] == finished["metrics"] and len(checks) == 2


def test_a_reused_run_computed_with_other_library_versions_says_so(tiny_msrvtt, tmp_path, capsys):
    """peft 0.21 and 0.22 compute LoRA differently: a run finished under one is reused under the other (the
    config is the same), and the leaderboard now says so rather than nothing."""
    from vtrbench.benchmark.results import package_versions

    overrides = leaderboard_overrides(tiny_msrvtt, tmp_path, "methods=[zero_shot]",
                                      f"output.reports_dir={tmp_path / 'reports'}")
    assert run_leaderboard(overrides, quiet=True) == 0
    capsys.readouterr()
    assert run_leaderboard(overrides, quiet=True) == 0
    assert "skipped\n" in capsys.readouterr().out  # same versions: nothing to say
    path = run_dir(resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot"))) / \
        "result.json"
    record = json.loads(path.read_text())
    record["versions"]["peft"] = "0.21.0"
    path.write_text(json.dumps(record))
    assert run_leaderboard(overrides, quiet=True) == 0
    out = capsys.readouterr().out
    assert f"skipped (computed with peft 0.21.0, here {package_versions()['peft']}: reused all the same" in out


def test_run_says_when_it_reuses_a_finished_run(tiny_msrvtt, tmp_path, capsys):
    overrides = tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot")
    assert main(["run", *overrides]) == 0
    assert "finished earlier" not in capsys.readouterr().err
    assert main(["run", *overrides]) == 0
    captured = capsys.readouterr()
    assert "finished earlier with this config, reused\n" in captured.err
    assert json.loads(captured.out)["status"] == "finished"


def test_a_run_held_elsewhere_with_an_earlier_failure_is_said_to_be_in_the_report(tiny_msrvtt, tmp_path, capsys):
    # found in review: the summary said "(not in this report)" while the report listed the folder's old failure
    from vtrbench.benchmark.runner import record_failure

    overrides = leaderboard_overrides(tiny_msrvtt, tmp_path, "methods=[zero_shot]",
                                      f"output.reports_dir={tmp_path / 'reports'}")
    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot"))
    record_failure(config, RuntimeError("an earlier try"))
    holder = hold_lock(run_dir(config))
    try:
        assert run_leaderboard(overrides, quiet=True) == 0
        out = capsys.readouterr().out
        assert "1 being run by another process (1 with an earlier, unfinished result in its folder, which the " \
               "report lists as it stands)" in out
        assert "an earlier try" in (tmp_path / "reports" / "report.md").read_text()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_the_offline_inputs_are_named_and_their_names_follow_the_world(monkeypatch):
    """A run of the offline default records which generated data and pretrained backbone it used, by names
    that change with the world's code (a renderer version, the pretraining's), not only with its config."""
    from vtrbench.benchmark.results import run_inputs
    from vtrbench.offline import tiny_clip, writer

    config = resolve_config(["method=zero_shot", "dataset=vatex"])
    before = run_inputs(config)
    assert before["data"].startswith("vatex-") and before["backbone"].startswith("vtrbench-tiny-")
    monkeypatch.setattr(writer, "CLIPS_VERSION", writer.CLIPS_VERSION + 1)
    assert run_inputs(config)["data"] != before["data"] and run_inputs(config)["backbone"] == before["backbone"]
    monkeypatch.setattr(tiny_clip, "PRETRAIN_VERSION", tiny_clip.PRETRAIN_VERSION + 1)
    assert run_inputs(config)["backbone"] != before["backbone"]
    # data of the user's own and random weights are named by the config itself
    assert run_inputs(resolve_config(["method=zero_shot", "dataset=vatex", "vatex.root=/data/vatex",
                                      "backbone.pretrained=random"])) == {}


def test_a_finished_run_of_another_offline_world_is_kept_not_reused(tiny_msrvtt, tmp_path, monkeypatch, capsys):
    """Same config, other generated data (the world's code changed since): the finished result is neither
    reused nor overwritten, and the leaderboard says why before anything runs."""
    from vtrbench.benchmark import results, runner

    world = {"data": "msrvtt-aaaaaaaaaa"}
    monkeypatch.setattr(results, "run_inputs", lambda config: dict(world))
    monkeypatch.setattr(runner, "run_inputs", lambda config: dict(world))
    overrides = leaderboard_overrides(tiny_msrvtt, tmp_path, "methods=[zero_shot]",
                                      f"output.reports_dir={tmp_path / 'reports'}")
    assert run_leaderboard(overrides, quiet=True) == 0
    path = run_dir(resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot"))) / \
        "result.json"
    written = path.read_text()
    assert json.loads(written)["inputs"] == world
    assert run_leaderboard(overrides, quiet=True) == 0  # the same world: reused
    assert "skipped\n" in capsys.readouterr().out

    world["data"] = "msrvtt-bbbbbbbbbb"
    with pytest.raises(results.RunConflictError, match=r"other offline inputs \(data msrvtt-aaaaaaaaaa, here "
                                                        r"msrvtt-bbbbbbbbbb\).*kept, not reused"):
        run_leaderboard(overrides, quiet=True)
    assert path.read_text() == written
    # found in review: a result written before results recorded their inputs was reused whatever the world
    record = json.loads(written)
    del record["inputs"]
    path.write_text(json.dumps(record))
    with pytest.raises(results.RunConflictError, match=r"does not record the offline inputs it was computed from"):
        run_leaderboard(overrides, quiet=True)
