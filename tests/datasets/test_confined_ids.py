"""An annotation id never makes a run read a file outside `<root>/<video_dir>`: such a clip is an invalid id."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vtrbench.benchmark.cli import main
from vtrbench.benchmark.data import check_split
from vtrbench.datasets.lsmdc import LSMDC, LSMDCConfig

TIMES = "00.00.01.000\t00.00.02.000\t00.00.01.000\t00.00.02.000"
INSIDE = "0001_MOVIE_00.00.01.000-00.00.02.000"
VAL = "0001_MOVIE_00.00.03.000-00.00.04.000"
TRAIN = "0001_MOVIE_00.00.05.000-00.00.06.000"


@pytest.fixture
def lsmdc_root(tmp_path: Path, make_video: Callable) -> Path:
    """<tmp>/a/b/root with one good clip, and videos outside the root that hostile ids point at."""
    root = tmp_path / "a" / "b" / "root"
    make_video(root / "videos" / "0001_MOVIE" / f"{INSIDE}.mp4", num_frames=8)
    make_video(root / "videos" / "0001_MOVIE" / f"{VAL}.mp4", num_frames=8)
    make_video(root / "videos" / "0001_MOVIE" / f"{TRAIN}.mp4", num_frames=8)
    make_video(tmp_path / "secret" / "clip_1.mp4", num_frames=8)  # reached by an absolute id
    (tmp_path / "a" / "b" / "outside").mkdir()
    make_video(tmp_path / "a" / "outside_clip.mp4", num_frames=8)  # reached by ../../outside_clip
    make_video(tmp_path / "linked" / "0002_LINK_x.mp4", num_frames=8)
    (root / "videos" / "0002_LINK").mkdir()
    (root / "videos" / "0002_LINK" / "0002_LINK_x.mp4").symlink_to(tmp_path / "linked" / "0002_LINK_x.mp4")
    ids = [INSIDE, str(tmp_path / "secret" / "clip_1"), "../../outside_clip", "0002_LINK_x"]
    (root / "LSMDC16_annos_training.csv").write_text(f"{TRAIN}\t{TIMES}\tSOMEONE sits.\n")
    (root / "LSMDC16_annos_val.csv").write_text(f"{VAL}\t{TIMES}\tSOMEONE stands.\n")
    (root / "LSMDC16_challenge_1000_publictect.csv").write_text(
        "".join(f"{clip_id}\t{TIMES}\tsentence {i}\n" for i, clip_id in enumerate(ids))
    )
    return root


def test_ids_that_leave_the_videos_folder_are_refused(lsmdc_root: Path, tmp_path: Path) -> None:
    test = LSMDC(LSMDCConfig(root=str(lsmdc_root))).load("test")
    by_id = {clip.video_id: clip for clip in test.clips}
    assert by_id[INSIDE].path is not None and by_id[INSIDE].invalid is None
    outside = [clip for clip in test.clips if clip.video_id != INSIDE]
    assert len(outside) == 3
    for clip in outside:
        assert clip.path is None, clip.video_id
        assert clip.invalid is not None and clip.invalid.startswith("invalid id"), clip.video_id
    assert "resolves outside" in by_id["0002_LINK_x"].invalid  # a link out counts as outside

    checked = check_split(test)
    assert [clip.video_id for clip in checked.clips] == [INSIDE]
    assert set(checked.skipped) == {clip.video_id for clip in outside}
    assert all(reason.startswith("invalid id") for reason in checked.skipped.values())


def test_a_linked_videos_folder_is_inside(lsmdc_root: Path, tmp_path: Path) -> None:
    moved = tmp_path / "big-disk" / "videos"
    moved.parent.mkdir()
    (lsmdc_root / "videos").rename(moved)
    (lsmdc_root / "videos").symlink_to(moved, target_is_directory=True)
    test = LSMDC(LSMDCConfig(root=str(lsmdc_root))).load("test")
    assert {clip.video_id for clip in test.clips if clip.path is not None} == {INSIDE}


def test_data_check_names_invalid_ids(lsmdc_root: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "check", "lsmdc", f"lsmdc.root={lsmdc_root}", "data.num_frames=4"]) == 0
    out = capsys.readouterr().out
    assert "invalid ids (never read): 3: '" in out and "'../../outside_clip' (invalid id" in out
    assert "usable: 1 of 4 clips" in out
