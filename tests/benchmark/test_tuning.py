"""`vtrbench tune` and `leaderboard tune=true`: equal budgets, val only, reuse, and the records they leave."""

import json

import pytest

from tests.benchmark.conftest import tiny_run_overrides
from vtrbench.benchmark.cli import main
from vtrbench.benchmark.config import ConfigError, resolve_config
from vtrbench.benchmark.leaderboard import run_leaderboard
from vtrbench.benchmark.locks import run_lock
from vtrbench.benchmark.tuning import log_grid, plan_searches, search_grid
from vtrbench.datasets.msrvtt import MSRVTT
from vtrbench.registry import METHODS


def tune_overrides(root, runs, method="linear_probe", **extra):
    """A 2-trial search of a fast method on the tiny data (the budget is lowered for every method alike), over
    a space of its own, so that the tests do not follow the offline range in the method's yaml."""
    overrides = tiny_run_overrides(root, runs, method=method, **{
        "train.epochs": 1, "tune.trials": 2, "tune.space": "[{key: train.lr, log_range: [0.0001, 0.1]}]", **extra})
    return [o for o in overrides if not o.startswith("quiet=")]


def test_every_method_declares_a_space_of_the_budget():
    for method in METHODS.names():
        config = resolve_config([f"method={method}"])
        grid = search_grid(config)
        assert len(grid) == (0 if method == "zero_shot" else config.tune.trials), method
        assert all(set(settings) == {"train.lr"} for settings in grid)


def test_log_grids_are_rounded_to_three_digits():
    assert log_grid(1e-3, 1e-1, 5) == [0.001, 0.00316, 0.01, 0.0316, 0.1]
    assert log_grid(1e-4, 1e-1, 5) == [0.0001, 0.000562, 0.00316, 0.0178, 0.1]


@pytest.mark.parametrize(("space", "expected"), [
    ("[{key: train.lr, choices: [0.1, 0.01]}]", r"dgl.yaml: tune.space yields 2 trial\(s\) but the budget "
                                                 r"tune.trials is 5"),
    ("[{key: train.lr, log_range: [0.001, 0.1]}, {key: dgl.latent, choices: [linear, transformer]}]",
     r"yields 4 trial\(s\) but the budget tune.trials is 5"),
    ("[{key: train.lr, log_range: [0.001, 0.1]}, {key: train.warmup, log_range: [0.01, 0.1]}]",
     "2 log_range dimensions"),
    ("[{key: train.lrr, choices: [1, 2, 3, 4, 5]}]", "train.lrr: not a setting a search may vary"),
    ("[{key: train.lr, choices: [1, 2, 3, 4, 5], log_range: [0.1, 1.0]}]", "exactly one of log_range or choices"),
    ("[{key: train.lr, log_range: [0.001, 0.1]}, {key: train.lr, choices: [1]}]",
     "tune.space names train.lr more than once"),
])
def test_a_space_that_breaks_the_budget_is_refused(space, expected):
    config = resolve_config(["method=dgl", f"tune.space={space}"])
    with pytest.raises(ConfigError, match=expected):
        search_grid(config)


def test_a_budget_too_small_for_its_range_or_below_one_trial_is_said_so():
    # before: "tune.space yields 1 trial(s) but the budget tune.trials is 1", and "yields 0" for 0
    with pytest.raises(ConfigError, match=r"tune.trials=1 leaves 1 point\(s\) for train.lr's log_range, which "
                                          r"needs at least 2"):
        search_grid(resolve_config(["method=dgl", "tune.trials=1"]))
    with pytest.raises(ConfigError, match=r"tune.trials=0: expected an integer >= 1"):
        resolve_config(["method=dgl", "tune.trials=0"])


def test_a_space_and_the_budget_may_combine_choices_and_a_range():
    config = resolve_config(["method=dgl", "tune.trials=6",
                             "tune.space=[{key: train.lr, log_range: [0.001, 0.1]}, "
                             "{key: dgl.latent, choices: [linear, transformer]}]"])
    grid = search_grid(config)
    assert len(grid) == 6 and {s["dgl.latent"] for s in grid} == {"linear", "transformer"}
    assert sorted({s["train.lr"] for s in grid}) == [0.001, 0.01, 0.1]


@pytest.mark.parametrize("choices, first, second", [
    ("[0.1, 0.1, 0.1, 0.1, 0.1]", "train.lr=0.1", "train.lr=0.1"),
    ("[true, false, 1, 0, true]", "train.val_curve=True", "train.val_curve=1"),  # 1 is read as true
])
def test_a_space_of_repeated_trials_is_refused(choices, first, second):
    """Found by an audit: one distinct trial, reused four times, was recorded as a search of five."""
    key = "train.lr" if "0.1" in choices else "train.val_curve"
    with pytest.raises(ConfigError, match=f"trials {first} and {second} set the same values: every method gets "
                                          f"tune.trials=5 distinct trials"):
        plan_searches(["method=bitfit", f"tune.space=[{{key: {key}, choices: {choices}}}]"])


def test_trials_whose_folders_would_coincide_are_refused_before_any_trains():
    """A trial's folder names its values to 3 significant digits: 0.001 and 0.0010004 passed the plan, trial 1
    trained, and trial 2 then stopped on trial 1's finished run of another config, at every call."""
    with pytest.raises(ConfigError, match="trials train.lr=0.001 and train.lr=0.0010004 would share the folder "
                                          "'train.lr-0.001'"):
        plan_searches(["method=bitfit", "tune.space=[{key: train.lr, choices: [0.001, 0.0010004, 0.01, 0.1, 1.0]}]"])


def test_a_search_refuses_a_searched_key_on_its_command_line_and_a_trained_method_without_space():
    with pytest.raises(ConfigError, match="train.lr: searched by dgl's tune.space"):
        plan_searches(["method=dgl", "train.lr=0.1"])
    with pytest.raises(ConfigError, match="lora trains parameters but declares no tune.space"):
        plan_searches(["method=lora", "tune.space=[]"])
    assert plan_searches(["method=zero_shot"])[0].grid == []  # nothing to tune, nothing asked


def test_a_search_names_where_its_space_came_from_and_refuses_a_trial_name():
    # found in review: a space given on the command line was blamed on the method's yaml, and tune.trial=X
    # put the search's record under .../tuning/seed0/X/../tuning/seed0/
    with pytest.raises(ConfigError, match=r"^tune.space on the command line: tune.space: log_range \[0.0001, nan\]"):
        plan_searches(["method=lora", "tune.trials=2", "tune.space=[{key: train.lr, log_range: [1e-4, .nan]}]"])
    with pytest.raises(ConfigError, match="tune.trial=budget6: a search names each trial's folder itself"):
        plan_searches(["method=bitfit", "tune.trial=budget6"])


def test_tuning_never_loads_the_test_split(tiny_msrvtt, tmp_path, monkeypatch, capsys):
    load = MSRVTT.load

    def no_test(self, split):
        if split == "test":
            raise AssertionError("the test split was loaded during tuning")
        return load(self, split)

    monkeypatch.setattr(MSRVTT, "load", no_test)
    runs = tmp_path / "runs"
    assert main(["tune", "--quiet", *tune_overrides(tiny_msrvtt, runs)]) == 0
    out = capsys.readouterr().out
    assert "msrvtt linear_probe: 2 trials of train.lr on the val split, metric rsum" in out
    assert "trial 1/2 train.lr=0.0001: val rsum" in out and "trial 2/2 train.lr=0.1: val rsum" in out
    assert "chosen: train.lr=" in out
    record = json.loads((runs / "msrvtt/vtrbench-tiny/linear_probe/tuning/seed0/tuning.json").read_text())
    assert record["split"] == "val" and record["trials_budget"] == 2 and len(record["trials"]) == 2
    assert record["chosen"]["settings"] == max(record["trials"], key=lambda t: t["score"])["settings"]
    assert record["val"]["clips"] == 8 and record["space"] == [{"key": "train.lr", "log_range": [0.0001, 0.1]}]
    assert record["at_edge"]  # two points: whichever wins sits at an edge, and it is said
    assert "WARNING: train.lr=" in out and "AT THE EDGE" in record["rule"]["source"]
    for trial in record["trials"]:
        result = json.loads((tmp_path / trial["run"] / "result.json").read_text())
        assert result["split"] == "val" and "test" not in result["skipped"]
    # the preset rule, ready to paste, with the command that reproduces it
    assert "  - method: linear_probe\n    dataset: msrvtt\n    source: \"vtrbench tune method=linear_probe" in out
    chosen = record["chosen"]["settings"]["train.lr"]
    assert f"    set: {{train: {{lr: {chosen:.3g}}}}}" in out


def test_a_search_reuses_finished_trials_and_resumes_an_interrupted_one(tiny_msrvtt, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["tune", "--quiet", *tune_overrides(tiny_msrvtt, runs)]) == 0
    capsys.readouterr()
    trials = runs / "msrvtt/vtrbench-tiny/linear_probe/tuning/seed0"
    first = trials / "train.lr-0.0001" / "result.json"
    before = first.stat().st_mtime_ns
    (trials / "train.lr-0.1" / "result.json").unlink()  # as if the search had stopped during trial 2
    assert main(["tune", "--quiet", *tune_overrides(tiny_msrvtt, runs)]) == 0
    out = capsys.readouterr().out
    assert "trial 1/2 train.lr=0.0001: val rsum" in out and "finished earlier, reused" in out.splitlines()[1]
    assert "reused" not in out.splitlines()[2]
    assert first.stat().st_mtime_ns == before and (trials / "train.lr-0.1" / "result.json").is_file()
    # a larger budget reuses the trials whose values it shares
    assert main(["tune", "--quiet", *tune_overrides(tiny_msrvtt, runs, **{"tune.trials": 4})]) == 0
    out = capsys.readouterr().out
    assert "trial 1/4 train.lr=0.0001" in out and out.count("finished earlier, reused") == 2


def test_a_trial_another_process_runs_stops_the_search_and_records_nothing(tiny_msrvtt, tmp_path, capsys):
    """A trial held by another live process is not a failed trial: choosing among the others would give this
    method fewer trials than the budget, so the search stops, with no record, no rule and no failure file."""
    runs = tmp_path / "runs"
    trials = runs / "msrvtt/vtrbench-tiny/linear_probe/tuning/seed0"
    held = trials / "train.lr-0.1"
    with run_lock(held):  # flock: the search's own open of the lock file is refused
        assert main(["tune", "--quiet", *tune_overrides(tiny_msrvtt, runs)]) != 0
    assert "is being run by process" in capsys.readouterr().err
    assert not (trials / "tuning.json").exists() and not (held / "result.json").exists()
    assert main(["tune", "--quiet", *tune_overrides(tiny_msrvtt, runs)]) == 0  # once let go, it runs
    assert json.loads((trials / "tuning.json").read_text())["trials_finished"] == 2


def test_leaderboard_tune_true_tunes_once_with_the_first_seed_and_records_it(tiny_msrvtt, tmp_path, capsys):
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    overrides = [o for o in tune_overrides(tiny_msrvtt, runs) if not o.startswith(("method=", "dataset="))]
    assert run_leaderboard(["tune=true", "methods=[zero_shot,linear_probe]", "datasets=[msrvtt]", "seeds=[1,2]",
                            f"output.reports_dir={reports}", *overrides], quiet=True) == 0
    out = capsys.readouterr().out
    assert "tuned on its val split with seed 1 (the first seed)" in out
    method_dir = runs / "msrvtt/vtrbench-tiny/linear_probe"
    assert [p.name for p in (method_dir / "tuning").iterdir()] == ["seed1"]
    record = json.loads((method_dir / "tuning/seed1/tuning.json").read_text())
    for seed in (1, 2):
        result = json.loads((method_dir / f"seed{seed}/result.json").read_text())
        assert result["tuning"] == record and result["split"] == "test"
        assert result["config"]["train"]["lr"] == record["chosen"]["settings"]["train.lr"]
        assert result["tuning"]["trials_budget"] == 2 and len(result["tuning"]["trials"]) == 2
    assert "tuning" not in json.loads((runs / "msrvtt/vtrbench-tiny/zero_shot/seed1/result.json").read_text())
    markdown = (reports / "report.md").read_text()
    assert "## Tuning" in markdown and "| linear_probe |" in markdown.split("## Tuning")[1]
    assert "zero_shot on msrvtt" in markdown.split("## Tuning")[1]  # named as not searched
    assert "curves_msrvtt.png" in markdown
    test_tables = markdown.split("## Tuning")[0]
    assert "(val)" not in test_tables  # the trials never make a table of their own


def test_the_leaderboard_tune_switch_is_checked():
    with pytest.raises(ConfigError, match="tune=maybe"):
        run_leaderboard(["tune=maybe"])


def test_one_search_holds_one_budget(capsys):
    from vtrbench.benchmark.tuning import Search, check_equal_budgets

    def search(method, dataset="msrvtt", *extra):
        config = resolve_config([f"method={method}", f"dataset={dataset}", *extra])
        return Search([], config, search_grid(config))

    with pytest.raises(ConfigError, match="unequal tuning budgets in one search"):
        check_equal_budgets([search("dgl"), search("lora", "msrvtt", "tune.metric=t2v.R1")])
    check_equal_budgets([search("dgl"), search("lora", "msrvtt", "train.epochs=4")])
    assert "NOTE: on msrvtt the methods train for different epochs (dgl 2, lora 4)" in capsys.readouterr().out


@pytest.mark.parametrize("empty", ["methods=[]", "datasets=[]"])
def test_an_empty_matrix_list_is_an_error_not_everything(empty):
    with pytest.raises(ConfigError, match="expected a non-empty list"):
        plan_searches([empty])


def test_a_search_record_is_attached_only_to_a_finished_run_of_its_own_config(tiny_msrvtt, tmp_path):
    """The variant ignores train.*, so a run of another rate shares the folder: before, the record was
    written onto whatever finished result sat there, outside its lock."""
    from vtrbench.benchmark.config import resolve_config, run_dir
    from vtrbench.benchmark.leaderboard import attach_tuning
    from vtrbench.benchmark.runner import execute

    ran = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="linear_probe",
                                            **{"train.lr": 0.01, "train.epochs": 1}))
    execute(ran)
    result_file = run_dir(ran) / "result.json"
    before = result_file.read_bytes()
    other_rate = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="linear_probe",
                                                   **{"train.lr": 0.1, "train.epochs": 1}))
    assert run_dir(other_rate) == run_dir(ran)
    attach_tuning(other_rate, {"chosen": {"settings": {"train.lr": 0.1}}})
    assert result_file.read_bytes() == before  # another config's result: left as it is
    attach_tuning(ran, {"chosen": {"settings": {"train.lr": 0.01}}})
    assert json.loads(result_file.read_text())["tuning"] == {"chosen": {"settings": {"train.lr": 0.01}}}
    assert not (run_dir(ran) / "run.lock").exists()  # the lock it took is gone


def test_true_or_false_is_never_at_the_edge_of_a_range():
    # found in review: a [true, false] choice was flagged "the top of its range [False, True]"
    from vtrbench.benchmark.tuning import at_edge

    config = resolve_config(["method=bitfit", "tune.space=[{key: train.val_curve, choices: [true, false]}, "
                                              "{key: train.lr, choices: [0.01, 0.1]}]", "tune.trials=4"])
    assert at_edge(config, {"train.val_curve": True, "train.lr": 0.05}) == []
    assert at_edge(config, {"train.val_curve": True, "train.lr": 0.1}) == ["train.lr=0.1 is the top of its range "
                                                                          "[0.01, 0.1]"]


def test_a_searchs_own_settings_are_named_beside_its_rule():
    """Found in review: a search made with dgl.latent=transformer train.epochs=6 printed a rule setting only the
    rate, which pasted into a preset gave that rate to the default DGL at 2 epochs, without a word."""
    from vtrbench.benchmark.tuning import settings_beyond_rule

    search = plan_searches(["method=dgl", "dataset=msrvtt", "dgl.latent=transformer", "train.epochs=6", "seed=1",
                            "output.runs_dir=/tmp/somewhere", "tune.metric=t2v.R1"])[0]
    assert settings_beyond_rule([*search.overrides, "msrvtt.root=/data"]) == ["dgl.latent=transformer",
                                                                              "train.epochs=6"]
