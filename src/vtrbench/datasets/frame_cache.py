"""An optional frame cache: decode every clip once, then read frames in every epoch and for every method.

`vtrbench data prepare` decodes each clip of a split at a fixed rate (`data.frame_cache_fps`, or `--fps`),
resizes it (short side, centre crop, as the harness does) to the backbone's input size and appends the uint8
frames to one raw file per split, read back through a numpy memory map. A json index beside it maps each
clip id to its first frame and frame count. Sampling stays the harness's: `sample_frame_indices` over the
cached frames, segment midpoints for evaluation, random offsets inside segments for training.

The cached frames are those of the cache's rate, not of the video's own rate, so a run from the cache is not
bit-identical to one that decodes. So that a short clip is never padded where decoding would give real
frames, every clip keeps at least `min_frames` frames (the run's data.num_frames), spread uniformly.

Misuse is ruled out three ways: the index records the settings it was built with (format version, rate,
size, min_frames) and is not opened with others; for every clip, cached or failed, the path, size and mtime
of its video file and its segment, so a clip whose file changed is not served (`covers` is False) and is
decoded again by the next `data prepare`; and the frames file it indexes (its inode), so frames rebuilt
behind a run's back (another `data prepare`) are never read with the old offsets: the run stops with an
error instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vtrbench.cache import cache_dir
from vtrbench.datasets.base import Clip
from vtrbench.datasets.video import (
    SampledFrames,
    VideoReadError,
    frame_range,
    native_messages_logged,
    preprocess_frames,
    sample_frame_indices,
)
from vtrbench.files import atomic_write, atomic_write_text

FORMAT_VERSION = 1
DEFAULT_FPS = 3.0
DECODE_CHUNK = 32  # frames decoded and resized at a time: a long HD video never sits in memory whole


class FrameCacheChangedError(RuntimeError):
    """The frames file was replaced after the index that points into it was read."""


@dataclass(frozen=True)
class CacheSettings:
    image_size: int
    fps: float = DEFAULT_FPS
    min_frames: int = 1
    version: int = FORMAT_VERSION


def frame_cache_dir(dataset: str, root: Path) -> Path:
    """The default cache folder of a dataset root, under the suite's cache (datasets may be read-only)."""
    digest = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:12]
    return cache_dir() / "frames" / f"{dataset}-{digest}"


def video_stamp(clip: Clip) -> list[Any] | None:
    """What a clip's cached frames depend on: its file (path, size, mtime) and its segment; None if absent."""
    if clip.path is None:
        return None
    try:
        status = os.stat(clip.path)
    except OSError:
        return None
    return [str(clip.path), status.st_size, status.st_mtime_ns, clip.start, clip.end]


def cached_frame_indices(num_available: int, native_fps: float, settings: CacheSettings) -> np.ndarray:
    """The frames kept of a segment of `num_available` frames: the cache's rate, at least `min_frames`."""
    at_rate = round(num_available / native_fps * settings.fps)
    count = min(num_available, max(at_rate, settings.min_frames, 1))
    return np.floor((np.arange(count) + 0.5) * num_available / count).astype(np.int64)


def resize_to_uint8(frames: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 [T, H, W, 3] -> uint8 [T, S, S, 3], resized and cropped exactly as `preprocess_frames` does."""
    if frames.shape[1:3] == (image_size, image_size):  # nothing to resize or crop: spare the float round trip
        return np.ascontiguousarray(frames)
    # mean 0 and std 1 make preprocess_frames return the resized frames in [0, 1], before normalisation.
    resized = preprocess_frames(frames, image_size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    return resized.mul(255.0).round_().clamp_(0, 255).byte().permute(0, 2, 3, 1).numpy()


def decode_for_cache(
    path: Path, settings: CacheSettings, start: float | None = None, end: float | None = None
) -> Iterator[np.ndarray]:
    """The cached frames of one clip, resized, in chunks of at most DECODE_CHUNK frames."""
    import decord

    try:
        with native_messages_logged(path):
            reader = decord.VideoReader(str(path), num_threads=1)
        native_fps = float(reader.get_avg_fps() or 1.0)
        first, last = frame_range(len(reader), native_fps, start, end)
    except Exception as err:  # decord raises its own DECORDError and RuntimeError for broken files
        raise VideoReadError(f"{path}: cannot open: {err}") from err
    if last <= first:
        raise VideoReadError(f"{path}: the clip has no frames")
    indices = first + cached_frame_indices(last - first, native_fps, settings)
    for begin in range(0, len(indices), DECODE_CHUNK):
        chunk = indices[begin : begin + DECODE_CHUNK]
        try:
            with native_messages_logged(path):
                frames = reader.get_batch(chunk.tolist()).asnumpy()
        except decord.DECORDError:
            # decord 0.6 cannot copy frames whose width is not a multiple of 32: decode the rest with PyAV
            yield from _stream_with_pyav(path, indices[begin:], settings.image_size)
            return
        except Exception as err:
            raise VideoReadError(f"{path}: cannot decode: {err}") from err
        yield resize_to_uint8(frames, settings.image_size)


def _stream_with_pyav(path: Path, indices: np.ndarray, image_size: int) -> Iterator[np.ndarray]:
    """The frames at the increasing `indices`, in one pass over the stream, resized chunk by chunk."""
    import av

    wanted = iter(indices.tolist())
    target = next(wanted, None)
    chunk: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            for position, frame in enumerate(container.decode(video=0)):
                while target is not None and position == target:  # an index may repeat only if frames are few
                    chunk.append(frame.to_ndarray(format="rgb24"))
                    target = next(wanted, None)
                if len(chunk) >= DECODE_CHUNK:
                    yield resize_to_uint8(np.stack(chunk), image_size)
                    chunk = []
                if target is None:
                    break
    except av.FFmpegError as err:
        raise VideoReadError(f"{path}: cannot decode: {err}") from err
    if target is not None:
        raise VideoReadError(f"{path}: frame {target} could not be decoded")
    if chunk:
        yield resize_to_uint8(np.stack(chunk), image_size)


def _file_names(directory: Path, split: str) -> tuple[Path, Path]:
    return directory / f"{split}.frames.u8", directory / f"{split}.index.json"


def _whole_entry(entry: Any, total_frames: int) -> bool:
    """A clip's entry as `build_frame_cache` writes it: frames inside the file, and the stamp of its video."""
    return (isinstance(entry, dict) and type(entry.get("offset")) is int and type(entry.get("count")) is int
            and entry["offset"] >= 0 and entry["count"] >= 0 and entry["offset"] + entry["count"] <= total_frames
            and isinstance(entry.get("stamp"), list))


class FrameCache:
    """The cached frames of one split; open with `FrameCache.open`, build with `build_frame_cache`."""

    def __init__(self, frames_path: Path, index: dict[str, Any]):
        self.frames_path = frames_path
        self.settings = CacheSettings(**index["settings"])
        self.entries: dict[str, dict[str, Any]] = index["clips"]
        self.failed: dict[str, str] = index["failed"]
        self.failed_stamps: dict[str, Any] = index["failed_stamps"]
        self.total_frames: int = index["total_frames"]
        self.frames_inode: int = index["frames_inode"]
        self._frames: np.memmap | None = None

    @classmethod
    def open(cls, directory: Path, split: str, settings: CacheSettings) -> FrameCache | None:
        """The cache of `split` in `directory` if it exists and was built with `settings`, else None."""
        frames_path, index_path = _file_names(Path(directory), split)
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
            frames_status = frames_path.stat()
        except (OSError, ValueError):
            return None
        if not isinstance(index, dict) or index.get("settings") != dataclasses.asdict(settings):
            return None
        frames_size, frames_inode = frames_status.st_size, frames_status.st_ino
        if not (isinstance(index.get("clips"), dict) and isinstance(index.get("failed"), dict)
                and isinstance(index.get("failed_stamps"), dict) and type(index.get("total_frames")) is int
                and type(index.get("frames_inode")) is int):
            return None  # an index this code did not write whole: rebuilt, as a stale one is
        if frames_size != index["total_frames"] * settings.image_size**2 * 3 or frames_inode != index["frames_inode"]:
            return None  # truncated or replaced behind the index's back
        if not all(_whole_entry(entry, index["total_frames"]) for entry in index["clips"].values()):
            return None
        return cls(frames_path, index)

    def covers(self, clip: Clip) -> bool:
        """True when the cache holds frames of this clip's current video file and segment."""
        entry = self.entries.get(clip.video_id)
        return entry is not None and entry["stamp"] == video_stamp(clip)

    def read(self, clip_id: str, num_frames: int, rng: np.random.Generator | None = None) -> SampledFrames:
        """`num_frames` cached frames of a clip: segment midpoints, or random offsets with `rng`."""
        entry = self.entries.get(clip_id)
        if entry is None:
            raise KeyError(f"clip {clip_id!r} is not in the frame cache {self.frames_path}")
        indices, mask = sample_frame_indices(entry["count"], num_frames, rng)
        frames = self._memory_map()[entry["offset"] + indices]  # fancy indexing copies out of the map
        frames[~mask] = 0
        return SampledFrames(frames=frames, mask=mask)

    def _memory_map(self) -> np.memmap:
        if self._frames is None:
            size = self.settings.image_size
            with self.frames_path.open("rb") as file:  # the map is of the file opened here, checked here
                if os.fstat(file.fileno()).st_ino != self.frames_inode:
                    raise FrameCacheChangedError(
                        f"{self.frames_path}: the frame cache was rebuilt after this run opened it (another "
                        f"`vtrbench data prepare`, or a changed video): run again to read the new one")
                self._frames = np.memmap(file, dtype=np.uint8, mode="r", shape=(self.total_frames, size, size, 3))
        return self._frames

    def __getstate__(self) -> dict[str, Any]:
        # Loader workers get the path, not the map: pickling a memmap would copy every frame into the worker.
        return {**self.__dict__, "_frames": None}

    def is_current(self, clips: list[Clip]) -> bool:
        """True when the cache holds exactly these clips, each from its current file, or failed on that very
        file (a video replaced or restored since it failed is decoded again)."""
        ids = {clip.video_id for clip in clips}
        if ids != set(self.entries) | set(self.failed):
            return False
        return all(self.covers(clip) if clip.video_id in self.entries
                   else self.failed_stamps.get(clip.video_id) == video_stamp(clip) for clip in clips)


def build_frame_cache(
    clips: list[Clip], directory: Path, split: str, settings: CacheSettings, progress: bool = False
) -> FrameCache:
    """Decode every clip once into `directory`; clips that cannot be decoded are listed in `failed`."""
    from tqdm import tqdm

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    frames_path, index_path = _file_names(directory, split)
    index_path.unlink(missing_ok=True)  # written last: until then no half-built cache can be opened
    frame_bytes = settings.image_size**2 * 3
    entries: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    failed_stamps: dict[str, Any] = {}  # the file each failed on (None: there was none)
    total = 0
    show = progress and sys.stderr.isatty()

    def write_frames(temporary: Path) -> None:
        nonlocal total
        with temporary.open("wb") as out:
            for clip in tqdm(clips, desc=f"caching {split} frames", disable=not show):
                if clip.video_id in entries or clip.video_id in failed:
                    continue
                stamp = video_stamp(clip)
                failed_stamps[clip.video_id] = stamp
                if stamp is None:
                    failed[clip.video_id] = clip.invalid or "missing video file"
                    continue
                count = 0
                try:
                    for frames in decode_for_cache(clip.path, settings, clip.start, clip.end):
                        out.write(frames.tobytes())
                        count += len(frames)
                except VideoReadError as err:
                    out.seek(total * frame_bytes)  # drop the frames this clip wrote before failing
                    out.truncate()
                    failed[clip.video_id] = f"unreadable: {err}"
                    continue
                del failed_stamps[clip.video_id]
                entries[clip.video_id] = {"offset": total, "count": count, "stamp": stamp}
                total += count

    atomic_write(frames_path, write_frames)
    index = {"settings": dataclasses.asdict(settings), "split": split, "total_frames": total,
             "frames_inode": frames_path.stat().st_ino, "clips": entries, "failed": failed,
             "failed_stamps": failed_stamps}
    atomic_write_text(index_path, json.dumps(index), encoding="utf-8")
    return FrameCache(frames_path, index)


def prepare_frame_cache(
    clips: list[Clip], directory: Path, split: str, settings: CacheSettings, progress: bool = False
) -> tuple[FrameCache, bool]:
    """(the split's cache, whether it was rebuilt): rebuilt when absent, of other settings or out of date."""
    cache = FrameCache.open(directory, split, settings)
    if cache is not None and cache.is_current(clips):
        return cache, False
    return build_frame_cache(clips, directory, split, settings, progress), True
