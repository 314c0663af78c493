"""The val split in a run: held out of training, its ids saved, measured before training and after every
epoch (the learning curve), and best_val selection on it."""

import json

import pytest
import torch

from tests.benchmark.conftest import tiny_run_overrides
from vtrbench.benchmark import validation
from vtrbench.benchmark.config import ConfigError, dataset_options, resolve_config, run_dir
from vtrbench.benchmark.counting import tuned_parameters
from vtrbench.benchmark.runner import execute
from vtrbench.registry import DATASETS
from vtrbench.schema import RESULT_FILE, VAL_IDS_FILE, WEIGHTS_FILE


def test_a_run_holds_val_out_saves_its_ids_and_records_the_curve(tiny_msrvtt, tmp_path):
    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", **{"train.epochs": 2}))
    result = execute(config)
    dataset = DATASETS.get("msrvtt")(dataset_options(config))
    val_ids = [clip.video_id for clip in dataset.load("val").clips]
    assert len(val_ids) == 8
    assert (run_dir(config) / VAL_IDS_FILE).read_text().split() == val_ids
    assert not set(val_ids) & {clip.video_id for clip in dataset.load("train").clips}
    assert result["val"]["clips"] == 8 and "MSRVTT_val.full.csv" in result["val"]["source"]

    curve = result["val_curve"]
    steps_per_epoch = result["timing"]["steps"] // 2
    assert [(p["epoch"], p["step"]) for p in curve] == [(0, 0), (1, steps_per_epoch), (2, 2 * steps_per_epoch)]
    for point in curve:
        assert set(point["metrics"]) == {"t2v", "v2t", "rsum", "ties"} and "R1" in point["metrics"]["t2v"]
    assert curve[0]["metrics"] != curve[-1]["metrics"]  # measured, not copied
    assert json.loads((run_dir(config) / RESULT_FILE).read_text())["val_curve"] == curve


def test_a_method_that_trains_nothing_has_one_point_and_the_curve_can_be_turned_off(tiny_msrvtt, tmp_path):
    zero_shot = execute(resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "a", method="zero_shot")))
    assert [(p["epoch"], p["step"]) for p in zero_shot["val_curve"]] == [(0, 0)]
    off = execute(resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "b", method="zero_shot",
                                                    **{"train.val_curve": "false"})))
    assert off["val_curve"] == [] and off["val"]["clips"] == 8


def test_best_val_tests_the_best_epochs_weights_and_names_it(tiny_msrvtt, tmp_path, monkeypatch):
    scores = iter([1.0, 5.0, 2.0, 3.0])  # epochs 0..3 on val: epoch 1 is the best
    monkeypatch.setattr(validation, "metric_value", lambda metrics, name: next(scores))
    snapshots = {}
    measure = validation.ValidationCurve.measure

    def spy(self, stats, epoch):
        measure(self, stats, epoch)
        snapshots[epoch] = {k: v.detach().clone() for k, v in tuned_parameters(self.run.method).items()}

    monkeypatch.setattr(validation.ValidationCurve, "measure", spy)
    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", **{
        "train.epochs": 3, "train.select": "best_val", "train.lr": 0.01}))
    result = execute(config)
    selection = result["model_selection"]
    assert selection["rule"] == "best_val" and selection["metric"] == "rsum"
    assert selection["epoch"] == 1 and selection["step"] == result["val_curve"][1]["step"]
    assert selection["epochs_trained"] == 3
    from safetensors.torch import load_file

    saved = load_file(str(run_dir(config) / WEIGHTS_FILE))
    assert all(torch.equal(saved[k], snapshots[1][k]) for k in saved)
    assert not all(torch.equal(saved[k], snapshots[3][k]) for k in saved)
    assert not (run_dir(config) / validation.BEST_VAL_WEIGHTS_FILE).exists()


def test_selection_rules_and_metrics_are_checked():
    with pytest.raises(ConfigError, match="train.select='best'"):
        resolve_config(["train.select=best"])
    with pytest.raises(ConfigError, match="tune.metric='R1'"):
        resolve_config(["tune.metric=R1"])


def test_ranks_are_better_when_lower():
    assert validation.is_better("t2v.MdR", 2.0, 3.0) and not validation.is_better("rsum", 2.0, 3.0)
    assert not validation.is_better("rsum", 3.0, 3.0)  # a tie keeps the earlier epoch
    assert validation.metric_value({"t2v": {"R1": 4.0}, "rsum": 9.0}, "t2v.R1") == 4.0
