"""MSR-VTT in its real files: `MSRVTT_data.json` (official videos/sentences layout), a train id csv
(`MSRVTT_train.9k.csv` or `.7k`), the official validation id csv (`MSRVTT_val.full.csv`, 497 videos) and the
JSFusion 1k-A test csv (1,000 video-caption pairs).

Training uses every caption of each train video (about 20 per video with the real json); the test split has
one caption per video, as the 1k-A protocol does. The val split keeps every caption of its videos.

Deliberate difference from the 9k protocol: the official val videos are inside the 9k train list, and the
papers that train on 9k select on the test split. Here val is the official 497 and train is 9k minus those,
8,503 videos, so that nothing is selected on test and nothing trains on val (`val_csv: null` holds out a
seeded 10% of the train list instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vtrbench.datasets.base import AnnotationError, AnnotationFormat, read_csv_rows, read_json, unique_ids
from vtrbench.registry import DATASETS


@dataclass
class MSRVTTConfig:
    root: str | None = None  # null: the offline default data
    video_dir: str = "videos"  # searched recursively, any video extension
    data_json: str = "MSRVTT_data.json"
    train_csv: str = "MSRVTT_train.9k.csv"
    val_csv: str | None = "MSRVTT_val.full.csv"  # null: a seeded hold-out of train_csv
    test_csv: str = "MSRVTT_JSFUSION_test.csv"
    val_fraction: float = 0.1  # the hold-out, when val_csv is null
    val_seed: int = 0


def read_msrvtt_sentences(path: Path) -> dict[str, list[str]]:
    """video id -> captions, from the official `sentences` list."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("sentences"), list):
        raise AnnotationError(f"{path}: expected an object with a 'sentences' list (official MSR-VTT layout)")
    captions: dict[str, list[str]] = {}
    for i, sentence in enumerate(data["sentences"]):
        if not isinstance(sentence, dict) or "video_id" not in sentence or "caption" not in sentence:
            raise AnnotationError(f"{path}: sentences[{i}]: expected keys 'video_id' and 'caption'")
        video_id, caption = sentence["video_id"], sentence["caption"]
        if not isinstance(video_id, str) or not video_id.strip():
            raise AnnotationError(f"{path}: sentences[{i}]: video_id {video_id!r} is not a video id (text)")
        if not isinstance(caption, str):  # str() would make null, 12345 or false into a caption
            raise AnnotationError(f"{path}: sentences[{i}] (video {video_id}): caption {caption!r} is not text")
        if not caption.strip():
            raise AnnotationError(f"{path}: sentences[{i}] (video {video_id}): empty caption")
        captions.setdefault(video_id.strip(), []).append(caption.strip())
    return captions


@DATASETS.register("msrvtt")
class MSRVTT(AnnotationFormat):
    Config = MSRVTTConfig
    offline_format = "msrvtt"
    val_file_option = "val_csv"

    def read(self, split: str) -> list[tuple[str, list[str], dict]]:
        if split == "test":
            path = self.annotation(self.config.test_csv)
            rows = read_csv_rows(path, ["video_id", "sentence"])
            unique_ids(path, [(line, row["video_id"].strip()) for line, row in rows])
            return [(row["video_id"].strip(), [row["sentence"].strip()], {}) for _, row in rows]
        ids_path = self.annotation(self.config.train_csv if split == "train" else self.config.val_csv)
        json_path = self.annotation(self.config.data_json)
        captions = read_msrvtt_sentences(json_path)
        clips = []
        rows = read_csv_rows(ids_path, ["video_id"])
        for line, video_id in unique_ids(ids_path, [(line, row["video_id"].strip()) for line, row in rows]):
            if video_id not in captions:
                raise AnnotationError(
                    f"{ids_path}, line {line}: video {video_id!r} has no caption in {json_path}"
                )
            clips.append((video_id, captions[video_id], {}))
        return clips
