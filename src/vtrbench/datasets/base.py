"""The dataset contract: one class per annotation format turns files on disk into clips per split.

A format reads annotation files and finds each clip's video; decoding, sampling, tokenising and batching
belong to the harness. `root: null` in a dataset's config means the offline default data: the root that
`DATA_ROOTS` holds under the format's name (the offline room generates it in the real layout on first use).

Three splits: `train`, `val` and `test`. `val` is the format's official validation file where its config names
one (`val_file_option`), else a seeded hold-out of the train file (`holdout_ids`, the same rule for every
format). `train` is the train file minus the val ids, so nothing ever trains on a clip it is validated on.
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from vtrbench.datasets.video import find_video, index_videos
from vtrbench.registry import DATA_ROOTS

SPLITS = ("train", "val", "test")


class AnnotationError(ValueError):
    """A malformed annotation file; the message names the file and the line, row or key."""


def read_csv_rows(path: Path, required: list[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of a csv with a header that must contain `required`; errors name file and line."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise AnnotationError(f"{path}, line 1: missing column(s) {missing}; header is {header}")
            rows, start = [], reader.line_num + 1
            try:
                for row in reader:
                    if None in row:  # an unquoted comma: csv puts the rest under None and the value is cut
                        raise AnnotationError(
                            f"{path}, line {start}: {len(header) + len(row[None])} values, expected {len(header)} "
                            f"({', '.join(header)}); a value holding a comma must be quoted")
                    spanning = [c for c, v in row.items() if isinstance(v, str) and ("\n" in v or "\r" in v)]
                    if spanning:  # a stray double quote would swallow the rows after it into one value
                        raise AnnotationError(
                            f"{path}, line {start}: the value of column {spanning[0]!r} runs on to line "
                            f"{reader.line_num}; expected one row per line (an unbalanced double quote?)")
                    for column in required:
                        if not (row.get(column) or "").strip():
                            raise AnnotationError(
                                f"{path}, line {reader.line_num}: empty value in column {column!r}"
                            )
                    rows.append((reader.line_num, row))
                    start = reader.line_num + 1
            except csv.Error as err:
                raise AnnotationError(f"{path}, line {start}: not a csv row ({err}; an unbalanced double "
                                      f"quote?)") from err
            return rows
    except UnicodeDecodeError as err:
        raise AnnotationError(f"{path}: not UTF-8 text ({err})") from err


class _RepeatedKey(Exception):
    def __init__(self, key: str):
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object hook: a key that appears twice in one object would silently replace the first."""
    unique: dict[str, Any] = {}
    for key, value in pairs:
        if key in unique:
            raise _RepeatedKey(key)
        unique[key] = value
    return unique


def read_json(path: Path) -> object:
    """The parsed file; a repeated key inside one object is an error, not a silent replacement."""
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle, object_pairs_hook=_unique_keys)
    except _RepeatedKey as err:
        raise AnnotationError(f"{path}: key {err.key!r} appears twice in one object (the second would "
                              f"silently replace the first)") from None
    except json.JSONDecodeError as err:
        raise AnnotationError(
            f"{path}, line {err.lineno}, column {err.colno}: invalid JSON: {err.msg}"
        ) from err
    except UnicodeDecodeError as err:
        raise AnnotationError(f"{path}: not UTF-8 text ({err})") from err
    except RecursionError:
        raise AnnotationError(f"{path}: nested too deeply to read (no annotation format nests more than a few "
                              f"levels)") from None


def read_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of every non-blank line, line ends stripped; the last line may lack its newline."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise AnnotationError(f"{path}: not UTF-8 text ({err})") from err
    # Text mode already turned CRLF into \n. str.splitlines would also break a caption at a stray form feed
    # or unicode line separator, shifting every later line number.
    lines = text.split("\n")
    return [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]


def unique_ids(path: Path, numbered_ids: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """`numbered_ids` ((line, id) pairs of one split file) unchanged; a repeated id is an error naming both
    lines (it would add a clip, and a query, twice)."""
    seen: dict[str, int] = {}
    for number, video_id in numbered_ids:
        if video_id in seen:
            raise AnnotationError(f"{path}, line {number}: id {video_id!r} repeats line {seen[video_id]}")
        seen[video_id] = number
    return numbered_ids


def read_id_list(path: Path) -> list[tuple[int, str]]:
    """(line number, id) of a one-id-per-line split file; a repeated id is an error (it would count twice), and
    so is a file with no id (a split of nothing, most likely the wrong file)."""
    numbered = read_lines(path)
    if not numbered:
        raise AnnotationError(f"{path}: no ids: expected one video id per line")
    return unique_ids(path, [(number, line.strip()) for number, line in numbered])


def holdout_ids(ids: list[str], fraction: float, seed: int) -> set[str]:
    """The ids a seeded hold-out keeps for validation: round(fraction * n) of them (at least one, and at least
    one left to train on), drawn by `seed` from the sorted ids, so the draw does not depend on file order."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction={fraction}: expected a fraction between 0 and 1 (exclusive)")
    unique = sorted(set(ids))
    if len(unique) < 2:
        raise ValueError(f"a hold-out needs at least 2 training clips, found {len(unique)}")
    count = min(max(1, round(fraction * len(unique))), len(unique) - 1)
    return set(random.Random(seed).sample(unique, count))


def normalise_whitespace(text: str) -> str:
    """Runs of whitespace collapsed to one space, ends stripped."""
    return " ".join(text.split())


def shared_clip_ids(ids: dict[str, set[str]]) -> list[tuple[str, str, list[str]]]:
    """(split, split, ids in both) for every pair of splits that share clips: a val or test clip that is also
    trained on, or a val clip that is tested on, would make the numbers meaningless."""
    names = list(ids)
    return [(first, second, sorted(ids[first] & ids[second]))
            for i, first in enumerate(names) for second in names[i + 1:] if ids[first] & ids[second]]


def named_twice(clips: dict[str, list[str]]) -> list[str]:
    """`X and v_X` for every clip of one split (`clips_by_file`) that it names under more than one id."""
    return [" and ".join(names) for names in clips.values() if len(names) > 1]


def shared_clips(named: dict[str, dict[str, list[str]]]) -> list[tuple[str, str, list[str]]]:
    """`shared_clip_ids` over the clips of `clips_by_file`, each clip shown by its ids in both splits
    (`X = v_X`, or `X` where both spell it alike)."""
    return [(first, second, [" = ".join(dict.fromkeys(named[first][key] + named[second][key])) for key in common])
            for first, second, common in shared_clip_ids({split: set(clips) for split, clips in named.items()})]


class SharedClipsError(ValueError):
    """Two splits share clips; the message names the root, the splits and the clips."""


@dataclass
class Clip:
    video_id: str
    path: Path | None  # None: the video file was not found, or the id is invalid
    captions: list[str]
    start: float | None = None  # seconds, for clips cut from a longer video
    end: float | None = None
    invalid: str | None = None  # why the id is refused ("invalid id: ..."); such a clip's file is never read


@dataclass
class Split:
    name: str
    clips: list[Clip]
    notes: list[str] = field(default_factory=list)

    @property
    def num_captions(self) -> int:
        return sum(len(c.captions) for c in self.clips)


class AnnotationFormat:
    """Subclasses set `Config` (a dataclass with at least `root`, `video_dir`, `val_fraction`, `val_seed` and
    the file option named by `val_file_option`) and implement `read` for "train", "val" and "test"; `read`
    returns the files' clips as they are, and `load` derives the splits (train minus val) from them."""

    Config: ClassVar[type]
    offline_format: ClassVar[str | None] = None  # its name in DATA_ROOTS, where its offline default data is
    val_file_option: ClassVar[str] = "val_file"  # the config field naming the official val file (null: none)

    def __init__(self, config: Any):
        self.config = config
        self._video_index: dict[str, Path] | None = None
        self._found: dict[str, tuple[Path | None, str | None, str]] = {}  # id -> confined path, why not, clip key
        self._video_root: Path | None = None  # the videos folder, resolved once
        self._offline_root: Path | None = None

    @property
    def root(self) -> Path:
        if self.config.root is None:
            return self.offline_root()
        return Path(self.config.root).expanduser()

    def offline_root(self, progress: bool = True) -> Path:
        """Generate (or reuse) the offline default data in this format; returns its root. Checked once per
        dataset object: the check reads every file of the data, and `root` is asked for every clip."""
        if self._offline_root is None:
            if self.offline_format is None or self.offline_format not in DATA_ROOTS:
                raise ValueError(f"{type(self).__name__} has no offline default data; set its root=...")
            self._offline_root = Path(DATA_ROOTS.get(self.offline_format)(progress=progress))
        return self._offline_root

    def read(self, split: str) -> list[tuple[str, list[str], dict]]:
        """(video id, captions, extra fields such as start/end) for every clip of the `split` file as it is
        ("val" is only asked for when the config names a val file)."""
        raise NotImplementedError

    @property
    def val_file(self) -> str | None:
        return getattr(self.config, self.val_file_option)

    def val_source(self) -> str:
        """Where the val split comes from, in words (for `data check`, result files and reports)."""
        if self.val_file is not None:
            return f"{self.val_file} (official val file, {self.val_file_option})"
        return (f"seeded hold-out of the train file: val_fraction={self.config.val_fraction}, "
                f"val_seed={self.config.val_seed}")

    def read_val(self) -> list[tuple[str, list[str], dict]]:
        """The val clips: the configured file (a missing one is an error naming it, never a fallback), else
        the seeded hold-out of the train file."""
        if self.val_file is not None:
            self.annotation(self.val_file)  # raises FileNotFoundError naming the file when it is not there
            return self.read("val")
        train = self.read("train")
        try:
            held_out = holdout_ids([video_id for video_id, _, _ in train], self.config.val_fraction,
                                   self.config.val_seed)
        except ValueError as err:  # name the option and the file the hold-out draws from
            name = self.offline_format or "<dataset>"
            raise ValueError(f"{name}.val_fraction (val held out of the train file under {self.root}): "
                             f"{err}") from err
        return [clip for clip in train if clip[0] in held_out]

    def check_disjoint_splits(self) -> None:
        """Refuse splits that share clips, and a split that names one video under two ids (no video is read;
        the videos folder is listed). Train excludes val by construction; a val or train file that holds test
        clips would train or tune on the test split without a word. Clips are compared by the video file their
        id finds, so two spellings of one clip (ActivityNet's `v_X` and `X`, LSMDC's `./X` and `X`) are one
        clip; an id whose video is missing is compared as written."""
        val = {video_id for video_id, _, _ in self.read_val()}
        ids = {"train": {video_id for video_id, _, _ in self.read("train")} - val, "val": val,
               "test": {video_id for video_id, _, _ in self.read("test")}}
        named = self.clips_by_file({split: sorted(split_ids) for split, split_ids in ids.items()})
        for split, clips in named.items():
            twice = named_twice(clips)
            if twice:
                shown = "; ".join(twice[:3]) + ("; ..." if len(twice) > 3 else "")
                raise SharedClipsError(f"{self.root}: the {split} split names {len(twice):,} video(s) under two ids "
                                       f"({shown}): one clip would count twice; fix the split file")
        shared = shared_clips(named)
        if shared:
            first, second, common = shared[0]
            shown = ", ".join(common[:5]) + (", ..." if len(common) > 5 else "")
            more = "".join(f"; also {a} and {b} share {len(c):,}" for a, b, c in shared[1:])
            raise SharedClipsError(f"{self.root}: the {first} and {second} splits share {len(common):,} clip(s) "
                                   f"({shown}){more}: a run would train or tune on clips it is scored on; fix the "
                                   f"split files (`vtrbench data check` lists them)")

    def load(self, split: str) -> Split:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        if split == "test":
            rows = self.read("test")
        elif split == "val":
            rows = self.read_val()
        else:
            val_ids = {video_id for video_id, _, _ in self.read_val()}
            rows = [row for row in self.read("train") if row[0] not in val_ids]
        clips = []
        for vid, captions, extra in rows:
            path, invalid = self.confined_video_path(vid)
            clips.append(Clip(video_id=vid, path=path, captions=captions, invalid=invalid, **extra))
        return Split(name=split, clips=clips)

    def confined_video_path(self, video_id: str) -> tuple[Path | None, str | None]:
        """(the video file of `video_id` or None, None), or (None, why) for an id that leaves the videos
        folder: an absolute id, one whose `..` climbs out, or one whose file resolves (through a symbolic
        link) outside `<root>/<video_dir>`. Annotation files are shared and downloaded: an id must never make
        a run read a file elsewhere. The videos folder itself may be a link; single files linking out may not.
        """
        return self._find(video_id)[:2]

    def clips_by_file(self, ids: dict[str, Iterable[str]]) -> dict[str, dict[str, list[str]]]:
        """split -> the clip (`clip_key`) -> its ids in the order given: the grouping that `named_twice` and
        `shared_clips` read."""
        named: dict[str, dict[str, list[str]]] = {}
        for split, split_ids in ids.items():
            clips = named.setdefault(split, {})
            for video_id in split_ids:
                clips.setdefault(self.clip_key(video_id), []).append(video_id)
        return named

    def clip_key(self, video_id: str) -> str:
        """What makes two ids one clip: the video file the id finds (resolved), else the id as written."""
        return self._find(video_id)[2]

    def _find(self, video_id: str) -> tuple[Path | None, str | None, str]:
        if video_id not in self._found:  # each id is looked up once per dataset object
            if self._video_root is None:
                self._video_root = (self.root / self.config.video_dir).resolve()
            video_root = self._video_root
            if not Path(os.path.normpath(video_root / video_id)).is_relative_to(video_root):
                found = None, f"invalid id: it points outside {video_root}", video_id
            elif (path := self.video_path(video_id)) is None:
                found = None, None, video_id
            elif not (resolved := path.resolve()).is_relative_to(video_root):
                found = None, f"invalid id: its video {path} resolves outside {video_root}", video_id
            else:
                found = path, None, str(resolved)
            self._found[video_id] = found
        return self._found[video_id]

    def video_path(self, video_id: str) -> Path | None:
        video_root = self.root / self.config.video_dir
        if self._video_index is None:
            self._video_index = index_videos(video_root)
        return find_video(video_root, video_id, self._video_index)

    def check_root(self) -> None:
        """A root the config sets must be a folder: said at once, before anything slow (a backbone's
        pretraining) runs, and as the one cause of every missing file."""
        if self.config.root is not None and not self.root.is_dir():
            raise FileNotFoundError(f"the dataset root {self.root} is not a folder (set "
                                    f"{self.offline_format or '<dataset>'}.root to the folder of its files)")

    def annotation(self, name: str) -> Path:
        path = Path(name)
        path = path if path.is_absolute() else self.root / path
        if not path.is_file():
            self.check_root()  # one cause for every file: say it, not each file's absence
            raise FileNotFoundError(f"annotation file {path} does not exist")
        return path
