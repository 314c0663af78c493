"""A video broken in the middle of its file: `data check` names it, evaluation sets it aside and says so, and
ffmpeg's messages go to a log file instead of the terminal."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest

from tests.benchmark.conftest import tiny_run_overrides
from vtrbench.benchmark.cli import main
from vtrbench.benchmark.config import resolve_config, run_dir
from vtrbench.benchmark.runner import execute

FFMPEG_LINE = re.compile(r"\[\w+ @ 0x[0-9a-f]+\]")


def break_mid_file(path: Path) -> Path:
    """Zero the second half of an mp4's media data: the header (frame count) stays readable, the frames
    after the middle of the file no longer decode."""
    data = bytearray(path.read_bytes())
    media, index = data.find(b"mdat"), data.find(b"moov")
    assert 0 < media < index, "expected the frames before the index (mp4 as PyAV writes it)"
    start = media + 4 + (index - media) // 2
    data[start:index - 4] = bytes(index - 4 - start)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def broken_root(tiny_msrvtt: Path, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the tiny MSR-VTT whose first test video is broken mid-file."""
    root = Path(shutil.copytree(tiny_msrvtt, tmp_path / "msrvtt"))
    with (root / "MSRVTT_JSFUSION_test.csv").open(newline="") as handle:
        video_id = next(csv.DictReader(handle))["video_id"]
    break_mid_file(next((root / "videos").rglob(f"{video_id}.*")))
    return root, video_id


def test_evaluation_sets_aside_a_clip_that_fails_to_decode(broken_root, tmp_path, capfd):
    root, broken = broken_root
    config = resolve_config(tiny_run_overrides(root, tmp_path / "runs", method="zero_shot"))
    result = execute(config)
    assert result["status"] == "finished"
    assert list(result["skipped"]["test"]) == [broken]
    assert result["skipped"]["test"][broken].startswith("cannot decode at evaluation:")
    assert result["num_queries"] == {"t2v": 7, "v2t": 7} and len(result["ranks"]["t2v"]) == 7
    on_disk = json.loads((run_dir(config) / "result.json").read_text())
    assert on_disk["skipped"]["test"] == result["skipped"]["test"]
    err = capfd.readouterr().err
    assert f"1 clip(s) could not be decoded and are set aside with their captions ({broken})" in err
    assert not FFMPEG_LINE.search(err)  # ffmpeg's own lines ("[mpeg4 @ 0x..] illegal dc vlc") are in decode.log
    log = (run_dir(config) / "decode.log").read_text()
    assert FFMPEG_LINE.search(log) and f"^ while decoding {root / 'videos'}" in log and f"{broken}.mp4" in log


def test_data_check_decodes_the_sampled_frames(broken_root, capfd):
    root, broken = broken_root
    assert main(["data", "check", "msrvtt", f"msrvtt.root={root}", "data.num_frames=4"]) == 0
    captured = capfd.readouterr()
    assert f"unreadable videos: 1: {broken} (cannot decode" in captured.out
    assert "usable: 7 of 8 clips" in captured.out and "decoder messages: " in captured.out
    assert not FFMPEG_LINE.search(captured.err)


def test_training_names_the_clips_that_fail_to_decode(tiny_msrvtt, tmp_path):
    root = Path(shutil.copytree(tiny_msrvtt, tmp_path / "msrvtt"))
    with (root / "MSRVTT_train.9k.csv").open(newline="") as handle:
        broken = next(csv.DictReader(handle))["video_id"]
    break_mid_file(next((root / "videos").rglob(f"{broken}.*")))
    # a frozen trunk caches every training clip's features once: the broken one is set aside there
    probe = execute(resolve_config(tiny_run_overrides(root, tmp_path / "runs", method="linear_probe")))
    assert probe["skipped"]["train"][broken].startswith("cannot decode while caching frozen-trunk features")
    # a tuned trunk decodes in every batch: the clip is skipped there, counted and named
    tuned = execute(resolve_config(tiny_run_overrides(root, tmp_path / "runs", **{"train.epochs": 1})))
    assert tuned["skipped"]["train_decode_failures"] >= 1
    assert list(tuned["skipped"]["train_undecodable"]) == [broken]


def test_the_run_summary_counts_the_skipped_clips(broken_root, tmp_path, capsys):
    root, _ = broken_root
    assert main(["run", *tiny_run_overrides(root, tmp_path / "runs", method="zero_shot")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped"]["test"] == 1 and summary["skipped"]["train"] == 0
