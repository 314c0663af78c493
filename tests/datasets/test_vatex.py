"""VATEX: the real HGR id lists parse to 25,991 / 1,500 / 1,500 with captions from either json shape."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from vtrbench.datasets.base import AnnotationError
from vtrbench.datasets.vatex import VATEX, VATEXConfig


def official_json(video_ids: list[str], per_video: int = 10) -> list[dict]:
    return [{"videoID": video_id, "enCap": [f"{video_id} caption {k}" for k in range(per_video)],
             "chCap": ["\u4e00"] * per_video} for video_id in video_ids]


def mapping_json(video_ids: list[str], per_video: int = 10) -> dict[str, list[str]]:
    return {video_id: [f"{video_id} caption {k}" for k in range(per_video)] for video_id in video_ids}


@pytest.mark.parametrize("shape", [official_json, mapping_json])
def test_real_id_lists_with_both_json_shapes(
    shared_annotations: Path, tmp_path: Path, shape: Callable
) -> None:
    vatex = shared_annotations / "vatex"
    lists = ("train_list.txt", "val_list.txt", "test_list.txt")
    ids = [i for name in lists for i in (vatex / name).read_text().split()]
    (tmp_path / "vatex_data.json").write_text(json.dumps(shape(ids)))
    dataset = VATEX(VATEXConfig(root=str(tmp_path), train_list=str(vatex / "train_list.txt"),
                                val_list=str(vatex / "val_list.txt"), test_list=str(vatex / "test_list.txt")))

    train, val, test = dataset.load("train"), dataset.load("val"), dataset.load("test")
    assert len(train.clips) == 25_991 and train.num_captions == 259_910  # HGR's val is disjoint from train
    assert len(val.clips) == 1_500 and val.num_captions == 15_000
    assert not {c.video_id for c in val.clips} & ({c.video_id for c in train.clips} | {c.video_id for c in test.clips})
    assert len(test.clips) == 1_500 and test.num_captions == 15_000
    assert test.clips[0].video_id == "sf2PPeXQrUA_000000_000010"
    assert test.clips[0].captions[3] == "sf2PPeXQrUA_000000_000010 caption 3"
    assert not {c.video_id for c in train.clips} & {c.video_id for c in test.clips}


def test_official_files_are_pooled_and_a_list_may_lack_its_last_newline(tmp_path: Path) -> None:
    (tmp_path / "train_list.txt").write_text("a_000000_000010\nb_000000_000010")  # no trailing newline
    (tmp_path / "val_list.txt").write_text("b_000000_000010")
    (tmp_path / "test_list.txt").write_text("c_000000_000010\n\n")
    (tmp_path / "training.json").write_text(json.dumps(official_json(["a_000000_000010", "b_000000_000010"])))
    (tmp_path / "validation.json").write_text(json.dumps({"c_000000_000010": {"enCap": ["one", " two "]}}))
    dataset = VATEX(VATEXConfig(root=str(tmp_path), captions_json=["training.json", "validation.json"]))
    assert [c.video_id for c in dataset.load("train").clips] == ["a_000000_000010"]  # minus val
    assert [c.video_id for c in dataset.load("val").clips] == ["b_000000_000010"]
    assert dataset.load("test").clips[0].captions == ["one", "two"]


@pytest.fixture
def tiny(tmp_path: Path) -> VATEX:
    (tmp_path / "train_list.txt").write_text("a_000000_000010\n")
    (tmp_path / "val_list.txt").write_text("v_000000_000010\n")
    (tmp_path / "test_list.txt").write_text("b_000000_000010\n")
    captions = mapping_json(["a_000000_000010", "v_000000_000010", "b_000000_000010"])
    (tmp_path / "vatex_data.json").write_text(json.dumps(captions))
    return VATEX(VATEXConfig(root=str(tmp_path)))


@pytest.mark.parametrize(
    ("file_name", "content", "expected"),
    [
        ("vatex_data.json", '[{"videoID": "a"', r"vatex_data.json, line 1, column \d+: invalid JSON"),
        ("vatex_data.json", '[{"videoID": "b_000000_000010", "chCap": ["x"]}]',
         r"vatex_data.json: \[0\]: expected an object with 'videoID' and 'enCap'"),
        ("vatex_data.json", '{"b_000000_000010": ["fine", ""]}',
         r"vatex_data.json: key 'b_000000_000010'\[1\]: empty or non-text caption"),
        ("vatex_data.json", '{"b_000000_000010": []}', r"key 'b_000000_000010': expected a non-empty list"),
        ("vatex_data.json", '[{"videoID": null, "enCap": ["x"]}]',  # read as the id "None" before
         r"vatex_data.json: \[0\]: 'videoID' must be a non-empty string, got None"),
        ("vatex_data.json", '[{"videoID": 12345, "enCap": ["x"]}]', r"'videoID' must be a non-empty string, got 12345"),
        ("vatex_data.json", '"captions"', r"vatex_data.json: expected a list"),
        ("test_list.txt", "b_000000_000010\nz_000000_000010\n",
         r"test_list.txt, line 2: video 'z_000000_000010' has no caption in vatex_data.json"),
        ("test_list.txt", "b_000000_000010\nb_000000_000010\n",
         r"test_list.txt, line 2: id 'b_000000_000010' repeats line 1"),
    ],
)
def test_malformed_files_name_file_and_line_or_key(
    tiny: VATEX, file_name: str, content: str, expected: str
) -> None:
    (tiny.root / file_name).write_text(content)
    with pytest.raises(AnnotationError, match=expected):
        tiny.load("test")


def test_wrong_encoding_is_named(tiny: VATEX) -> None:
    (tiny.root / "test_list.txt").write_bytes("b_000000_000010\ncaf\u00e9\n".encode("utf-16"))
    with pytest.raises(AnnotationError, match=r"test_list.txt: not UTF-8"):
        tiny.load("test")


def test_videos_are_found_by_id_whatever_the_extension(tiny: VATEX, make_video: Callable) -> None:
    make_video(tiny.root / "videos" / "a_000000_000010.mkv")
    (tiny.root / "videos" / "nested").mkdir(parents=True)
    (tiny.root / "videos" / "nested" / "b_000000_000010.webm").touch()
    assert tiny.load("train").clips[0].path == tiny.root / "videos" / "a_000000_000010.mkv"
    assert tiny.load("test").clips[0].path == tiny.root / "videos" / "nested" / "b_000000_000010.webm"


def test_val_keeps_every_caption_and_a_missing_val_list_is_named(tiny: VATEX) -> None:
    assert tiny.load("val").clips[0].captions == [f"v_000000_000010 caption {k}" for k in range(10)]
    (tiny.root / "val_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="val_list.txt"):
        tiny.load("train")
    tiny.config.val_list = None  # no val file: a seeded hold-out needs 2 train clips, and there is 1
    with pytest.raises(ValueError, match="at least 2 training clips"):
        tiny.load("val")
