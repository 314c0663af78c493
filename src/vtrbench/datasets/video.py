"""Video input shared by every dataset and method (docs/protocol.md, "Frames, pixels and text").

decord opens a clip and decodes only the sampled frames; frames are spread uniformly over the clip (segment
midpoints for evaluation, one random offset inside each segment for training); clips shorter than the
frame count are padded and masked, never repeated silently.

What the native decoders print on a broken file (ffmpeg inside decord: `[h264 @ 0x..] error while decoding
MB ..`, often hundreds of lines) goes to a log file, `decoder_log_path()`, each burst followed by the path of
the video that caused it; the failure itself is raised as a VideoReadError naming the file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
_decoder_log: Path | None = None


def log_decoder_messages(path: Path | None) -> None:
    """Where the native decoders' messages go from now on (a run: `<run dir>/decode.log`); None: the default,
    `<vtrbench cache>/decode.log`. Loader worker processes forked later inherit the setting."""
    global _decoder_log
    _decoder_log = path


def decoder_log_path() -> Path:
    from vtrbench.cache import cache_dir

    return _decoder_log if _decoder_log is not None else cache_dir() / "decode.log"


@contextmanager
def native_messages_logged(video: Path | str) -> Iterator[None]:
    """Around one native decoder call: file descriptor 2 points at the decoder log (ffmpeg writes there
    itself, past Python), then back; the video's path follows whatever the call wrote. Python's own stderr
    is flushed first; a write from another thread during the call would land in the log too."""
    path = decoder_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    except OSError:  # nowhere to write: the messages stay on the terminal
        yield
        return
    sys.stderr.flush()
    terminal = os.dup(2)
    before = os.fstat(log).st_size
    os.dup2(log, 2)
    try:
        yield
    finally:
        os.dup2(terminal, 2)
        os.close(terminal)
        if os.fstat(log).st_size != before:
            os.write(log, f"^ while decoding {video}\n".encode())
        os.close(log)


class VideoReadError(RuntimeError):
    pass


@dataclass(frozen=True)
class SampledFrames:
    frames: np.ndarray  # uint8 [T, H, W, 3], zero-padded past the real frames
    mask: np.ndarray  # bool [T]


def sample_frame_indices(
    num_available: int, num_frames: int, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of `num_frames` frames out of `num_available` and a mask of the real ones.

    With `rng`, one random offset inside each of the T equal segments (training, TSN style); without,
    each segment's midpoint (evaluation). Fewer frames than T: every frame once, then masked padding.
    """
    if num_available <= 0:
        raise VideoReadError("the clip has no frames")
    if num_available < num_frames:
        indices = np.concatenate([np.arange(num_available), np.zeros(num_frames - num_available, dtype=np.int64)])
        mask = np.arange(num_frames) < num_available
        return indices.astype(np.int64), mask
    edges = np.linspace(0.0, num_available, num_frames + 1)
    starts, widths = edges[:-1], np.diff(edges)
    offsets = rng.random(num_frames) * widths if rng is not None else widths / 2.0
    indices = np.minimum(np.floor(starts + offsets).astype(np.int64), num_available - 1)
    return indices, np.ones(num_frames, dtype=bool)


def frame_range(num_frames: int, fps: float, start: float | None, end: float | None) -> tuple[int, int]:
    """The [first, last) frames of a segment given in seconds (the whole clip when not given)."""
    first = 0 if start is None else max(0, int(round(start * fps)))
    last = num_frames if end is None else min(num_frames, int(round(end * fps)) + 1)
    if last <= first:  # a segment past the clip's end: keep its last frame rather than nothing
        first, last = max(0, num_frames - 1), num_frames
    return first, last


def read_frames(
    path: Path | str,
    num_frames: int,
    rng: np.random.Generator | None = None,
    start: float | None = None,
    end: float | None = None,
) -> SampledFrames:
    """Decode the T sampled frames of one clip (only those frames)."""
    import decord

    try:
        with native_messages_logged(path):
            reader = decord.VideoReader(str(path), num_threads=1)
        total = len(reader)
        first, last = frame_range(total, float(reader.get_avg_fps() or 1.0), start, end)
    except Exception as err:  # decord raises its own DECORDError and RuntimeError for broken files
        raise VideoReadError(f"{path}: cannot open: {one_line(err)}") from err
    if last <= first:
        raise VideoReadError(f"{path}: the clip has no frames")
    indices, mask = sample_frame_indices(last - first, num_frames, rng)
    try:
        try:
            with native_messages_logged(path):
                frames = reader.get_batch((indices + first).tolist()).asnumpy()
        except decord.DECORDError:
            # decord 0.6 cannot copy frames whose width is not a multiple of 32 (padded line size); PyAV can
            frames = _decode_with_pyav(path, indices + first)
    except VideoReadError:
        raise
    except Exception as err:
        raise VideoReadError(f"{path}: cannot decode: {one_line(err)}") from err
    frames[~mask] = 0
    return SampledFrames(frames=frames, mask=mask)


def one_line(err: BaseException) -> str:
    """decord's messages carry a C++ stack of several lines; the first says what went wrong."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _decode_with_pyav(path: Path | str, indices: np.ndarray) -> np.ndarray:
    """The frames at `indices` (any order, repeats allowed), decoding up to the last one only."""
    import av

    wanted = set(int(i) for i in indices)
    found: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        for position, frame in enumerate(container.decode(video=0)):
            if position in wanted:
                found[position] = frame.to_ndarray(format="rgb24")
            if position >= max(wanted):
                break
    if len(found) != len(wanted):
        raise VideoReadError(f"{path}: frames {sorted(wanted - set(found))[:5]} could not be decoded")
    return np.stack([found[int(i)] for i in indices])


def count_frames(path: Path | str) -> int:
    """Number of frames in a clip; raises VideoReadError when it cannot be opened."""
    import decord

    try:
        with native_messages_logged(path):
            return len(decord.VideoReader(str(path), num_threads=1))
    except Exception as err:
        raise VideoReadError(f"{path}: cannot open: {one_line(err)}") from err


def preprocess_frames(
    frames: np.ndarray, image_size: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """uint8 [T, H, W, 3] -> float [T, 3, S, S]: short side resized to S, centre crop, backbone mean/std."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    height, width = x.shape[-2:]
    if min(height, width) != image_size:
        scale = image_size / min(height, width)
        size = (max(image_size, round(height * scale)), max(image_size, round(width * scale)))
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True).clamp_(0.0, 1.0)
    height, width = x.shape[-2:]
    top, left = (height - image_size) // 2, (width - image_size) // 2
    x = x[:, :, top : top + image_size, left : left + image_size]
    mean_t = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean_t) / std_t


def find_video(root: Path, video_id: str, index: dict[str, Path] | None = None) -> Path | None:
    """The file of `video_id` under `root` whatever its extension, or None."""
    if index is not None:
        return index.get(video_id)
    for ext in VIDEO_EXTENSIONS:
        candidate = root / f"{video_id}{ext}"
        if candidate.is_file():
            return candidate
    return None


def index_videos(root: Path) -> dict[str, Path]:
    """Every video file under `root` (recursively) by its file name without extension."""
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file():
            found.setdefault(path.stem, path)
    return found
