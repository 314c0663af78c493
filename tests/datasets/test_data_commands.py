"""`vtrbench data check` and `data prepare` on a tiny generated VATEX with a missing and a corrupt video."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from vtrbench.benchmark.cli import main

TRAIN, VAL, TEST = ["ok_1", "gone_1", "broken_1"], ["ok_3"], ["ok_2", "short_2"]


@pytest.fixture
def root(tmp_path: Path, make_video: Callable) -> Path:
    make_video(tmp_path / "videos" / "ok_1.mp4", num_frames=20)
    (tmp_path / "videos" / "broken_1.mp4").write_bytes(b"\x00not a video" * 20)
    make_video(tmp_path / "videos" / "ok_2.avi", num_frames=20)
    make_video(tmp_path / "videos" / "short_2.mkv", num_frames=4)
    make_video(tmp_path / "videos" / "ok_3.mp4", num_frames=20)
    (tmp_path / "train_list.txt").write_text("\n".join(TRAIN))
    (tmp_path / "val_list.txt").write_text("\n".join(VAL))
    (tmp_path / "test_list.txt").write_text("\n".join(TEST) + "\n")
    captions = {video: [f"{video} {k}" for k in range(1 + i)] for i, video in enumerate(TRAIN + TEST + VAL)}
    (tmp_path / "vatex_data.json").write_text(json.dumps(captions))
    return tmp_path


def test_check_lists_missing_corrupt_and_short_clips(root: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "check", "vatex", f"vatex.root={root}", "data.num_frames=8"]) == 0
    out = capsys.readouterr().out
    assert "train: 3 clips, 6 captions (per clip min 1, mean 2.00, max 3)" in out
    assert "missing videos: 1: gone_1" in out
    assert "unreadable videos: 1: broken_1 (cannot open" in out
    assert "usable: 1 of 3 clips" in out
    assert "test: 2 clips, 9 captions (per clip min 4, mean 4.50, max 5)" in out
    assert "shorter than data.num_frames=8 (padded and masked): 1: short_2 (4)" in out
    assert "usable: 2 of 2 clips" in out
    assert "val: val_list.txt (official val file, val_list)" in out
    assert "val: 1 clips, 6 captions" in out


def test_check_prints_the_sizes_after_a_hold_out(root: Path, capsys: pytest.CaptureFixture) -> None:
    main(["data", "check", "vatex", f"vatex.root={root}", "vatex.val_list=null", "vatex.val_fraction=0.34"])
    out = capsys.readouterr().out
    assert "val: seeded hold-out of the train file: val_fraction=0.34, val_seed=0" in out
    assert "train: 2 clips" in out and "val: 1 clips" in out and "test: 2 clips" in out


def test_check_fails_when_splits_share_clips(root: Path, capsys: pytest.CaptureFixture) -> None:
    (root / "val_list.txt").write_text("ok_2\n")  # a test clip used for validation
    assert main(["data", "check", "vatex", f"vatex.root={root}"]) == 1
    assert "val and test share 1 clip(s): ok_2" in capsys.readouterr().out


def test_check_fails_when_a_split_has_no_usable_clip(root: Path, capsys: pytest.CaptureFixture) -> None:
    (root / "test_list.txt").write_text("gone_1\nbroken_1\n")
    assert main(["data", "check", "vatex", f"vatex.root={root}", "--show", "1"]) == 1
    out = capsys.readouterr().out
    assert "UNUSABLE: no usable clip: 0 of 2 clips" in out


def test_check_fails_on_an_annotation_error(root: Path, capsys: pytest.CaptureFixture) -> None:
    (root / "test_list.txt").write_text("ok_2\nnobody_2\n")
    assert main(["data", "check", "vatex", f"vatex.root={root}"]) == 1
    out = capsys.readouterr().out
    assert "test: UNUSABLE:" in out and "test_list.txt, line 2: video 'nobody_2' has no caption" in out


def test_check_names_an_id_list_with_no_ids(root: Path, capsys: pytest.CaptureFixture) -> None:
    (root / "train_list.txt").write_text("\n  \n")
    assert main(["data", "check", "vatex", f"vatex.root={root}"]) == 1
    assert f"train: UNUSABLE: {root / 'train_list.txt'}: no ids: expected one video id per line" in (
        capsys.readouterr().out)


def test_check_says_once_that_the_root_is_not_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "check", "vatex", f"vatex.root={tmp_path / 'nothere'}"]) == 1
    out = capsys.readouterr().out
    assert f"the dataset root {tmp_path / 'nothere'} is not a folder (set vatex.root to the folder of its" in out
    assert "annotation file" not in out


def test_prepare_builds_then_keeps_the_cache(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    command = ["data", "prepare", "vatex", f"vatex.root={root}", "data.frame_cache_fps=4"]
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "(32px, 4 fps, at least 4 frames a clip)" in out
    assert "train: built: 1 clips, 10 frames, 2 not cached" in out and "gone_1: missing video file" in out
    assert "test: built: 2 clips, 14 frames, 0 not cached" in out
    assert "val: built: 1 clips, 10 frames, 0 not cached" in out
    assert main(command) == 0
    assert "train: up to date" in capsys.readouterr().out
    assert main([*command, "data.frame_cache_fps=2", "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "test: built: 2 clips, 9 frames" in out and "train:" not in out


@pytest.mark.parametrize("overrides", [[], ["data.frame_cache_fps=3"]])
def test_prepare_builds_the_cache_a_run_of_the_same_config_reads(
    root: Path, overrides: list[str], capsys: pytest.CaptureFixture
) -> None:
    from vtrbench.benchmark.config import resolve_config
    from vtrbench.datasets.frame_cache import CacheSettings, FrameCache, frame_cache_dir

    assert main(["data", "prepare", "vatex", f"vatex.root={root}", "--split", "test", *overrides]) == 0
    config = resolve_config(["dataset=vatex", f"vatex.root={root}", *overrides])
    assert f"(32px, {config.data.frame_cache_fps:g} fps, at least 4 frames a clip)" in capsys.readouterr().out
    # The settings a run opens (runner.Run.frame_cache): the config's rate and frames, the backbone's size.
    settings = CacheSettings(32, config.data.frame_cache_fps, min_frames=config.data.num_frames)
    assert FrameCache.open(frame_cache_dir("vatex", root), "test", settings) is not None


@pytest.mark.parametrize("fps", ["-1", "0", "nan"])
def test_prepare_refuses_a_rate_that_is_not_positive(root: Path, capsys: pytest.CaptureFixture, fps: str) -> None:
    from vtrbench.datasets.frame_cache import frame_cache_dir

    assert main(["data", "prepare", "vatex", f"vatex.root={root}", f"data.frame_cache_fps={fps}"]) == 2
    assert "data.frame_cache_fps" in capsys.readouterr().err
    assert not frame_cache_dir("vatex", root).exists()


@pytest.mark.parametrize("flag", ["--fps", "--out"])
def test_prepare_builds_no_cache_that_no_run_reads(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                   flag: str) -> None:
    """Found in review: `--fps 3` replaced the cache the runs read with one of another rate, and `--out DIR`
    wrote one that no run could open; either way the runs decoded every clip again without a word. The rate
    is the runs' own setting, data.frame_cache_fps, and the folder is theirs."""
    assert main(["data", "prepare", "vatex", f"vatex.root={root}", flag, "3"]) == 2
    assert "key=value" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["check", "prepare"])
def test_the_dataset_is_named_once(root: Path, tmp_path: Path, capsys: pytest.CaptureFixture, command: str) -> None:
    # found in review: `data check msrvtt dataset=vatex` read VATEX's config with MSR-VTT's reader
    assert main(["data", command, "msrvtt", "dataset=vatex", f"vatex.root={root}"]) == 2
    assert "'dataset=vatex': the dataset is named once, as the command's first argument (msrvtt)" in \
        capsys.readouterr().err
