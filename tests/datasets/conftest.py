"""Shared pieces of the dataset tests: the real annotation files, and tiny real videos made with PyAV."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
# Codecs that decord and PyAV both read; webm (libvpx wants options) is tested with empty files only.
CODECS = {".mp4": "libx264", ".mkv": "libx264", ".avi": "mpeg4"}


@pytest.fixture(scope="session")
def shared_annotations() -> Path:
    root = Path(os.environ.get("VTRBENCH_SHARED_ANNOTATIONS", REPO.parent / "shared" / "annotations"))
    if not root.is_dir():
        pytest.skip(f"the real annotation files are not at {root} (set VTRBENCH_SHARED_ANNOTATIONS)")
    return root


def write_video(path: Path, num_frames: int = 12, width: int = 64, height: int = 48, fps: int = 8) -> Path:
    """A real, decodable clip whose frame i is filled with grey level 10 * i (so frames can be told apart).

    The width is a multiple of 32: decord 0.6 cannot copy other widths (video.py then falls back to PyAV).
    """
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(CODECS[path.suffix], rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(num_frames):
            frame = np.full((height, width, 3), (10 * i) % 256, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


@pytest.fixture
def make_video() -> Callable[..., Path]:
    return write_video


def write_text(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def make_text() -> Callable[..., Path]:
    return write_text
