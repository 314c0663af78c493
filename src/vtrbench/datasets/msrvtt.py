"""MSR-VTT in its real files: `MSRVTT_data.json` (official videos/sentences layout), a train id csv
(`MSRVTT_train.9k.csv` or `.7k`) and the JSFusion 1k-A test csv (1,000 video-caption pairs).

Training uses every caption of each train video (about 20 per video with the real json); the test split has
one caption per video, as the 1k-A protocol does.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from vtrbench.benchmark.registry import DATASETS
from vtrbench.datasets.base import AnnotationError, AnnotationFormat


@dataclass
class MSRVTTConfig:
    root: str | None = None  # null: the offline default data
    video_dir: str = "videos"  # searched recursively, any video extension
    data_json: str = "MSRVTT_data.json"
    train_csv: str = "MSRVTT_train.9k.csv"
    test_csv: str = "MSRVTT_JSFUSION_test.csv"


def read_csv_rows(path: Path, required: list[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of a csv with a header that must contain `required`; errors name file and line."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise AnnotationError(f"{path}, line 1: missing column(s) {missing}; header is {header}")
            rows = []
            for row in reader:
                for column in required:
                    if not (row.get(column) or "").strip():
                        raise AnnotationError(f"{path}, line {reader.line_num}: empty value in column {column!r}")
                rows.append((reader.line_num, row))
            return rows
    except UnicodeDecodeError as err:
        raise AnnotationError(f"{path}: not UTF-8 text ({err})") from err


def read_json(path: Path) -> object:
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise AnnotationError(f"{path}, line {err.lineno}, column {err.colno}: invalid JSON: {err.msg}") from err
    except UnicodeDecodeError as err:
        raise AnnotationError(f"{path}: not UTF-8 text ({err})") from err


def read_msrvtt_sentences(path: Path) -> dict[str, list[str]]:
    """video id -> captions, from the official `sentences` list."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("sentences"), list):
        raise AnnotationError(f"{path}: expected an object with a 'sentences' list (official MSR-VTT layout)")
    captions: dict[str, list[str]] = {}
    for i, sentence in enumerate(data["sentences"]):
        if not isinstance(sentence, dict) or "video_id" not in sentence or "caption" not in sentence:
            raise AnnotationError(f"{path}: sentences[{i}]: expected keys 'video_id' and 'caption'")
        caption = str(sentence["caption"]).strip()
        if not caption:
            raise AnnotationError(f"{path}: sentences[{i}] (video {sentence['video_id']}): empty caption")
        captions.setdefault(str(sentence["video_id"]), []).append(caption)
    return captions


@DATASETS.register("msrvtt")
class MSRVTT(AnnotationFormat):
    Config = MSRVTTConfig

    def offline_root(self) -> Path:
        from vtrbench.datasets import synthetic

        return synthetic.offline_dataset("msrvtt")

    def read(self, split: str) -> list[tuple[str, list[str], dict]]:
        if split == "test":
            path = self.annotation(self.config.test_csv)
            return [
                (row["video_id"].strip(), [row["sentence"].strip()], {})
                for _, row in read_csv_rows(path, ["video_id", "sentence"])
            ]
        ids_path = self.annotation(self.config.train_csv)
        json_path = self.annotation(self.config.data_json)
        captions = read_msrvtt_sentences(json_path)
        clips = []
        for line, row in read_csv_rows(ids_path, ["video_id"]):
            video_id = row["video_id"].strip()
            if video_id not in captions:
                raise AnnotationError(f"{ids_path}, line {line}: video {video_id!r} has no caption in {json_path}")
            clips.append((video_id, captions[video_id], {}))
        return clips
