"""ActivityNet Captions in its real files, for paragraph-to-video retrieval: `train.json` (10,009 videos) and
`val_1.json` (4,917 videos, the retrieval test), each `{"v_<YouTubeID>": {"duration", "timestamps",
"sentences"}}`.

There is no usable official validation file: `val_2.json` holds the same videos as `val_1.json`, the test.
So val is a seeded hold-out of train.json (`val_fraction` 0.1, `val_seed` 0: 1,001 of the 10,009 videos) and
training uses the other 9,008; `val_json` may name a file of the same layout instead.

Each video is one clip (the whole video) with one caption: its sentences joined by a space, whitespace then
collapsed (about two thirds of the sentences start with spaces). The video file may be named with or
without the `v_` prefix (`v_<id>.mp4` or `<id>.mp4`, any video extension, anywhere under `video_dir`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vtrbench.datasets.base import AnnotationError, AnnotationFormat, normalise_whitespace, read_json
from vtrbench.registry import DATASETS

PREFIX = "v_"


@dataclass
class ActivityNetConfig:
    root: str | None = None  # null: the offline default data
    video_dir: str = "videos"  # v_<id>.<ext> or <id>.<ext>, searched recursively
    train_json: str = "train.json"
    val_json: str | None = None  # none official (val_2 shares val_1's videos): a seeded hold-out of train
    test_json: str = "val_1.json"
    val_fraction: float = 0.1
    val_seed: int = 0


def read_paragraphs(path: Path) -> dict[str, str]:
    """video key (`v_<id>`) -> paragraph, in file order."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise AnnotationError(f"{path}: expected an object v_<id> -> {{duration, timestamps, sentences}}")
    paragraphs = {}
    for key, value in data.items():
        if not isinstance(value, dict) or not isinstance(value.get("sentences"), list):
            raise AnnotationError(f"{path}: key {key!r}: expected an object with a 'sentences' list")
        sentences = value["sentences"]
        for i, sentence in enumerate(sentences):
            if not isinstance(sentence, str):
                raise AnnotationError(f"{path}: key {key!r}: sentences[{i}] is not text")
        paragraph = normalise_whitespace(" ".join(sentences))
        if not paragraph:
            raise AnnotationError(f"{path}: key {key!r}: empty paragraph (no sentence text)")
        paragraphs[key] = paragraph
    return paragraphs


def file_name_candidates(video_key: str) -> list[str]:
    """The names a video's file may have: the key as is, then without (or with) the `v_` prefix."""
    if video_key.startswith(PREFIX):
        return [video_key, video_key[len(PREFIX):]]
    return [video_key, PREFIX + video_key]


@DATASETS.register("activitynet")
class ActivityNet(AnnotationFormat):
    Config = ActivityNetConfig
    offline_format = "activitynet"
    val_file_option = "val_json"

    def read(self, split: str) -> list[tuple[str, list[str], dict]]:
        files = {"train": self.config.train_json, "val": self.config.val_json, "test": self.config.test_json}
        path = self.annotation(files[split])
        return [(key, [paragraph], {}) for key, paragraph in read_paragraphs(path).items()]

    def video_path(self, video_id: str) -> Path | None:
        for name in file_name_candidates(video_id):
            path = super().video_path(name)
            if path is not None:
                return path
        return None
