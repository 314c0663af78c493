"""MSR-VTT: the real 9k train ids, official val and 1k-A test parse to their sizes (train = 9k minus val);
bad files name the line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from vtrbench.datasets.base import AnnotationError
from vtrbench.datasets.msrvtt import MSRVTT, MSRVTTConfig


def sentences_json(path: Path, video_ids: list[str], per_video: int = 2) -> Path:
    """An MSRVTT_data.json in the official layout covering `video_ids` (the real one is not available)."""
    sentences = [
        {"caption": f"caption {k} of {video_id}", "video_id": video_id, "sen_id": i * per_video + k}
        for i, video_id in enumerate(video_ids)
        for k in range(per_video)
    ]
    path.write_text(json.dumps({"info": {}, "videos": [], "sentences": sentences}))
    return path


def test_real_9k_train_official_val_and_jsfusion_test(shared_annotations: Path, tmp_path: Path) -> None:
    msrvtt = shared_annotations / "msrvtt"
    train_ids = (msrvtt / "MSRVTT_train.9k.csv").read_text().split()[1:]
    data_json = sentences_json(tmp_path / "MSRVTT_data.json", train_ids)
    config = MSRVTTConfig(root=str(tmp_path), data_json=str(data_json),
                          train_csv=str(msrvtt / "MSRVTT_train.9k.csv"),
                          val_csv=str(msrvtt / "MSRVTT_val.full.csv"),
                          test_csv=str(msrvtt / "MSRVTT_JSFUSION_test.csv"))
    dataset = MSRVTT(config)

    train, val = dataset.load("train"), dataset.load("val")
    # the official val (video6513-video7009) lies inside the 9k list: training keeps the other 8,503
    assert len(val.clips) == 497 and val.num_captions == 994  # every caption of a val video
    assert val.clips[0].video_id == "video6513" and val.clips[-1].video_id == "video7009"
    assert len(train.clips) == 8_503 and train.num_captions == 17_006
    assert not {clip.video_id for clip in train.clips} & {clip.video_id for clip in val.clips}
    assert train.clips[0].video_id == "video0" and train.clips[0].captions == ["caption 0 of video0",
                                                                               "caption 1 of video0"]
    test = dataset.load("test")
    assert len(test.clips) == 1_000 and test.num_captions == 1_000
    assert len({clip.video_id for clip in test.clips}) == 1_000
    assert test.clips[0].video_id == "video9770"
    assert test.clips[0].captions == ["a person is connecting something to system"]
    assert not {clip.video_id for clip in train.clips} & {clip.video_id for clip in test.clips}
    assert not {clip.video_id for clip in val.clips} & {clip.video_id for clip in test.clips}


@pytest.fixture
def tiny(tmp_path: Path) -> MSRVTT:
    (tmp_path / "MSRVTT_train.9k.csv").write_text("video_id\nvideo0\nvideo1\nvideo3\n")
    (tmp_path / "MSRVTT_val.full.csv").write_text("video_id\nvideo3\n")
    test_csv = "key,vid_key,video_id,sentence\nret0,msr2,video2,dog\n"
    (tmp_path / "MSRVTT_JSFUSION_test.csv").write_text(test_csv)
    sentences_json(tmp_path / "MSRVTT_data.json", ["video0", "video1", "video3"])
    return MSRVTT(MSRVTTConfig(root=str(tmp_path)))


def test_tiny_layout_reads(tiny: MSRVTT) -> None:
    assert [clip.video_id for clip in tiny.load("train").clips] == ["video0", "video1"]
    val = tiny.load("val")
    assert [clip.video_id for clip in val.clips] == ["video3"] and val.num_captions == 2
    assert tiny.load("test").clips[0].captions == ["dog"]


def test_val_csv_null_holds_out_a_seeded_part_of_train(tiny: MSRVTT) -> None:
    tiny.config.val_csv = None
    tiny.config.val_fraction = 0.34
    val, train = tiny.load("val"), tiny.load("train")
    assert len(val.clips) == 1 and len(train.clips) == 2
    assert {c.video_id for c in val.clips} | {c.video_id for c in train.clips} == {"video0", "video1", "video3"}


def test_a_configured_val_file_that_is_missing_is_an_error_naming_it(tiny: MSRVTT) -> None:
    (tiny.root / "MSRVTT_val.full.csv").unlink()
    for split in ("val", "train"):  # never a silent fallback to a hold-out
        with pytest.raises(FileNotFoundError, match="MSRVTT_val.full.csv"):
            tiny.load(split)


@pytest.mark.parametrize(
    ("file_name", "content", "split", "expected"),
    [
        ("MSRVTT_JSFUSION_test.csv", "key,video_id\nret0,video2\n", "test", r"line 1: missing column"),
        ("MSRVTT_JSFUSION_test.csv", "key,vid_key,video_id,sentence\nret0,msr2,video2,  \n", "test",
         r"line 2: empty value in column 'sentence'"),
        ("MSRVTT_train.9k.csv", "video_id\nvideo0\nvideo7\n", "train",
         r"line 3: video 'video7' has no caption"),
        ("MSRVTT_data.json", '{"sentences": [', "train",
         r"MSRVTT_data.json, line 1, column \d+: invalid JSON"),
        ("MSRVTT_data.json", '{"sentences": [{"video_id": "video0", "caption": " "}]}', "train",
         r"sentences\[0\] \(video video0\): empty caption"),
    ],
)
def test_malformed_files_name_file_and_line(
    tiny: MSRVTT, file_name: str, content: str, split: str, expected: str
) -> None:
    (tiny.root / file_name).write_text(content)
    with pytest.raises(AnnotationError, match=expected) as info:
        tiny.load(split)
    assert file_name in str(info.value)


def test_wrong_encoding_is_named(tiny: MSRVTT) -> None:
    (tiny.root / "MSRVTT_JSFUSION_test.csv").write_bytes(
        "key,vid_key,video_id,sentence\nret0,msr2,video2,un caf\u00e9\n".encode("latin-1"))
    with pytest.raises(AnnotationError, match=r"MSRVTT_JSFUSION_test.csv: not UTF-8"):
        tiny.load("test")


def test_videos_are_found_by_id_whatever_the_extension(tiny: MSRVTT, make_video: Callable) -> None:
    first = make_video(tiny.root / "videos" / "all" / "video0.avi")
    (tiny.root / "videos" / "video1.webm").touch()
    assert [clip.path for clip in tiny.load("train").clips] == [first, tiny.root / "videos" / "video1.webm"]
    assert tiny.load("test").clips[0].path is None
