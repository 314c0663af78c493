"""Every user error is one line on stderr that names the key or the file, and exit status 2."""

import pytest

from tests.benchmark.conftest import tiny_run_overrides
from vtrbench.benchmark.cli import main


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("pretrained", ["/nope.pt", "offline-typo"])
def test_a_missing_checkpoint_of_the_default_backbone(tiny_msrvtt, tmp_path, capsys, pretrained):
    overrides = tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot")
    assert main(["run", *overrides, f"backbone.pretrained={pretrained}"]) == 2
    err = one_error_line(capsys)
    assert f"backbone.pretrained: '{pretrained}' is not a checkpoint file" in err


def test_a_file_that_is_no_checkpoint(tiny_msrvtt, tmp_path, capsys):
    junk = tmp_path / "weights.pt"
    junk.write_bytes(b"not a checkpoint at all" * 10)
    overrides = tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot")
    assert main(["run", *overrides, f"backbone.pretrained={junk}"]) == 2
    assert f"backbone.pretrained: {junk}: cannot load it as vtrbench-tiny weights" in one_error_line(capsys)


def test_a_checkpoint_of_another_model_names_the_keys_it_lacks(tiny_msrvtt, tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"head.weight": torch.zeros(2, 2)}, str(other))
    overrides = tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot")
    assert main(["run", *overrides, f"backbone.pretrained={other}"]) == 2
    # before, only torch's first line: "(Error(s) in loading state_dict for CLIP:)"
    assert 'Missing key(s) in state_dict: "positional_embedding"' in one_error_line(capsys)


def test_a_batch_size_of_zero(tiny_msrvtt, tmp_path, capsys):
    assert main(["run", *tiny_run_overrides(tiny_msrvtt, tmp_path / "runs"), "data.batch_size=0"]) == 2
    assert "data.batch_size=0: expected an integer >= 2" in one_error_line(capsys)


def test_a_result_file_that_is_not_utf8(tmp_path, capsys):
    bad = tmp_path / "runs" / "msrvtt" / "vtrbench-tiny" / "zero_shot" / "seed0" / "result.json"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b'{"schema": 1, "method": "caf\xe9"}')
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 2
    err = one_error_line(capsys)
    assert f"{bad}: not UTF-8 text" in err


def test_a_result_file_that_is_not_an_object(tiny_msrvtt, tmp_path, capsys):
    """A run folder's result.json holding a list: before, a bare "'list' object has no attribute 'get'"."""
    from vtrbench.benchmark.config import resolve_config, run_dir

    overrides = tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot")
    bad = run_dir(resolve_config(overrides)) / "result.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("[1, 2]")
    assert main(["run", *overrides]) == 2
    assert f"{bad}: expected a JSON object (a run's result), got list" in one_error_line(capsys)
    assert bad.read_text() == "[1, 2]"  # said, not overwritten


@pytest.mark.parametrize("damage, expected", [
    (lambda r: r.pop("params"), "missing key 'params.tuned'"),
    (lambda r: r["metrics"]["t2v"].update(R1="high"), "'metrics.t2v.R1' must be a number, got 'high'"),
    (lambda r: r.update(timing=[1]), "'timing' must be an object"),
])
def test_a_finished_result_with_a_missing_or_mistyped_field_is_named(tiny_msrvtt, tmp_path, capsys, damage,
                                                                      expected):
    """A finished result the run would reuse: before, `run` ended on a bare KeyError: 'params'."""
    import json

    from omegaconf import OmegaConf

    from vtrbench.benchmark.config import resolve_config, run_dir
    from vtrbench.ranking import metrics_from_ranks
    from vtrbench.schema import RunResult

    overrides = tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot")
    config = resolve_config(overrides)
    ranks = {"t2v": [1, 2, 1, 3], "v2t": [1, 1, 2, 4]}
    record = RunResult(status="finished", method="zero_shot", variant="", dataset="msrvtt", split="test",
                       backbone=config.backbone.name, pretrained="random", seed=0,
                       metrics=metrics_from_ranks(ranks), ranks=ranks, params={"tuned": 0, "tuned_pct": 0.0},
                       timing={"steps": 0}, config=OmegaConf.to_container(config, resolve=True)).to_json()
    damage(record)
    path = run_dir(config) / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    assert main(["run", *overrides]) == 2
    assert f"{path}: {expected}" in one_error_line(capsys)


@pytest.mark.parametrize("written", ["under the old tie rule", "with metrics its ranks do not give"])
def test_a_reused_result_is_judged_by_todays_rules(tiny_msrvtt, tmp_path, capsys, written):
    """Found in review: a file the report calls degenerate (700 of 1,000 queries tied, none collapsed, written
    as finished by the old rule) was reused as finished, so a search could choose it."""
    import json

    import numpy as np
    from omegaconf import OmegaConf

    from vtrbench.benchmark.config import resolve_config, run_dir
    from vtrbench.ranking import metrics_from_ranks
    from vtrbench.schema import RunResult

    overrides = tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot")
    config = resolve_config(overrides)
    ranks = {d: np.random.default_rng(i).integers(1, 30, 1000).tolist() for i, d in enumerate(("t2v", "v2t"))}
    metrics = metrics_from_ranks(ranks)
    ties = {"t2v": {"tied_queries": 700, "collapsed_queries": 0, "queries": 1000},
            "v2t": {"tied_queries": 0, "collapsed_queries": 0, "queries": 1000}, "degenerate": False}
    if written != "under the old tie rule":
        ties["t2v"]["tied_queries"] = 0
        metrics["t2v"]["R1"] += 5.0
    record = RunResult(status="finished", method="zero_shot", variant="", dataset="msrvtt", split="test",
                       backbone=config.backbone.name, pretrained="random", seed=0, metrics=metrics, ranks=ranks,
                       ties=ties, params={"tuned": 0, "tuned_pct": 0.0}, timing={"steps": 0},
                       config=OmegaConf.to_container(config, resolve=True)).to_json()
    path = run_dir(config) / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    if written == "under the old tie rule":
        assert main(["run", *overrides]) == 0
        assert json.loads(capsys.readouterr().out)["status"] == "degenerate"
    else:
        assert main(["run", *overrides]) == 2
        assert "its metrics disagree with its per-query ranks" in one_error_line(capsys)
    assert json.loads(path.read_text()) == record  # kept as written


def test_open_clip_weights_that_cannot_be_downloaded(tiny_msrvtt, tmp_path, capsys, monkeypatch):
    import open_clip

    def offline(*args, **kwargs):  # what open_clip raises without internet (after huggingface_hub's retries)
        raise RuntimeError("Failed to download weights for tag 'openai': Failed to download file "
                           "(open_clip_pytorch_model.bin) for timm/vit_base_patch32_clip_224.openai.")

    monkeypatch.setattr(open_clip, "create_model", offline)
    overrides = tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot")
    assert main(["run", *overrides, "backbone.name=ViT-B-32", "backbone.pretrained=openai"]) == 2
    err = one_error_line(capsys)
    assert "backbone.pretrained=openai: the weights of open_clip's ViT-B-32 tag 'openai' could not be downloaded" in err
    assert "pass its path, e.g. backbone.pretrained=/weights/" in err


@pytest.mark.parametrize("damage", ["empty test csv", "header only", "no test video"])
def test_a_test_split_with_no_usable_clip(tiny_msrvtt, tmp_path, capsys, damage):
    import csv
    import shutil

    root = shutil.copytree(tiny_msrvtt, tmp_path / "msrvtt")
    test_csv = root / "MSRVTT_JSFUSION_test.csv"
    if damage == "no test video":
        with test_csv.open(newline="") as handle:
            for row in csv.DictReader(handle):
                (root / "videos" / f"{row['video_id']}.mp4").unlink()
    else:
        test_csv.write_text("" if damage == "empty test csv" else "key,vid_key,video_id,sentence\n")
    assert main(["run", *tiny_run_overrides(root, tmp_path / "runs", method="zero_shot")]) == 2
    err = one_error_line(capsys)
    assert str(test_csv) in err or f"msrvtt test split: no usable clip under {root}" in err, err


def test_a_reader_that_leaves_early_gets_no_error():
    """`vtrbench list backbones | head -2`: the pipe closes under the listing; before, this printed
    "vtrbench list: error: [Errno 32] Broken pipe" on stderr."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader has left before the first line: every write fails, deterministically
    try:
        listing = subprocess.run([sys.executable, "-m", "vtrbench", "list", "backbones"], stdout=write_end,
                                 stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write_end)
    assert listing.returncode == 141 and listing.stderr.decode() == "", listing.stderr.decode()


@pytest.mark.parametrize("command", ["run", "leaderboard"])
def test_a_dataset_root_that_is_no_folder_is_said_before_the_backbone_is_built(tmp_path, capsys, monkeypatch,
                                                                               command):
    """Before: `vtrbench run ... msrvtt.root=/typo` first pretrained the offline backbone (six to eight
    minutes on a fresh machine), then failed on the first annotation file. (The leaderboard and tune said
    it at once already: their plan reads the split files.)"""
    from vtrbench.benchmark import matrix, runner

    def no_backbone(*args, **kwargs):
        raise AssertionError("the backbone was built before the dataset root was checked")

    monkeypatch.setattr(runner, "load_backbone", no_backbone)
    monkeypatch.setattr(matrix, "load_backbone", no_backbone)
    overrides = ["method=zero_shot", "dataset=msrvtt", f"msrvtt.root={tmp_path / 'typo'}",
                 f"output.runs_dir={tmp_path / 'runs'}", "seed=0", "quiet=true"]
    if command == "leaderboard":
        overrides = ["methods=[zero_shot]", "datasets=[msrvtt]", *overrides[2:]]
    code = main([command, *overrides])
    err = capsys.readouterr().err
    assert code == 2 and f"the dataset root {tmp_path / 'typo'} is not a folder (set msrvtt.root" in err, err


@pytest.mark.parametrize("argv, expected", [
    # found in review: each was a traceback-free but misleading or late error
    (["run", "method=dgl", "dataset=msrvtt", "dgl.latent=bogus"], "dgl.latent='bogus': expected one of linear, "
                                                                   "transformer"),  # before: after pretraining
    (["run", "method=dgl", "--lr", "0.1"], "'--lr': not an option of this command; settings are written key=value"),
    (["leaderboard", "methods=[dgl,", "lora]"], "'methods=[dgl,' 'lora]': a list split at a space by the shell"),
    (["data", "check", "msrvtt", "msrvtt.root=~"], "YAML reads '~' as None, not a folder; quote it"),
    (["data", "check", "msrvtt", "msrvtt.root=yes"], "YAML reads 'yes' as True, not a folder"),
    (["report", "no/such/folder"], "no/such/folder: no such folder"),
    (["run", "method=DGL"], "unknown method 'DGL'. Did you mean 'dgl'?"),
])
def test_common_mistakes_get_one_line_that_says_what_to_do(argv, expected, capsys):
    from vtrbench.benchmark.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1 and "Traceback" not in err


def test_settings_are_optional_where_a_command_needs_none(capsys):
    from vtrbench.benchmark.cli import main

    with pytest.raises(SystemExit):
        main(["params"])
    [error] = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert error.endswith("the following arguments are required: method")  # before: "method, overrides"
