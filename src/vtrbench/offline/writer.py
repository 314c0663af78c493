"""Writing a generated dataset to disk, what every format shares (`generate_dataset`): mp4 files rendered and
encoded on every CPU core, annotation files written atomically, and a marker written last that records the
settings and every file, once every video is checked in place. A dataset folder is therefore either complete
and current, or regenerated: a changed setting, renderer, interrupted run or missing file never leaves stale
or half-written data that looks finished. Generation holds a lock beside the folder, so that two processes
never write one dataset at once."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import stat
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vtrbench.cache import cache_dir, exclusive_lock
from vtrbench.files import atomic_write, atomic_write_text
from vtrbench.offline.world import CLIPS_VERSION, ClipSpec, render_clip, sample_clips
from vtrbench.processes import end_with_parent, usable_cores
from vtrbench.progress import bar, phase
from vtrbench.registry import DATA_ROOTS

# The offline backbone's input size, so that neither caching nor loading resizes. A multiple of 32: decord 0.6.0
# returns garbled frames (4 channels) for widths that are not, e.g. 48.
VIDEO_SIZE = 32
VIDEO_FPS = 8
# MPEG-4 part 2, not H.264: libx264 in PyAV's ffmpeg gives different bytes for the same frames from run to run,
# which would break "same seed, same dataset"; mpeg4 is deterministic and in every ffmpeg build.
VIDEO_CODEC = "mpeg4"
# Near-lossless quality: the cues are a few pixels wide and the files stay tiny anyway.
VIDEO_QSCALE = 2
MARKER_NAME = ".vtrbench_synthetic.json"
OFFLINE_SEED = 0  # the world seed of the offline default data (`DATA_ROOTS`); other seeds are other draws
SPLITS = ("train", "val", "test")


def write_mp4(path: Path, frames: np.ndarray, fps: int = VIDEO_FPS) -> None:
    """Encode uint8 [T, H, W, 3] frames (H, W even) as an mp4, written atomically."""
    import av

    def encode(temporary: Path) -> None:
        with av.open(str(temporary), mode="w", format="mp4") as container:
            stream = container.add_stream(VIDEO_CODEC, rate=fps)
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            stream.options = {"qscale": str(VIDEO_QSCALE)}
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode())

    atomic_write(path, encode)


@dataclass(frozen=True)
class VideoJob:
    """One video file: the clips it plays one after another (one clip, or an ActivityNet video's events)."""

    path: Path
    clips: tuple[ClipSpec, ...]


def _render_and_write(job: VideoJob) -> None:
    write_mp4(job.path, np.concatenate([render_clip(spec, VIDEO_SIZE) for spec in job.clips]))


def write_videos(jobs: Sequence[VideoJob], description: str, progress: bool = True) -> None:
    """Render and encode every job, one process per CPU core where the platform can fork.

    Each video depends on its specs alone, so the files are the same whatever the number of processes.
    Fork (not spawn) keeps the start-up cost at nothing; the workers use numpy and PyAV only, never torch.
    """
    workers = min(len(jobs), usable_cores())
    with phase(f"{description}: {len(jobs):,} videos on {workers} process(es)", progress):
        if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
            for job in bar(jobs, description, progress):
                _render_and_write(job)
            return
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=end_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            done = pool.map(_render_and_write, jobs, chunksize=16)
            for _ in bar(done, description, progress, total=len(jobs)):
                pass


def write_json(path: Path, payload: object) -> None:
    atomic_write_text(path, json.dumps(payload, indent=1))


def dataset_settings(format_name: str, seed: int, sizes: dict[str, int], **extra: object) -> dict:
    """What a generated dataset depends on: its marker holds it, and any change regenerates the data."""
    return {"format": format_name, "renderer_version": CLIPS_VERSION, "seed": seed, "sizes": dict(sizes),
            "size": VIDEO_SIZE, "fps": VIDEO_FPS, "codec": VIDEO_CODEC, "qscale": VIDEO_QSCALE, **extra}


def settings_identity(format_name: str, seed: int, sizes: dict[str, int], **extra: object) -> str:
    """The name of the dataset these settings generate, `<format>-<hash of the settings>`: it changes whenever
    the data would (a format's offline root names its data by it: `DATA_ROOTS.identity`)."""
    settings = dataset_settings(format_name, seed, sizes, **extra)
    return f"{format_name}-{hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]}"


def dataset_files(root: Path) -> list[str]:
    """Every file of a generated dataset, relative to its root (hidden names aside: the marker, temporaries)."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*")
                  if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts))


def is_complete(root: Path, settings: dict) -> bool:
    """The marker says these settings and every file it lists is in place with the size it was written with
    (else: regenerate; a truncated video or an annotation file cut by hand is not this dataset)."""
    try:
        marker = json.loads((root / MARKER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable, not UTF-8, not JSON
        return False
    files = marker.pop("files", None) if isinstance(marker, dict) else None
    return marker == settings and isinstance(files, dict) and bool(files) \
        and all(inside(name) and _has_size(root / name, size) for name, size in files.items())


def _has_size(path: Path, size: object) -> bool:
    try:
        status = path.stat()
    except OSError:
        return False
    return stat.S_ISREG(status.st_mode) and isinstance(size, int) and status.st_size == size


def inside(name: object) -> bool:
    """A marker's file name that stays below the dataset root (a relative path without '..')."""
    return isinstance(name, str) and not Path(name).is_absolute() and ".." not in Path(name).parts


def start_dataset(root: Path, settings: dict) -> Path:
    """Prepare `root` for writing: drop a stale marker and return an empty `root/videos` folder (leftovers of
    other settings would otherwise linger beside the new clips)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER_NAME).unlink(missing_ok=True)  # the marker is written last, only once all files exist
    video_dir = root / "videos"
    if video_dir.exists():
        shutil.rmtree(video_dir)
    return video_dir


def finish_dataset(root: Path, settings: dict, jobs: Sequence[VideoJob]) -> Path:
    """Mark `root` complete, after checking that every video is in place; the marker lists every file."""
    missing = [str(job.path) for job in jobs if not job.path.is_file() or not job.path.stat().st_size]
    if missing:
        raise RuntimeError(f"{root}: {len(missing):,} of {len(jobs):,} generated videos are missing or empty "
                           f"(e.g. {missing[0]}); the dataset is not marked complete and is regenerated next time")
    write_json(root / MARKER_NAME, {**settings, "files": {name: (root / name).stat().st_size
                                                          for name in dataset_files(root)}})
    return root


def generate_dataset(format_name: str, title: str, root: Path, seed: int, sizes: dict[str, int],
                     write_annotations: Callable[[Path, Path, int, dict[str, int]], list[VideoJob]],
                     progress: bool = True, **extra: object) -> Path:
    """What generating any format takes: unless `root` holds this very dataset already (its marker has these
    settings and lists files that are all in place), empty it, let the format write its annotation files
    (`write_annotations(root, video_dir, seed, sizes)`, which returns the videos to render), render the
    videos, check them, then write the marker last.

    All of it holds a lock beside `root` (`.<name>.lock`), so that two first-use processes (a leaderboard and a
    `data check`) never write one dataset at once: the second waits, then finds it complete. A complete dataset
    is read without taking the lock."""
    root = Path(root)
    settings = dataset_settings(format_name, seed, sizes, **extra)
    if is_complete(root, settings):  # no lock to read a complete dataset (a read-only cache works)
        return root
    with exclusive_lock(root.parent / f".{root.name}.lock"):
        if is_complete(root, settings):
            return root
        video_dir = start_dataset(root, settings)
        jobs = write_annotations(root, video_dir, seed, sizes)
        write_videos(jobs, f"generating the offline {title}", progress)
        return finish_dataset(root, settings, jobs)


def register_offline_root(format_name: str, generate: Callable[..., Path], sizes: Callable[[], dict[str, int]],
                          **extra: object) -> None:
    """Register the format's offline default data in `DATA_ROOTS`: `generate(root, seed, sizes, progress)` with
    the world seed `OFFLINE_SEED` and the format's `sizes()` (read when asked) under `cache_dir()/data/<format>`,
    named (`identity`) by the same settings its marker holds (`extra`: the format's own, as `generate` passes
    them to `generate_dataset`)."""

    def offline_root(progress: bool = True) -> Path:
        return generate(cache_dir() / "data" / format_name, OFFLINE_SEED, sizes(), progress)

    def identity() -> str:
        return settings_identity(format_name, OFFLINE_SEED, sizes(), **extra)

    offline_root.identity = identity  # type: ignore[attr-defined]
    DATA_ROOTS.register(format_name)(offline_root)


def split_clips(format_name: str, seed: int, sizes: dict[str, int]) -> list[tuple[str, ClipSpec]]:
    """Every split's clips, train first, each split from its own derived seed and sampled alike."""
    return [(split, spec) for split in SPLITS if split in sizes
            for spec in sample_clips(sizes[split], derived_seed(seed, f"{format_name}/{split}"))]


def derived_seed(seed: int, purpose: str) -> int:
    """An independent seed per dataset and use (`"vatex/train"`), so formats and splits never share clips."""
    return int(np.random.SeedSequence([seed, *purpose.encode()]).generate_state(1)[0])


# YouTube ids are 11 characters of the URL-safe base64 alphabet.
_YOUTUBE_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


def youtube_ids(rng: np.random.Generator, n: int) -> list[str]:
    """`n` distinct made-up YouTube ids."""
    ids: dict[str, None] = {}  # a dict keeps the drawing order, so the ids are the same on every platform
    while len(ids) < n:
        ids["".join(rng.choice(_YOUTUBE_ALPHABET, 11))] = None
    return list(ids)
