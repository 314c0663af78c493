"""LSMDC: the real 1k public test parses to 1,000 clips; repeated ids pool captions; bad lines are named."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vtrbench.datasets.base import AnnotationError
from vtrbench.datasets.lsmdc import LSMDC, LSMDCConfig, movie_of

TIMES = "00.00.01.000\t00.00.02.000\t00.00.01.000\t00.00.02.000"


def line(clip_id: str, sentence: str) -> str:
    return f"{clip_id}\t{TIMES}\t{sentence}\n"


def test_real_public_test(shared_annotations: Path, tmp_path: Path) -> None:
    test_csv = shared_annotations / "lsmdc" / "LSMDC16_challenge_1000_publictect.csv"
    test = LSMDC(LSMDCConfig(root=str(tmp_path), test_csv=str(test_csv))).load("test")
    assert len(test.clips) == 1_000 and test.num_captions == 1_000
    assert test.clips[0].video_id == "3086_UGLY_TRUTH_00.23.23.000-00.23.28.886"
    assert test.clips[0].captions == ["SOMEONE stands below, hands on her hips."]
    assert len({movie_of(clip.video_id) for clip in test.clips}) == 17


@pytest.fixture
def tiny(tmp_path: Path) -> LSMDC:
    (tmp_path / "LSMDC16_annos_training.csv").write_text(
        line("0001_A_MOVIE_00.00.01.000-00.00.02.000", "SOMEONE sits.")
        + line("0002_OTHER_00.00.05.000-00.00.06.000", "A door opens.")
        + line("0001_A_MOVIE_00.00.01.000-00.00.02.000", "SOMEONE stands.")
    )
    (tmp_path / "LSMDC16_annos_val.csv").write_text(line("0009_VAL_00.00.01.000-00.00.02.000", "v"))
    test_line = line("0003_TEST_00.00.01.000-00.00.03.000", "x")
    (tmp_path / "LSMDC16_challenge_1000_publictect.csv").write_text(test_line)
    return LSMDC(LSMDCConfig(root=str(tmp_path)))


def test_a_repeated_clip_is_one_clip_with_its_captions_in_order(tiny: LSMDC) -> None:
    train = tiny.load("train")
    assert [clip.video_id for clip in train.clips] == ["0001_A_MOVIE_00.00.01.000-00.00.02.000",
                                                       "0002_OTHER_00.00.05.000-00.00.06.000"]
    assert train.clips[0].captions == ["SOMEONE sits.", "SOMEONE stands."]


def test_videos_in_movie_folders_or_anywhere_by_id(tiny: LSMDC, make_video: Callable) -> None:
    videos = tiny.root / "videos"
    in_movie = make_video(videos / "0001_A_MOVIE" / "0001_A_MOVIE_00.00.01.000-00.00.02.000.avi")
    elsewhere = videos / "misc" / "0002_OTHER_00.00.05.000-00.00.06.000.webm"
    elsewhere.parent.mkdir()
    elsewhere.touch()
    paths = [clip.path for clip in tiny.load("train").clips]
    assert paths == [in_movie, elsewhere]
    assert tiny.load("test").clips[0].path is None


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (line("0001_A_00.00.01.000-00.00.02.000", "fine") + "0001_A_x\t00.00.01.000\tshort\n",
         r"line 2: expected 6 tab-separated fields, found 3"),
        (line("0001_A_00.00.01.000-00.00.02.000", "a\ttab"), r"line 1: expected 6 .* found 7"),
        (line("0001_A_00.00.01.000-00.00.02.000", "  "), r"line 1: empty sentence for clip '0001_A_"),
        (line("", "a sentence"), r"line 1: empty clip id"),
        ("0001_A_x,00.00.01.000,00.00.02.000,00.00.01.000,00.00.02.000,comma separated\n",
         r"line 1: expected 6 tab-separated fields, found 1"),
    ],
)
def test_malformed_lines_name_file_and_line(tiny: LSMDC, content: str, expected: str) -> None:
    (tiny.root / "LSMDC16_annos_training.csv").write_text(content)
    with pytest.raises(AnnotationError, match=expected) as info:
        tiny.load("train")
    assert "LSMDC16_annos_training.csv" in str(info.value)


def test_wrong_encoding_is_named(tiny: LSMDC) -> None:
    (tiny.root / "LSMDC16_annos_training.csv").write_bytes(line("0001_A_x", "caf\u00e9").encode("cp1252"))
    with pytest.raises(AnnotationError, match=r"LSMDC16_annos_training.csv: not UTF-8"):
        tiny.load("train")


def test_a_missing_annotation_file_is_named(tiny: LSMDC) -> None:
    (tiny.root / "LSMDC16_annos_training.csv").unlink()
    with pytest.raises(FileNotFoundError, match="LSMDC16_annos_training.csv"):
        tiny.load("train")


def test_the_official_val_file_is_read_and_its_absence_named(tiny: LSMDC) -> None:
    assert [(c.video_id, c.captions) for c in tiny.load("val").clips] == [("0009_VAL_00.00.01.000-00.00.02.000",
                                                                          ["v"])]
    assert len(tiny.load("train").clips) == 2
    (tiny.root / "LSMDC16_annos_val.csv").unlink()
    with pytest.raises(FileNotFoundError, match="LSMDC16_annos_val.csv"):
        tiny.load("val")
    tiny.config.val_csv = None  # the hold-out: one of the two train clips
    val, train = tiny.load("val"), tiny.load("train")
    assert len(val.clips) == 1 and len(train.clips) == 1 and val.clips[0].video_id != train.clips[0].video_id
