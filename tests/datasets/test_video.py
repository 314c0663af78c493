"""Videos are found by id whatever their extension; real mp4/avi/mkv clips decode the sampled frames."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vtrbench.datasets.video import VideoReadError, find_video, index_videos, read_frames


def test_index_finds_every_video_extension_recursively(tmp_path: Path) -> None:
    names = ["a.mp4", "b.avi", "sub/c.mkv", "sub/deeper/d.webm", "e.MP4", "notes.txt", "f.json"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    index = index_videos(tmp_path)
    assert set(index) == {"a", "b", "c", "d", "e"}
    assert index["d"] == tmp_path / "sub" / "deeper" / "d.webm"
    assert find_video(tmp_path, "c", index) == tmp_path / "sub" / "c.mkv"
    assert find_video(tmp_path, "notes", index) is None
    assert find_video(tmp_path, "b") == tmp_path / "b.avi"  # without an index: the top folder only
    assert index_videos(tmp_path / "absent") == {}


@pytest.mark.parametrize("extension", [".mp4", ".avi", ".mkv"])
def test_real_clips_decode_the_segment_midpoints(
    tmp_path: Path, make_video: Callable, extension: str
) -> None:
    path = make_video(tmp_path / f"clip{extension}", num_frames=16)
    sampled = read_frames(path, num_frames=4)
    assert sampled.frames.shape == (4, 48, 64, 3) and sampled.mask.all()
    # frame i is grey 10 * i; the midpoints of 4 segments of 16 frames are frames 2, 6, 10, 14
    assert np.allclose(sampled.frames[:, 24, 32].mean(axis=1), [20, 60, 100, 140], atol=4)


def test_a_short_clip_is_padded_and_masked(tmp_path: Path, make_video: Callable) -> None:
    sampled = read_frames(make_video(tmp_path / "short.mp4", num_frames=3), num_frames=5)
    assert sampled.mask.tolist() == [True, True, True, False, False]
    assert not sampled.frames[3:].any()


def test_a_corrupt_file_raises_video_read_error(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00not a video" * 10)
    with pytest.raises(VideoReadError, match="corrupt.mp4"):
        read_frames(corrupt, num_frames=4)
