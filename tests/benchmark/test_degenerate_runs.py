"""A diverged or collapsed model is never ranked: a non-finite loss or score ends the run `diverged`, scores
tied across most candidates make it `degenerate`; searches never choose either, leaderboards go on and list
them, and learning rates that no run can mean are refused before anything trains."""

from __future__ import annotations

import json

import pytest
import torch

from tests.benchmark.conftest import tiny_run_overrides
from tests.benchmark.test_tuning import tune_overrides
from vtrbench.benchmark import runner
from vtrbench.benchmark.cli import main
from vtrbench.benchmark.config import ConfigError, resolve_config, run_dir
from vtrbench.benchmark.tuning import plan_searches
from vtrbench.schema import RESULT_FILE


def collapse_scores(monkeypatch, value: float = 0.0, when=lambda method: True) -> None:
    """Every score the same `value` (NaN: a model that diverged) where `when(method)` holds."""
    real = runner.score_matrix

    def scores(method, text, video, mask, device, *args, **kwargs):
        out = real(method, text, video, mask, device, *args, **kwargs)
        return torch.full_like(out, value) if when(method) else out

    monkeypatch.setattr(runner, "score_matrix", scores)


def read(config) -> dict:
    return json.loads((run_dir(config) / RESULT_FILE).read_text())


@pytest.mark.parametrize("lr", ["inf", "nan", "-1", "0"])
def test_a_learning_rate_must_be_finite_and_positive(lr):
    with pytest.raises(ConfigError, match=f"train.lr={lr if lr not in ('-1', '0') else float(lr)}: expected a "
                                          f"finite number > 0"):
        resolve_config([f"train.lr={lr}"])


@pytest.mark.parametrize("space", ["[{key: train.lr, choices: [0.1, .nan]}]", "[{key: train.lr, choices: [0.1, -1]}]",
                                   "[{key: train.lr, log_range: [0.1, .inf]}]"])
def test_a_search_space_is_checked_before_its_first_trial(space):
    # given on the command line, the space is said to come from there (not from linear_probe.yaml)
    with pytest.raises(ConfigError, match="^tune.space on the command line: .*(finite number > 0|expected finite "
                                          "numbers)"):
        plan_searches(["method=linear_probe", "tune.trials=2", f"tune.space={space}"])


def test_a_non_finite_loss_ends_the_run_diverged(tiny_msrvtt, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner.Run, "step_loss", lambda self, model, batch: torch.tensor(float("nan"),
                                                                                          requires_grad=True))
    overrides = tiny_run_overrides(tiny_msrvtt, tmp_path / "runs")
    assert main(["run", *overrides]) == 2
    assert "the training loss is nan at step 1 (epoch 1): training diverged" in capsys.readouterr().err
    assert read(resolve_config(overrides))["status"] == "diverged"


def test_non_finite_scores_end_the_run_diverged_and_the_leaderboard_goes_on(tiny_msrvtt, tmp_path, monkeypatch,
                                                                              capsys):
    collapse_scores(monkeypatch, float("nan"), when=lambda method: type(method).__name__ == "ZeroShot")
    runs, reports = tmp_path / "runs", tmp_path / "reports"
    overrides = [o for o in tiny_run_overrides(tiny_msrvtt, runs, method="zero_shot") if not o.startswith("method=")]
    assert main(["leaderboard", "--quiet", "methods=[zero_shot,linear_probe]", "datasets=[msrvtt]", "train.epochs=1",
                 f"output.reports_dir={reports}", *overrides]) == 1
    out = capsys.readouterr().out
    assert "zero_shot seed0: DIVERGED: DivergedError: val split: the similarity matrix holds 320 non-finite" in out
    assert "linear_probe seed0: T2V R@1" in out  # the next run went on
    markdown = (reports / "report.md").read_text()
    not_ranked = markdown.split("## Runs not ranked", 1)[1]
    assert "zero_shot" in not_ranked and "diverged" in not_ranked
    assert "| `zero_shot`" not in markdown.split("## Runs not ranked", 1)[0].split("## msrvtt", 1)[1]


def test_collapsed_scores_are_degenerate_recorded_reused_and_never_ranked(tiny_msrvtt, tmp_path, monkeypatch):
    collapse_scores(monkeypatch, 0.5)
    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot"))
    result = runner.execute(config)
    assert result["status"] == "degenerate" and result["metrics"]["t2v"]["R1"] == 100.0
    assert result["ties"]["t2v"] == {"tied_queries": 8, "collapsed_queries": 8, "queries": 8}
    assert "8 of 8 queries have their target tied" in result["reason"] and read(config)["status"] == "degenerate"
    # a complete result: reused for the same config, and a later failure never replaces it
    assert runner.execute_or_reuse(config)[1] is False
    runner.record_failure(config, RuntimeError("late"))
    assert read(config)["status"] == "degenerate"
    from vtrbench.reports import write_report

    paths = write_report(tmp_path / "runs", tmp_path / "report", resamples=10)
    runs_csv = paths["csv:runs"].read_text()
    assert "degenerate" in runs_csv
    assert "8 of 8 queries" in paths["markdown"].read_text().split("## Runs not ranked", 1)[1]


def test_a_finished_result_records_its_ties(tiny_msrvtt, tmp_path):
    result = runner.execute(resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot")))
    assert result["status"] == "finished" and set(result["ties"]) == {"t2v", "v2t", "degenerate", "chance_z"}
    assert result["ties"]["t2v"]["queries"] == 8 and not result["ties"]["degenerate"]


def test_a_model_that_ranks_at_chance_on_a_pretrained_backbone_is_degenerate(tiny_msrvtt, tmp_path, monkeypatch):
    """Distinct scores that rank like a random ordering (a training that collapsed, or never left an
    initialisation that ranks at random) are no result when the backbone knew something; on a random backbone
    the same ranking is the true result."""
    from safetensors.torch import save_file

    from vtrbench.methods.backbone import untrained_model
    from vtrbench.offline.tiny_clip import OFFLINE_MODEL_NAME, register_offline_config

    register_offline_config()
    checkpoint = tmp_path / "weights.safetensors"  # the backbone as a file: the runner cannot tell it knows nothing
    save_file(untrained_model(OFFLINE_MODEL_NAME).state_dict(), str(checkpoint))
    rng = torch.Generator().manual_seed(0)
    monkeypatch.setattr(runner, "score_matrix", lambda method, text, video, *args, **kwargs: torch.rand(
        text.shape[0], video.shape[0], generator=rng))
    on_file = resolve_config([*tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot"),
                              f"backbone.pretrained={checkpoint}"])
    result = runner.execute(on_file)
    assert result["status"] == "degenerate" and result["reason"].startswith("ranks at chance")
    assert read(on_file)["status"] == "degenerate"
    on_random = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "random_runs", method="zero_shot"))
    assert runner.execute(on_random)["status"] == "finished"


def test_a_search_never_chooses_a_degenerate_or_diverged_trial(tiny_msrvtt, tmp_path, monkeypatch, capsys):
    lrs = []
    real_train = runner.Run.train

    def train(self, split, curve=None):
        lrs.append(self.config.train.lr)
        return real_train(self, split, curve)

    monkeypatch.setattr(runner.Run, "train", train)
    # the larger rate collapses its val scores (a trial scored 100 would otherwise win)
    collapse_scores(monkeypatch, 0.0, when=lambda method: lrs and lrs[-1] == 0.1)
    runs = tmp_path / "runs"
    assert main(["tune", "--quiet", *tune_overrides(tiny_msrvtt, runs, **{"train.val_curve": "false"})]) == 0
    out = capsys.readouterr().out
    assert "trial 2/2 train.lr=0.1: val rsum 600.0 ( DEGENERATE, never chosen" in out
    record = json.loads((runs / "msrvtt/vtrbench-tiny/linear_probe/tuning/seed0/tuning.json").read_text())
    assert record["chosen"]["settings"] == {"train.lr": 0.0001}
    assert [t["status"] for t in record["trials"]] == ["finished", "degenerate"]


@pytest.fixture
def test_clip_in_val(tiny_msrvtt, tmp_path):
    """A copy of the tiny MSR-VTT whose val file also lists the first test clip."""
    import csv
    import shutil

    root = shutil.copytree(tiny_msrvtt, tmp_path / "leaky")
    with (root / "MSRVTT_JSFUSION_test.csv").open(newline="") as handle:
        leaked = next(csv.DictReader(handle))["video_id"]
    with (root / "MSRVTT_val.full.csv").open("a") as handle:
        handle.write(f"{leaked}\n")
    with (root / "MSRVTT_train.9k.csv").open("a") as handle:
        handle.write(f"{leaked}\n")
    return root, leaked


@pytest.mark.parametrize("command", ["run", "tune"])
def test_runs_and_searches_refuse_splits_that_share_clips(test_clip_in_val, tmp_path, capsys, command):
    root, leaked = test_clip_in_val
    overrides = tune_overrides(root, tmp_path / "runs") if command == "tune" \
        else tiny_run_overrides(root, tmp_path / "runs")
    assert main([command, *overrides]) != 0
    assert f"the val and test splits share 1 clip(s) ({leaked})" in capsys.readouterr().err
    assert not list((tmp_path / "runs").rglob("tuned.safetensors"))  # nothing was trained
