"""VATEX in its real files: the HGR split id lists (`train_list.txt` 25,991 / `val_list.txt` 1,500 /
`test_list.txt` 1,500, disjoint, one `<YouTubeID>_<start>_<end>` per line) and English captions from a
caption json. Val keeps every caption of its videos, like the test.

The caption json may be the official VATEX file (a list of `{"videoID", "enCap": [10], "chCap": [10]}`),
CLIP2Video's `vatex_data.json` (`{videoID: {"enCap": [...]}}`) or a plain `{videoID: [captions]}`; the
shape is detected. The official captions come in several files (training, validation), so `captions_json`
is a list of files whose captions are pooled. Every caption of a test video is its own query (10 per video).
Layout: `<root>/<video_dir>/**/<videoID>.<any video extension>` and the annotation files under `<root>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vtrbench.datasets.base import AnnotationError, AnnotationFormat, read_id_list, read_json
from vtrbench.registry import DATASETS


@dataclass
class VATEXConfig:
    root: str | None = None  # null: the offline default data
    video_dir: str = "videos"  # searched recursively, any video extension
    train_list: str = "train_list.txt"
    val_list: str | None = "val_list.txt"  # HGR's val; null: a seeded hold-out of train_list
    test_list: str = "test_list.txt"
    # One or more files, e.g. [vatex_training_v1.0.json, vatex_validation_v1.0.json]; captions are pooled.
    captions_json: list[str] = field(default_factory=lambda: ["vatex_data.json"])
    val_fraction: float = 0.1  # the hold-out, when val_list is null
    val_seed: int = 0


def _checked_captions(path: Path, key: str, captions: object) -> list[str]:
    if not isinstance(captions, list) or not captions:
        raise AnnotationError(f"{path}: {key}: expected a non-empty list of English captions")
    checked = []
    for i, caption in enumerate(captions):
        if not isinstance(caption, str) or not caption.strip():
            raise AnnotationError(f"{path}: {key}[{i}]: empty or non-text caption")
        checked.append(caption.strip())
    return checked


def read_vatex_captions(path: Path) -> dict[str, list[str]]:
    """videoID -> English captions, from any of the three caption json shapes."""
    data = read_json(path)
    captions: dict[str, list[str]] = {}
    if isinstance(data, list):  # the official files
        for i, entry in enumerate(data):
            if not isinstance(entry, dict) or "videoID" not in entry or "enCap" not in entry:
                raise AnnotationError(f"{path}: [{i}]: expected an object with 'videoID' and 'enCap'")
            if not isinstance(entry["videoID"], str) or not entry["videoID"]:  # str() made null "None"
                raise AnnotationError(f"{path}: [{i}]: 'videoID' must be a non-empty string, got {entry['videoID']!r}")
            video_id = entry["videoID"]
            if video_id in captions:
                raise AnnotationError(f"{path}: [{i}]: videoID {video_id!r} appears twice")
            captions[video_id] = _checked_captions(path, f"[{i}] ({video_id}) enCap", entry["enCap"])
    elif isinstance(data, dict):
        for video_id, value in data.items():
            if isinstance(value, dict):  # CLIP2Video's vatex_data.json
                if "enCap" not in value:
                    raise AnnotationError(f"{path}: key {video_id!r}: expected 'enCap' in its object")
                captions[video_id] = _checked_captions(path, f"key {video_id!r} enCap", value["enCap"])
            else:
                captions[video_id] = _checked_captions(path, f"key {video_id!r}", value)
    else:
        raise AnnotationError(
            f"{path}: expected a list of {{videoID, enCap}} or an object videoID -> captions"
        )
    return captions


@DATASETS.register("vatex")
class VATEX(AnnotationFormat):
    Config = VATEXConfig
    offline_format = "vatex"
    val_file_option = "val_list"

    def captions(self) -> dict[str, list[str]]:
        if not self.config.captions_json:
            raise AnnotationError("vatex.captions_json: no caption file given")
        pooled: dict[str, list[str]] = {}
        for name in self.config.captions_json:
            path = self.annotation(name)
            for video_id, captions in read_vatex_captions(path).items():
                if video_id in pooled and pooled[video_id] != captions:
                    raise AnnotationError(
                        f"{path}: videoID {video_id!r} has other captions in an earlier file"
                    )
                pooled[video_id] = captions
        return pooled

    def read(self, split: str) -> list[tuple[str, list[str], dict]]:
        lists = {"train": self.config.train_list, "val": self.config.val_list, "test": self.config.test_list}
        ids_path = self.annotation(lists[split])
        ids = read_id_list(ids_path)
        captions = self.captions()
        clips = []
        for line, video_id in ids:
            if video_id not in captions:
                sources = ", ".join(self.config.captions_json)
                raise AnnotationError(
                    f"{ids_path}, line {line}: video {video_id!r} has no caption in {sources}"
                )
            clips.append((video_id, captions[video_id], {}))
        return clips
