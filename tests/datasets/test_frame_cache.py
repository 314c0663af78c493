"""The frame cache: built once from real clips, sampled like decoding, never used with other settings."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vtrbench.benchmark import data
from vtrbench.datasets.base import Clip
from vtrbench.datasets.frame_cache import (
    CacheSettings,
    FrameCache,
    FrameCacheChangedError,
    build_frame_cache,
    prepare_frame_cache,
)
from vtrbench.datasets.video import preprocess_frames

SETTINGS = CacheSettings(image_size=32, fps=4.0, min_frames=8)


def greys(frames: np.ndarray) -> np.ndarray:
    """The grey level of each frame, in steps of 10 (the test clips' frame i is grey 10 * i)."""
    return np.round(frames[:, 16, 16].mean(axis=1) / 10.0).astype(int)


@pytest.fixture
def clips(tmp_path: Path, make_video: Callable) -> list[Clip]:
    long = make_video(tmp_path / "videos" / "long.mp4", num_frames=24)  # 3 s at 8 fps: 12 frames at 4 fps
    short = make_video(tmp_path / "videos" / "short.avi", num_frames=12)  # 1.5 s: 6 at 4 fps, kept 8
    corrupt = tmp_path / "videos" / "corrupt.mp4"
    corrupt.write_bytes(b"\x00" * 100)
    return [Clip("long", long, ["a"]), Clip("short", short, ["b"]), Clip("missing", None, ["c"]),
            Clip("corrupt", corrupt, ["d"])]


@pytest.fixture
def cache(clips: list[Clip], tmp_path: Path) -> FrameCache:
    return build_frame_cache(clips, tmp_path / "cache", "train", SETTINGS)


def test_build_keeps_the_rate_and_at_least_min_frames(cache: FrameCache) -> None:
    assert {clip_id: entry["count"] for clip_id, entry in cache.entries.items()} == {"long": 12, "short": 8}
    assert cache.total_frames == 20
    assert cache.failed["missing"] == "missing video file"
    assert cache.failed["corrupt"].startswith("unreadable:")


def test_read_without_rng_takes_segment_midpoints_of_the_cached_frames(cache: FrameCache) -> None:
    sampled = cache.read("long", 4)
    assert sampled.frames.shape == (4, 32, 32, 3) and sampled.frames.dtype == np.uint8 and sampled.mask.all()
    # cached frames are native 1, 3, ..., 23; the midpoints of 4 segments of 12 are cached 1, 4, 7, 10
    assert greys(sampled.frames).tolist() == [3, 9, 15, 21]
    padded = cache.read("short", 10)
    assert padded.mask.tolist() == [True] * 8 + [False] * 2 and not padded.frames[8:].any()


def test_read_with_rng_draws_one_cached_frame_inside_each_segment(cache: FrameCache) -> None:
    draws = [greys(cache.read("long", 4, np.random.default_rng(seed)).frames) for seed in range(8)]
    for drawn in draws:
        assert all(6 * k <= grey < 6 * k + 6 and grey % 2 == 1 for k, grey in enumerate(drawn))
    assert len({tuple(drawn) for drawn in draws}) > 1
    again = greys(cache.read("long", 4, np.random.default_rng(3)).frames)
    assert again.tolist() == draws[3].tolist()


def test_clip_frames_read_covered_clips_from_the_cache(
    cache: FrameCache, clips: list[Clip], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached clip was decoded")

    monkeypatch.setattr(data, "read_frames", no_decoding)
    spec = data.FrameSpec(num_frames=4, image_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    item = data.ClipFrames(clips, spec, train=False, cache=cache).frames(0)
    expected = preprocess_frames(cache.read("long", 4).frames, 32, spec.mean, spec.std)
    assert item is not None and item["frames"].equal(expected) and item["mask"].all()


def test_a_cache_is_reused_only_with_its_settings_and_files(
    cache: FrameCache, clips: list[Clip], tmp_path: Path
) -> None:
    directory = tmp_path / "cache"
    assert prepare_frame_cache(clips, directory, "train", SETTINGS)[1] is False

    other = dataclasses.replace(SETTINGS, fps=2.0)
    assert FrameCache.open(directory, "train", other) is None
    rebuilt, was_rebuilt = prepare_frame_cache(clips, directory, "train", other)
    assert was_rebuilt and rebuilt.entries["long"]["count"] == 8  # 6 at 2 fps, raised to min_frames
    assert FrameCache.open(directory, "train", SETTINGS) is None  # the old settings are gone, not misused

    status = os.stat(clips[0].path)
    os.utime(clips[0].path, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
    assert not rebuilt.covers(clips[0]) and rebuilt.covers(clips[1])
    assert prepare_frame_cache(clips, directory, "train", other)[1] is True
    assert prepare_frame_cache(clips[:2], directory, "train", other)[1] is True  # another set of clips


def test_frames_rebuilt_after_a_run_opened_the_cache_are_never_read_with_its_offsets(
    cache: FrameCache, clips: list[Clip], tmp_path: Path
) -> None:
    """Found in review: `open` read the index at once and mapped the frames file at the first read (and each
    loader worker maps it again by path), so a rebuild in between (another `data prepare`) served one clip's
    frames as another's, without a word. Now the index names the frames file it indexes; a run stops."""
    directory = tmp_path / "cache"
    opened = FrameCache.open(directory, "train", SETTINGS)
    status = os.stat(clips[1].path)  # a changed video: the next prepare rebuilds, with the same settings
    os.utime(clips[1].path, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
    assert prepare_frame_cache(clips, directory, "train", SETTINGS)[1] is True
    with pytest.raises(FrameCacheChangedError, match="rebuilt after this run opened it"):
        opened.read("long", 4)
    assert greys(FrameCache.open(directory, "train", SETTINGS).read("long", 4).frames).tolist() == [3, 9, 15, 21]


def test_a_clip_that_failed_is_decoded_again_once_its_video_changes(
    cache: FrameCache, clips: list[Clip], tmp_path: Path, make_video: Callable
) -> None:
    """Found in review: a failed clip counted as current whatever its file, so a video replaced after a failed
    `data prepare` was never cached ("up to date") and every epoch decoded it."""
    directory = tmp_path / "cache"
    assert prepare_frame_cache(clips, directory, "train", SETTINGS)[1] is False  # failed on these very files
    make_video(clips[3].path, num_frames=24)  # the corrupt video replaced by a good one
    rebuilt, was_rebuilt = prepare_frame_cache(clips, directory, "train", SETTINGS)
    assert was_rebuilt and rebuilt.entries["corrupt"]["count"] == 12 and "corrupt" not in rebuilt.failed
    assert rebuilt.failed == {"missing": "missing video file"}


def test_a_truncated_frames_file_is_not_opened(cache: FrameCache, tmp_path: Path) -> None:
    frames_file = tmp_path / "cache" / "train.frames.u8"
    frames_file.write_bytes(frames_file.read_bytes()[:-10])
    assert FrameCache.open(tmp_path / "cache", "train", SETTINGS) is None
    assert FrameCache.open(tmp_path / "elsewhere", "train", SETTINGS) is None


ENTRY_DAMAGE = {  # one clip's entry: found by an audit, each crashed a run or (a negative count) passed unseen
    "no stamp": lambda e: e.pop("stamp"), "offset past the file": lambda e: e.update(offset=10**9),
    "offset not a number": lambda e: e.update(offset="abc"), "negative count": lambda e: e.update(count=-5),
}


@pytest.mark.parametrize("damage", ["[1, 2]", "no total_frames", "clips not a mapping", "entry not a mapping",
                                    *ENTRY_DAMAGE])
def test_an_index_that_was_not_written_whole_is_not_opened(cache: FrameCache, tmp_path: Path, damage: str) -> None:
    """Before: a bare AttributeError or KeyError out of `open`; now the cache is rebuilt, as a stale one is."""
    index_file = tmp_path / "cache" / "train.index.json"
    index = json.loads(index_file.read_text())
    entry = dict(index["clips"]["long"])
    if damage in ENTRY_DAMAGE:
        ENTRY_DAMAGE[damage](entry)
    damaged = {"[1, 2]": [1, 2], "no total_frames": {k: v for k, v in index.items() if k != "total_frames"},
               "clips not a mapping": {**index, "clips": ["long"]},
               "entry not a mapping": {**index, "clips": {**index["clips"], "long": "x"}}}.get(
        damage, {**index, "clips": {**index["clips"], "long": entry}})
    index_file.write_text(json.dumps(damaged))
    assert FrameCache.open(tmp_path / "cache", "train", SETTINGS) is None


def test_pickling_leaves_the_memory_map_behind(cache: FrameCache) -> None:
    cache.read("long", 2)
    copy = pickle.loads(pickle.dumps(cache))
    assert copy._frames is None
    assert np.array_equal(copy.read("long", 4).frames, cache.read("long", 4).frames)


def test_frames_already_at_the_input_size_are_kept_exactly_as_the_float_path_would_give_them() -> None:
    frames = np.random.default_rng(0).integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    from vtrbench.datasets.frame_cache import resize_to_uint8

    kept = resize_to_uint8(frames, 32)
    through_floats = preprocess_frames(frames, 32, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    assert np.array_equal(kept, through_floats.mul(255).round().byte().permute(0, 2, 3, 1).numpy())
    assert resize_to_uint8(frames, 16).shape == (5, 16, 16, 3)


def test_check_split_opens_no_video_that_the_cache_holds(
    cache: FrameCache, clips: list[Clip], monkeypatch: pytest.MonkeyPatch
) -> None:
    from vtrbench.datasets.base import Split

    def no_decoding(path: object) -> int:
        raise AssertionError(f"opened {path}")

    monkeypatch.setattr(data, "count_frames", no_decoding)
    checked = data.check_split(Split("train", clips[:3]), cache)
    assert [clip.video_id for clip in checked.clips] == ["long", "short"]
    assert checked.skipped == {"missing": "missing video file"}
