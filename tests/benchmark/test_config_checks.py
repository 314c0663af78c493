"""Config values that would give a wrong result or write outside output.runs_dir are one-line errors."""

import pytest

from tests.benchmark.conftest import tiny_run_overrides
from vtrbench.benchmark.cli import main
from vtrbench.benchmark.config import ConfigError, resolve_config, run_dir
from vtrbench.benchmark.leaderboard import plan


@pytest.mark.parametrize(
    "override, key",
    [
        ("variant=../../x", "variant"),
        ("variant=/tmp/x", "variant"),
        ("variant=.hidden", "variant"),
        ("backbone.name=..", "backbone.name"),
    ],
)
def test_names_that_become_folders_must_be_plain(override, key):
    with pytest.raises(ConfigError, match=f"^{key}="):
        resolve_config([override])


def test_a_hostile_variant_writes_nothing_outside_runs_dir(tmp_path, capsys):
    runs = tmp_path / "deep" / "runs"
    code = main(["run", "method=zero_shot", f"output.runs_dir={runs}", "variant=../../../escaped"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "variant='../../../escaped'" in err
    assert not any(tmp_path.rglob("*escaped*")) and not any(tmp_path.rglob("result.json"))


def test_derived_and_hub_names_stay_valid():
    lora = resolve_config(["method=lora", "lora.targets=[attn,mlp.c_fc]"])
    assert lora.variant == "targets-attn-mlp.c_fc"
    assert resolve_config(["method=dgl", "dgl.latent=transformer"]).variant == "latent-transformer"
    hub = resolve_config(["backbone.name=hf-hub:timm/ViT-B-16-SigLIP", "backbone.pretrained=random"])
    assert run_dir(hub).parts[-3] == "hf-hub:timm-ViT-B-16-SigLIP"


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epochs=0", "train.epochs=0: expected an integer >= 1"),
        ("train.epochs=-1", "train.epochs=-1: expected an integer >= 1"),
        ("train.lr=0", "train.lr=0.0: expected a finite number > 0"),
        ("data.batch_size=0", "data.batch_size=0: expected an integer >= 2"),
        ("data.batch_size=1", "data.batch_size=1: expected an integer >= 2"),
        ("data.eval_batch_size=0", "data.eval_batch_size=0"),
        ("data.num_frames=0", "data.num_frames=0"),
        ("train.warmup=2", "train.warmup=2.0"),
        ("seed=-1", "seed=-1"),
    ],
)
def test_values_a_run_cannot_mean(override, message):
    with pytest.raises(ConfigError) as raised:
        resolve_config(["method=full_finetune", override])
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    "matrix, message",
    [
        ("methods=[]", "methods=[]: expected a non-empty list"),
        ("datasets=[]", "datasets=[]: expected a non-empty list"),
        ("seeds=[]", "seeds=[]: expected a non-empty list"),
        ("seeds=[a]", "seeds: 'a' is not an integer"),
        ("seeds=[true]", "seeds: True is not an integer"),
        ("methods=dgl", "methods='dgl': expected a non-empty list"),
        ("seeds=[1,1]", "seeds: 1 repeated"),
        ("methods=[dgl,dgl]", "methods: dgl repeated"),
    ],
)
def test_leaderboard_matrix_lists(matrix, message):
    with pytest.raises(ConfigError) as raised:
        plan([matrix, "datasets=[msrvtt]"] if not matrix.startswith("datasets") else [matrix])
    assert str(raised.value).startswith(message)


def test_a_config_error_is_one_line_naming_the_key(capsys):
    assert main(["leaderboard", "seeds=[a]"]) == 2
    assert capsys.readouterr().err == "vtrbench leaderboard: error: seeds: 'a' is not an integer (seeds=[0,1,2])\n"
    assert main(["run", "method=separate_prompt", "separate_prompt.nope=3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "separate_prompt.nope" in err


def test_a_method_that_took_no_step_writes_no_result(tiny_msrvtt, tmp_path, monkeypatch):
    from vtrbench.benchmark import runner

    config = resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="linear_probe"))
    monkeypatch.setattr(runner.Run, "train", lambda self, split, curve=None: {
        "train_s": 0.0, "clips_seen": 0, "failed_decodes": 24, "steps": 0, "epochs": 1, "val_curve": [],
        "best_val": None})
    with pytest.raises(RuntimeError, match="no training step ran"):
        runner.execute(config)
    assert not (run_dir(config) / "result.json").exists()
