"""`vtrbench data check` and `vtrbench data prepare`: look at a dataset before a run, and cache its frames.

Both take the dataset's name and the same `key=value` overrides as `vtrbench run`
(`vtrbench data check vatex vatex.root=/data/vatex`), so they see exactly the files a run would read.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass, field

from omegaconf import DictConfig
from tqdm import tqdm

from vtrbench.benchmark.config import ConfigError, dataset_options, resolve_config
from vtrbench.datasets.base import SPLITS, AnnotationError, AnnotationFormat, Clip, named_twice, shared_clips
from vtrbench.datasets.frame_cache import frame_cache_dir, prepare_frame_cache
from vtrbench.datasets.video import VideoReadError, decoder_log_path, log_decoder_messages, read_frames
from vtrbench.registry import DATASETS


@dataclass
class SplitReport:
    name: str
    error: str | None = None  # the annotation error that makes the split unreadable
    clips: list[Clip] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)  # clip id -> why its id is refused
    unreadable: dict[str, str] = field(default_factory=dict)
    short: dict[str, int] = field(default_factory=dict)  # clip id -> frames, for clips under data.num_frames

    @property
    def usable(self) -> int:
        return len(self.clips) - len(self.missing) - len(self.invalid) - len(self.unreadable)


def check_split_files(dataset: AnnotationFormat, split: str, num_frames: int) -> SplitReport:
    """Read the split's annotations and decode every clip's evaluation frames (the midpoints of
    `num_frames` segments) once: a file broken past its header is found here, not after training."""
    report = SplitReport(split)
    try:
        report.clips = dataset.load(split).clips
    except (AnnotationError, FileNotFoundError) as err:
        report.error = str(err)
        return report
    show = sys.stderr.isatty()
    for clip in tqdm(report.clips, desc=f"decoding {split} videos", disable=not show, leave=False):
        if clip.invalid is not None:
            report.invalid[clip.video_id] = clip.invalid
            continue
        if clip.path is None:
            report.missing.append(clip.video_id)
            continue
        try:
            sampled = read_frames(clip.path, num_frames, None, clip.start, clip.end)
        except VideoReadError as err:
            report.unreadable[clip.video_id] = str(err).removeprefix(f"{clip.path}: ")
            continue
        if not sampled.mask.all():
            report.short[clip.video_id] = int(sampled.mask.sum())
    return report


def _listed(items: list[str], show: int) -> str:
    shown = ", ".join(items[:show])
    return shown + (f", ... and {len(items) - show} more" if len(items) > show else "")


def print_report(report: SplitReport, num_frames: int, show: int) -> None:
    if report.error is not None:
        print(f"{report.name}: UNUSABLE: {report.error}")
        return
    per_clip = [len(clip.captions) for clip in report.clips] or [0]
    captions = sum(per_clip)
    print(f"{report.name}: {len(report.clips):,} clips, {captions:,} captions "
          f"(per clip min {min(per_clip)}, mean {statistics.fmean(per_clip):.2f}, max {max(per_clip)})")
    if report.invalid:
        reasons = [f"{clip_id!r} ({reason})" for clip_id, reason in report.invalid.items()]
        print(f"  invalid ids (never read): {len(report.invalid):,}: {_listed(reasons, show)}")
    if report.missing:
        print(f"  missing videos: {len(report.missing):,}: {_listed(report.missing, show)}")
    if report.unreadable:
        reasons = [f"{clip_id} ({reason})" for clip_id, reason in report.unreadable.items()]
        print(f"  unreadable videos: {len(report.unreadable):,}: {_listed(reasons, show)}")
    if report.short:
        counts = [f"{clip_id} ({frames})" for clip_id, frames in report.short.items()]
        print(f"  shorter than data.num_frames={num_frames} (padded and masked): {len(report.short):,}: "
              f"{_listed(counts, show)}")
    state = "usable" if report.usable else "UNUSABLE: no usable clip"
    print(f"  {state}: {report.usable:,} of {len(report.clips):,} clips")


def _dataset_config(dataset_name: str, overrides: list[str]) -> DictConfig:
    """The run config of `dataset_name`; a `dataset=` among the overrides would read one dataset's files with
    another's reader, so it is refused."""
    for override in overrides:
        if override.split("=", 1)[0] in ("dataset", "datasets"):
            raise ConfigError(f"{override!r}: the dataset is named once, as the command's first argument "
                              f"({dataset_name}); drop it from the key=value settings")
    return resolve_config([f"dataset={dataset_name}", *overrides])


def data_check(dataset_name: str, overrides: list[str], show: int = 10) -> int:
    """Print what a run of this dataset would see: train (after the val hold-out), val and test; 1 when a
    split is unusable or two splits share clips, else 0."""
    config = _dataset_config(dataset_name, overrides)
    dataset = DATASETS.get(dataset_name)(dataset_options(config))
    num_frames = int(config.data.num_frames)
    print(f"{dataset_name}: root {dataset.root}, videos in {dataset.root / dataset.config.video_dir}")
    print(f"val: {dataset.val_source()}; train is the train file minus the val clips")
    log_decoder_messages(None)
    log = decoder_log_path()
    logged_before = log.stat().st_size if log.is_file() else 0
    unusable = 0
    reports = []
    for split in SPLITS:
        report = check_split_files(dataset, split, num_frames)
        print_report(report, num_frames, show)
        unusable += report.error is not None or report.usable == 0
        reports.append(report)
    # clips compared by the video file each id finds, as a run's `check_disjoint_splits` compares them
    named = dataset.clips_by_file({r.name: [c.video_id for c in r.clips] for r in reports if r.error is None})
    for split, clips in named.items():
        twice = named_twice(clips)
        if twice:
            print(f"{split} names {len(twice):,} video(s) under two ids: {_listed(twice, show)}")
            unusable += 1
    for first, second, common in shared_clips(named):
        print(f"{first} and {second} share {len(common):,} clip(s): {_listed(common, show)}")
        unusable += 1
    if log.is_file() and log.stat().st_size > logged_before:
        print(f"decoder messages: {log}")
    return 1 if unusable else 0


def data_prepare(dataset_name: str, overrides: list[str], splits: list[str] | None = None) -> int:
    """Build (or keep, when current) the frame cache of each split; 1 when a split cached no clip. Where and
    at what rate: exactly the cache a run of the same preset and overrides reads (`data.frame_cache_fps`,
    `data.num_frames`, the backbone's input size), so no cache is built that no run opens."""
    from vtrbench.benchmark.matrix import frame_cache_settings

    config = _dataset_config(dataset_name, overrides)
    dataset = DATASETS.get(dataset_name)(dataset_options(config))
    log_decoder_messages(None)
    settings = frame_cache_settings(config)
    directory = frame_cache_dir(dataset_name, dataset.root)
    print(f"{dataset_name}: frame cache in {directory} ({settings.image_size}px, {settings.fps:g} fps, "
          f"at least {settings.min_frames} frames a clip)")
    empty = 0
    for split in splits or list(SPLITS):
        cache, rebuilt = prepare_frame_cache(dataset.load(split).clips, directory, split, settings,
                                             progress=True)
        state = "built" if rebuilt else "up to date"
        print(f"{split}: {state}: {len(cache.entries):,} clips, {cache.total_frames:,} frames, "
              f"{len(cache.failed):,} not cached")
        for clip_id, reason in list(cache.failed.items())[:10]:
            print(f"  {clip_id}: {reason}")
        empty += not cache.entries
    return 1 if empty else 0
