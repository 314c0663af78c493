"""LSMDC in its real files: tab-separated, no header, exactly 6 fields per line, no quoting:
`CLIP_ID  START_ALIGNED  END_ALIGNED  START_EXTRACTED  END_EXTRACTED  SENTENCE`.

Train is `LSMDC16_annos_training.csv` (about 101k lines), val the official `LSMDC16_annos_val.csv` (same
format, movies of its own), test the 1,000-clip public test `LSMDC16_challenge_1000_publictect.csv`. A clip
id may repeat with several sentences: it becomes one clip with those captions, in file order. The clips are
already cut, so each video file is a whole clip, named `<video_dir>/<movie>/<CLIP_ID>.<ext>` where the movie
is the clip id up to its last `_` (`3086_UGLY_TRUTH_00.23.23.000-00.23.28.886` -> `3086_UGLY_TRUTH`); a file
of that id anywhere under `video_dir` is found too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vtrbench.datasets.base import AnnotationError, AnnotationFormat, read_lines
from vtrbench.datasets.video import find_video
from vtrbench.registry import DATASETS

NUM_FIELDS = 6


@dataclass
class LSMDCConfig:
    root: str | None = None  # null: the offline default data
    video_dir: str = "videos"  # <movie>/<clip id>.<ext>, or anywhere below by clip id
    train_csv: str = "LSMDC16_annos_training.csv"
    val_csv: str | None = "LSMDC16_annos_val.csv"  # null: a seeded hold-out of train_csv
    test_csv: str = "LSMDC16_challenge_1000_publictect.csv"
    val_fraction: float = 0.1  # the hold-out, when val_csv is null
    val_seed: int = 0


def read_lsmdc_sentences(path: Path) -> dict[str, list[str]]:
    """clip id -> sentences, in the order the clips and their sentences first appear."""
    captions: dict[str, list[str]] = {}
    for number, line in read_lines(path):
        fields = line.split("\t")
        if len(fields) != NUM_FIELDS:
            raise AnnotationError(
                f"{path}, line {number}: expected {NUM_FIELDS} tab-separated fields, found {len(fields)}"
            )
        clip_id, sentence = fields[0].strip(), fields[-1].strip()
        if not clip_id:
            raise AnnotationError(f"{path}, line {number}: empty clip id")
        if not sentence:
            raise AnnotationError(f"{path}, line {number}: empty sentence for clip {clip_id!r}")
        captions.setdefault(clip_id, []).append(sentence)
    return captions


def movie_of(clip_id: str) -> str:
    return clip_id.rsplit("_", 1)[0]


@DATASETS.register("lsmdc")
class LSMDC(AnnotationFormat):
    Config = LSMDCConfig
    offline_format = "lsmdc"
    val_file_option = "val_csv"

    def read(self, split: str) -> list[tuple[str, list[str], dict]]:
        files = {"train": self.config.train_csv, "val": self.config.val_csv, "test": self.config.test_csv}
        path = self.annotation(files[split])
        return [(clip_id, captions, {}) for clip_id, captions in read_lsmdc_sentences(path).items()]

    def video_path(self, video_id: str) -> Path | None:
        # The movie folder first: it is where the released clips live, and it is one stat, not a tree walk.
        in_movie_folder = find_video(self.root / self.config.video_dir / movie_of(video_id), video_id)
        return in_movie_folder or super().video_path(video_id)
