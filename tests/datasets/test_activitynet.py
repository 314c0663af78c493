"""ActivityNet Captions: the real train / val_1 parse to 10,009 / 4,917 paragraphs equal to para_1.json; val is a
seeded hold-out of train (1,001 videos), and training keeps the other 9,008."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from vtrbench.datasets.activitynet import ActivityNet, ActivityNetConfig
from vtrbench.datasets.base import AnnotationError


def test_real_train_and_val_1(shared_annotations: Path) -> None:
    root = shared_annotations / "activitynet"
    dataset = ActivityNet(ActivityNetConfig(root=str(root)))
    train, val, test = dataset.load("train"), dataset.load("val"), dataset.load("test")
    assert len(train.clips) == 9_008 and train.num_captions == 9_008
    assert len(val.clips) == 1_001 and val.num_captions == 1_001
    assert len(test.clips) == 4_917 and test.num_captions == 4_917
    listed = (root / "train_list.txt").read_text().split()
    train_ids, val_ids = [clip.video_id for clip in train.clips], [clip.video_id for clip in val.clips]
    assert not set(train_ids) & set(val_ids) and set(train_ids) | set(val_ids) == set(listed)
    assert train_ids == [i for i in listed if i not in set(val_ids)]  # file order kept
    assert not set(val_ids) & {clip.video_id for clip in test.clips}

    paragraphs = json.loads((root / "para_1.json").read_text())
    for clip in test.clips[:: len(test.clips) // 50]:
        assert clip.captions == [" ".join(paragraphs[clip.video_id].split())]
    first = test.clips[0]
    assert first.video_id == "v_uqiMw7tQ1Cc" and first.start is None and first.end is None
    assert first.captions == ["A weight lifting tutorial is given. The coach helps the guy in red with the "
                              "proper body placement and lifting technique."]


@pytest.fixture
def tiny(tmp_path: Path) -> ActivityNet:
    entry = {"duration": 3.0, "timestamps": [[0, 1], [1, 3]], "sentences": ["A man runs.", "  He  jumps. "]}
    (tmp_path / "train.json").write_text(json.dumps({"v_abc": entry, "v_def": entry}))
    (tmp_path / "val_1.json").write_text(json.dumps({"v_ghi": entry}))
    return ActivityNet(ActivityNetConfig(root=str(tmp_path)))


def test_one_whitespace_normalised_paragraph_per_video(tiny: ActivityNet) -> None:
    test = tiny.load("test")
    assert [(clip.video_id, clip.captions) for clip in test.clips] == [("v_ghi", ["A man runs. He jumps."])]


def test_video_files_with_or_without_the_v_prefix(tiny: ActivityNet, make_video: Callable) -> None:
    with_prefix = make_video(tiny.root / "videos" / "v_abc.mp4")
    without_prefix = make_video(tiny.root / "videos" / "sub" / "def.mkv")
    both = tiny.load("train").clips + tiny.load("val").clips  # the hold-out takes one of the two
    assert sorted(clip.path for clip in both) == sorted([with_prefix, without_prefix])
    assert tiny.load("test").clips[0].path is None


def test_one_clip_under_two_spellings_is_one_clip(tiny: ActivityNet, make_video: Callable, capsys) -> None:
    # `ghi` in train and `v_ghi` in val_1 open the same file: training would see a test clip, and the ids
    # alone differ (found by an audit: data check listed no shared clip and the run trained on it)
    from vtrbench.benchmark.cli import main
    from vtrbench.datasets.base import SharedClipsError

    make_video(tiny.root / "videos" / "v_ghi.mp4")
    entry = {"duration": 3.0, "timestamps": [[0, 1]], "sentences": ["A dog sits."]}
    train = json.loads((tiny.root / "train.json").read_text())
    (tiny.root / "train.json").write_text(json.dumps({**train, "ghi": entry}))
    with pytest.raises(SharedClipsError, match=r"the (train|val) and test splits share 1 clip\(s\) \(ghi = v_ghi\)"):
        tiny.check_disjoint_splits()
    assert main(["data", "check", "activitynet", f"activitynet.root={tiny.root}"]) == 1  # data check says so too
    assert "and test share 1 clip(s): ghi = v_ghi" in capsys.readouterr().out
    (tiny.root / "train.json").write_text(json.dumps(train))
    (tiny.root / "val_1.json").write_text(json.dumps({"v_ghi": entry, "ghi": entry}))
    with pytest.raises(SharedClipsError, match=r"the test split names 1 video\(s\) under two ids \(ghi and v_ghi\)"):
        tiny.check_disjoint_splits()
    assert main(["data", "check", "activitynet", f"activitynet.root={tiny.root}"]) == 1  # as run refuses it
    assert "test names 1 video(s) under two ids: v_ghi and ghi" in capsys.readouterr().out


def test_a_named_val_json_replaces_the_hold_out(tiny: ActivityNet) -> None:
    entry = {"duration": 3.0, "timestamps": [[0, 1]], "sentences": ["A dog sits."]}
    (tiny.root / "my_val.json").write_text(json.dumps({"v_jkl": entry}))
    tiny.config.val_json = "my_val.json"
    assert [clip.video_id for clip in tiny.load("val").clips] == ["v_jkl"]
    assert [clip.video_id for clip in tiny.load("train").clips] == ["v_abc", "v_def"]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"v_ghi": {"sentences": ["a"]', r"val_1.json, line 1, column \d+: invalid JSON"),
        ('["v_ghi"]', r"val_1.json: expected an object v_<id>"),
        ('{"v_ghi": {"duration": 3.0, "timestamps": []}}',
         r"val_1.json: key 'v_ghi': expected an object with a 'sentences' list"),
        ('{"v_ghi": {"sentences": [" ", ""]}}', r"val_1.json: key 'v_ghi': empty paragraph"),
        ('{"v_ghi": {"sentences": ["a", 3]}}', r"val_1.json: key 'v_ghi': sentences\[1\] is not text"),
    ],
)
def test_malformed_files_name_file_and_key(tiny: ActivityNet, content: str, expected: str) -> None:
    (tiny.root / "val_1.json").write_text(content)
    with pytest.raises(AnnotationError, match=expected):
        tiny.load("test")


def test_wrong_encoding_is_named(tiny: ActivityNet) -> None:
    (tiny.root / "val_1.json").write_bytes('{"v_ghi": {"sentences": ["caf\u00e9"]}}'.encode("latin-1"))
    with pytest.raises(AnnotationError, match=r"val_1.json: not UTF-8"):
        tiny.load("test")


def test_a_hold_out_that_cannot_be_drawn_names_the_option(tiny: ActivityNet) -> None:
    # found by an audit: 'val_fraction=0.0: ...' and 'a hold-out needs at least 2 training clips, found 0' named
    # neither the dataset's option nor where the train file is
    with pytest.raises(ValueError, match=r"activitynet.val_fraction \(val held out of the train file under .*\): "
                                         r"val_fraction=0.0"):
        ActivityNet(ActivityNetConfig(root=str(tiny.root), val_fraction=0.0)).load("val")
    (tiny.root / "train.json").write_text("{}")
    with pytest.raises(ValueError, match=r"activitynet.val_fraction .*a hold-out needs at least 2 training clips"):
        tiny.load("train")
