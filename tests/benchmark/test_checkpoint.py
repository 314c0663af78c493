"""The resume state: no pickle is ever read back, it belongs to one config, and resuming is exact."""

import pickle
import stat

import pytest
import torch
from safetensors.torch import load_file

from tests.benchmark.conftest import tiny_run_overrides
from vtrbench.benchmark import runner
from vtrbench.benchmark.config import resolve_config, run_dir
from vtrbench.benchmark.results import CHECKPOINT_FILE
from vtrbench.schema import RESULT_FILE, WEIGHTS_FILE

LEGACY_CHECKPOINT_FILE = "last_epoch.pt"  # the pickle checkpoint of vtrbench before the resume state


class Planted:
    """Unpickling this creates `marker`: what a crafted checkpoint in a downloaded runs dir could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class Interrupted(Exception):
    pass


def interrupted_after_first_epoch(config, monkeypatch):
    """Train `config` until its first epoch checkpoint is written, then stop as a killed run would."""
    save = runner.save_checkpoint

    def save_then_stop(*args, **kwargs):
        save(*args, **kwargs)
        raise Interrupted

    monkeypatch.setattr(runner, "save_checkpoint", save_then_stop)
    with pytest.raises(Interrupted):
        runner.execute(config)
    monkeypatch.setattr(runner, "save_checkpoint", save)
    assert (run_dir(config) / CHECKPOINT_FILE).is_file()


def test_a_planted_pickle_checkpoint_is_never_loaded(tiny_msrvtt, tmp_path, capsys):
    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="linear_probe",
                                               **{"train.epochs": 1}))
    marker = tmp_path / "code-ran"
    out = run_dir(config)
    out.mkdir(parents=True)
    torch.save({"epoch": 0, "payload": Planted(marker)}, out / LEGACY_CHECKPOINT_FILE)
    pickle.loads(pickle.dumps(Planted(tmp_path / "probe")))  # the payload does run when unpickled
    assert (tmp_path / "probe").exists()

    try:
        result = runner.execute(config)
    finally:
        assert not marker.exists(), "the planted pickle was unpickled: its code ran"
    assert "not loaded (a pickle can run code" in capsys.readouterr().err
    assert result["status"] == "finished" and not (out / LEGACY_CHECKPOINT_FILE).exists()


# linear_probe: a frozen trunk keeps it quick (test_leaderboard resumes full_finetune after a real
# interruption); adaptformer: dropout (0.1), whose masks after a resume were drawn from another random stream
# until the resume state held the generators' states (found in review: its metrics and weights differed)
@pytest.mark.parametrize("method", ["linear_probe", "adaptformer"])
def test_resuming_after_an_interruption_gives_the_uninterrupted_weights(tiny_msrvtt, tmp_path, monkeypatch,
                                                                         capsys, method):
    settings = {"train.val_curve": True}
    whole = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "whole", method=method, **settings))
    broken = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "broken", method=method, **settings))
    expected = runner.execute(whole)
    interrupted_after_first_epoch(broken, monkeypatch)
    resumed = runner.execute(broken)
    assert "after epoch 1" in capsys.readouterr().err
    assert resumed["timing"]["steps"] == expected["timing"]["steps"]
    assert resumed["metrics"] == expected["metrics"] and resumed["ranks"] == expected["ranks"]
    assert [p["metrics"] for p in resumed["val_curve"]] == [p["metrics"] for p in expected["val_curve"]]
    reference, weights = load_file(run_dir(whole) / WEIGHTS_FILE), load_file(run_dir(broken) / WEIGHTS_FILE)
    assert reference.keys() == weights.keys()
    assert all(torch.equal(reference[name], weights[name]) for name in reference)


def test_the_resume_state_is_safetensors_with_its_config(tiny_msrvtt, tmp_path, monkeypatch):
    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="linear_probe"))
    interrupted_after_first_epoch(config, monkeypatch)
    from vtrbench.benchmark.results import load_checkpoint

    path = run_dir(config) / CHECKPOINT_FILE
    assert path.read_bytes()[:2] != b"PK" and b"pickle" not in path.read_bytes()[:4096]
    tuned, optimizer_state, state = load_checkpoint(path)
    assert state["epoch"] == 0 and state["config"]["train"]["lr"] == config.train.lr
    assert optimizer_state["state"] and all("exp_avg" in values for values in optimizer_state["state"].values())
    assert tuned


def test_an_unreadable_resume_state_is_set_aside(tiny_msrvtt, tmp_path, capsys):
    from vtrbench.benchmark.results import CheckpointError, load_checkpoint

    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="linear_probe",
                                               **{"train.epochs": 1}))
    path = run_dir(config) / CHECKPOINT_FILE
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match=str(path)):
        load_checkpoint(path)
    result = runner.execute(config)
    err = capsys.readouterr().err
    assert "cannot be read as a resume state" in err and "starting afresh" in err
    assert result["status"] == "finished" and (run_dir(config) / RESULT_FILE).is_file()


def test_result_files_follow_the_umask(tiny_msrvtt, tmp_path):
    import os

    previous = os.umask(0o027)
    try:
        config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="linear_probe",
                                                   **{"train.epochs": 1}))
        runner.execute(config)
    finally:
        os.umask(previous)
    for name in (RESULT_FILE, WEIGHTS_FILE, "config.yaml"):
        assert stat.S_IMODE((run_dir(config) / name).stat().st_mode) == 0o640, name


def test_save_and_load_round_trip_the_optimizer(tmp_path):
    from omegaconf import OmegaConf

    from vtrbench.benchmark.results import load_checkpoint, save_checkpoint

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    optimizer = torch.optim.AdamW([{"params": model[0].parameters(), "lr": 1e-2},
                                   {"params": model[1].parameters(), "lr": 1e-3, "weight_decay": 0.0}])
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    # a run's resolved config: the state records it and the offline inputs it names
    config = resolve_config(["method=linear_probe"])
    save_checkpoint(tmp_path / "state.safetensors", model, optimizer, {"epoch": 3, "scheduler": {}, "stats": {}},
                    config)
    tuned, optimizer_state, state = load_checkpoint(tmp_path / "state.safetensors")
    fresh = torch.optim.AdamW([{"params": model[0].parameters(), "lr": 0.5},
                               {"params": model[1].parameters(), "lr": 0.5}])
    fresh.load_state_dict(optimizer_state)
    saved, loaded = optimizer.state_dict(), fresh.state_dict()
    assert [g["lr"] for g in loaded["param_groups"]] == [1e-2, 1e-3]
    for index, values in saved["state"].items():
        for key, value in values.items():
            assert torch.equal(loaded["state"][index][key], value), (index, key)
    assert set(tuned) == {name for name, _ in model.named_parameters()}
    assert state["epoch"] == 3 and state["config"] == OmegaConf.to_container(config, resolve=True)
    assert state["inputs"]["backbone"].startswith("vtrbench-tiny-") and state["inputs"]["data"].startswith("msrvtt-")


@pytest.mark.parametrize("change, expected", [
    (lambda s: s.update(epoch="abc"), "the saved state's 'epoch' must be int, got 'abc'"),
    (lambda s: s.update(stats=[1, 2]), "the saved state's 'stats' must be dict"),
    (lambda s: s.update(scheduler="x"), "the saved state's 'scheduler' must be dict"),
    (lambda s: s["optimizer"].update(param_groups="x"), "'param_groups' must be a list of objects"),
])
def test_a_resume_state_with_a_mistyped_field_is_set_aside(tmp_path, change, expected):
    """Found by an audit: each gave a TypeError or AttributeError deep in the resume, and a failed run."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    from vtrbench.benchmark.results import CheckpointError, load_checkpoint, save_checkpoint

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    path = tmp_path / "state.safetensors"
    save_checkpoint(path, model, optimizer, {"epoch": 1, "scheduler": {}, "stats": {}},
                    resolve_config(["method=linear_probe"]))
    with safe_open(str(path), framework="pt") as handle:
        header, tensors = handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}
    state = json.loads(header["state"])
    change(state)
    save_file(tensors, str(path), metadata={**header, "state": json.dumps(state)})
    with pytest.raises(CheckpointError, match=f"{path}: .*{expected}"):
        load_checkpoint(path)


def test_a_resume_state_whose_weights_do_not_fit_is_set_aside(tiny_msrvtt, tmp_path, monkeypatch, capsys):
    """Its own config, but tensors another version of the method wrote: the run starts afresh, as the README
    says, where it had failed with "delete it to start afresh"."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="linear_probe"))
    interrupted_after_first_epoch(config, monkeypatch)
    path = run_dir(config) / CHECKPOINT_FILE
    with safe_open(str(path), framework="pt") as handle:
        header, tensors = handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}
    tuned = next(key for key in tensors if key.startswith("tuned/"))
    tensors[tuned] = torch.zeros(3, 5)
    save_file(tensors, str(path), metadata=header)
    result = runner.execute(config)
    err = capsys.readouterr().err
    assert "do not fit" in err and "starting afresh" in err and "resuming" not in err
    assert result["status"] == "finished" and result["timing"]["epochs"] == config.train.epochs


@pytest.mark.parametrize("damage, expected", [
    (lambda tensors, header: tensors.update({next(k for k in tensors if k.startswith("optimizer/")):
                                             torch.zeros(7, 3)}), "has shape (7, 3)"),
    (lambda tensors, header: header.update(state=header["state"].replace('"params": [0', '"params": [0, 99', 1)),
     "starting afresh"),
])
def test_a_resume_state_whose_optimizer_state_does_not_fit_is_set_aside(tiny_msrvtt, tmp_path, monkeypatch, capsys,
                                                                         damage, expected):
    """Moments of another shape loaded silently (torch checks the counts only) and failed the run at its next
    step; a parameter list of another length raised. Both now start afresh."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="linear_probe"))
    interrupted_after_first_epoch(config, monkeypatch)
    path = run_dir(config) / CHECKPOINT_FILE
    with safe_open(str(path), framework="pt") as handle:
        header, tensors = dict(handle.metadata()), {key: handle.get_tensor(key) for key in handle.keys()}
    damage(tensors, header)
    save_file(tensors, str(path), metadata=header)
    result = runner.execute(config)
    err = capsys.readouterr().err
    assert "optimizer state does not fit" in err and expected in err and "resuming" not in err
    assert result["status"] == "finished" and result["timing"]["epochs"] == config.train.epochs


@pytest.mark.parametrize("change, expected", [
    (lambda state: state.update(scheduler={}), "its schedule holds []"),
    (lambda state: state["scheduler"].update(last_epoch="x"), "its schedule's 'last_epoch' is 'x'"),
    (lambda state: state.update(epoch=-7), "its epoch -7 is not one of this run's 0..1"),
    (lambda state: state.update(epoch=5), "its epoch 5 is not one of this run's 0..1"),
    (lambda state: state["stats"].update(steps="x"), "its stats' 'steps' must be a number >= 0, got 'x'"),
    (lambda state: state["stats"].pop("undecodable"), "its stats lack undecodable"),
    # found in review: these two failed every retry (KeyError, TypeError), and a curve point that is no point
    # was written into result.json, which the next call then refused to reuse
    (lambda state: state["stats"].update(best_val={"epoch": 0}), "its stats' best_val {'epoch': 0} is not a point"),
    (lambda state: state["stats"].update(val_curve=[1]), "its stats' val_curve[0]: must be an object, got 1"),
    # found in review: a state of other libraries resumed, and the result named only the last ones
    (lambda state: state["versions"].update(peft="0.21.0"),
     "it was written with other library versions (peft 0.21.0 ->"),
    # found in review: a state of another offline world (generated data or pretrained backbone) resumed
    (lambda state: state.update(inputs={"data": "msrvtt-0123456789"}),
     "it was computed from other offline inputs (data msrvtt-0123456789, here None)"),
])
def test_a_resume_state_whose_counters_do_not_fit_is_set_aside(tiny_msrvtt, tmp_path, monkeypatch, capsys, change,
                                                                expected):
    """Found in review: an empty schedule failed every retry with a bare KeyError, and a negative epoch trained
    extra epochs. The run starts afresh instead, as for any state that does not fit."""
    import json

    from safetensors import safe_open
    from safetensors.torch import save_file

    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="linear_probe"))
    interrupted_after_first_epoch(config, monkeypatch)
    path = run_dir(config) / CHECKPOINT_FILE
    with safe_open(str(path), framework="pt") as handle:
        header, tensors = dict(handle.metadata()), {key: handle.get_tensor(key) for key in handle.keys()}
    state = json.loads(header["state"])
    change(state)
    save_file(tensors, str(path), metadata={**header, "state": json.dumps(state)})
    result = runner.execute(config)
    err = capsys.readouterr().err
    assert f"{path}: {expected}" in err and "starting afresh" in err and "resuming" not in err
    assert result["status"] == "finished" and result["timing"]["epochs"] == config.train.epochs


def test_best_val_weights_of_another_point_than_the_states_best_start_the_run_afresh(tiny_msrvtt, tmp_path,
                                                                                     monkeypatch, capsys):
    """Found in review: best_val.safetensors is written before the epoch checkpoint; a run killed between the two
    resumed with the state's best point and another point's weights, which it would have tested."""
    from safetensors.torch import load_file, save_file

    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="linear_probe",
                                               **{"train.select": "best_val"}))
    interrupted_after_first_epoch(config, monkeypatch)
    best = run_dir(config) / "best_val.safetensors"
    save_file(load_file(best), str(best), metadata={"epoch": "2", "step": "9"})  # the killed attempt's best
    result = runner.execute(config)
    err = capsys.readouterr().err
    assert "best_val.safetensors holds the weights of epoch 2, not of the best val point" in err
    assert "starting afresh" in err and "resuming" not in err
    assert result["status"] == "finished"
