"""Clips per second of the harness's frame loading: decoding every epoch vs reading the frame cache.

Generates clips (h264, 25 fps, 3 to 10 s, a moving pattern so the codec has work), builds the cache once
(`build_frame_cache`, as `vtrbench data prepare` does) and times `ClipFrames.frames`, the very function a
training epoch calls per clip, with training sampling (random segment offsets) both ways.

    python perf/frame_cache.py --clips 32 --width 64 --height 64 --image-size 32 --num-frames 12
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from vtrbench.benchmark.data import ClipFrames, FrameSpec
from vtrbench.datasets.base import Clip
from vtrbench.datasets.frame_cache import DEFAULT_FPS, CacheSettings, build_frame_cache

NATIVE_FPS = 25
MEAN, STD = (0.48, 0.46, 0.41), (0.27, 0.26, 0.28)


def write_clip(path: Path, seconds: float, width: int, height: int, seed: int) -> None:
    import av

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=NATIVE_FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(int(seconds * NATIVE_FPS)):
            frame = np.roll(base, shift=t, axis=1)  # a scrolling texture: every frame differs
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def clips_per_second(frames: ClipFrames, epochs: int) -> float:
    start = time.perf_counter()
    for epoch in range(epochs):
        frames.epoch = epoch
        for index in range(len(frames)):
            if frames.frames(index) is None:
                raise RuntimeError(f"clip {index} could not be read")
    return epochs * len(frames) / (time.perf_counter() - start)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--width", type=int, default=64, help="a multiple of 32 keeps decord's fast path")
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=32, help="the backbone's input size")
    parser.add_argument("--num-frames", type=int, default=12)
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help="the cache's rate")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        durations = np.random.default_rng(0).uniform(3.0, 10.0, size=args.clips)
        clips = []
        for i, seconds in enumerate(durations):
            path = root / f"clip{i}.mp4"
            write_clip(path, float(seconds), args.width, args.height, seed=i)
            clips.append(Clip(f"clip{i}", path, ["a caption"]))

        settings = CacheSettings(args.image_size, args.fps, min_frames=args.num_frames)
        start = time.perf_counter()
        cache = build_frame_cache(clips, root / "cache", "train", settings)
        build_seconds = time.perf_counter() - start

        spec = FrameSpec(args.num_frames, args.image_size, MEAN, STD)
        decoding = clips_per_second(ClipFrames(clips, spec, train=True), args.epochs)
        cached = clips_per_second(ClipFrames(clips, spec, train=True, cache=cache), args.epochs)
    print(json.dumps({
        "clips": args.clips, "video": f"{args.width}x{args.height} @ {NATIVE_FPS} fps, 3-10 s",
        "image_size": args.image_size, "num_frames": args.num_frames, "cache_fps": args.fps,
        "cache_build_s": round(build_seconds, 2), "cache_frames": cache.total_frames,
        "decoding_clips_per_s": round(decoding, 1), "cached_clips_per_s": round(cached, 1),
        "speedup": round(cached / decoding, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
