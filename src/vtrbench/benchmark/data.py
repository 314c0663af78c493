"""Batches for every method alike: the same clips, frames, captions and tokens (docs/protocol.md, "Frames,
pixels and text")."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from vtrbench.datasets.base import Clip, Split
from vtrbench.datasets.frame_cache import FrameCache
from vtrbench.datasets.video import VideoReadError, count_frames, preprocess_frames, read_frames


@dataclass
class FrameSpec:
    num_frames: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass
class CheckedSplit:
    """A split after probing its videos: the usable clips and what was skipped, by id, with the reason."""

    name: str
    clips: list[Clip]
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def caption_video(self) -> np.ndarray:
        """The clip index of every caption, in caption order (the evaluation's query order)."""
        return np.repeat(np.arange(len(self.clips)), [len(c.captions) for c in self.clips])

    @property
    def captions(self) -> list[str]:
        return [caption for clip in self.clips for caption in clip.captions]

    def set_aside(self, reasons: dict[int, str]) -> None:
        """Drop the clips at these indices (with their captions, hence their queries) and record why."""
        for index, reason in reasons.items():
            self.skipped[self.clips[index].video_id] = reason
        self.clips = [clip for index, clip in enumerate(self.clips) if index not in reasons]


@dataclass(frozen=True)
class DecodeFailure:
    """A clip whose frames could not be decoded, in place of its item in a batch."""

    clip: int
    reason: str


def check_split(split: Split, cache: FrameCache | None = None) -> CheckedSplit:
    """Open every video once; invalid ids, missing, unreadable and empty clips are set aside and named. A clip
    that a frame cache holds from its current file needs no opening: the cache decoded it and kept its frames."""
    usable, skipped = [], {}
    for clip in split.clips:
        if clip.invalid is not None:
            skipped[clip.video_id] = clip.invalid
            continue
        if clip.path is None:
            skipped[clip.video_id] = "missing video file"
            continue
        if cache is not None and cache.covers(clip):
            usable.append(clip)
            continue
        try:
            if count_frames(clip.path) == 0:
                skipped[clip.video_id] = "no frames"
                continue
        except VideoReadError as err:
            skipped[clip.video_id] = f"unreadable: {err}"
            continue
        usable.append(clip)
    return CheckedSplit(name=split.name, clips=usable, skipped=skipped)


def tokenize(tokenizer: Callable, captions: list[str]) -> torch.Tensor:
    """open_clip tokenisation; the tokenizer was built with context_length = max_words (EOT kept). The same
    captions with the same tokenizer object are tokenised once per process (a copy is returned)."""
    return _tokenized(tokenizer, tuple(captions)).clone()


@functools.lru_cache(maxsize=16)
def _tokenized(tokenizer: Callable, captions: tuple[str, ...]) -> torch.Tensor:
    return tokenizer(list(captions)).long()


class ClipFrames(Dataset):
    """The sampled, preprocessed frames of each clip; random segment offsets when `train`.

    With a frame cache (`vtrbench data prepare`), clips it covers are read from it instead of decoded.
    """

    def __init__(
        self, clips: list[Clip], spec: FrameSpec, train: bool, seed: int = 0, cache: FrameCache | None = None
    ):
        self.clips, self.spec, self.train, self.seed, self.cache = clips, spec, train, seed, cache
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.clips)

    def frames(self, index: int) -> dict | DecodeFailure:
        clip = self.clips[index]
        # A fixed seed per (epoch, clip) keeps training sampling reproducible across workers and resumes.
        rng = np.random.default_rng((self.seed, self.epoch, index)) if self.train else None
        try:
            if self.cache is not None and self.cache.covers(clip):
                sampled = self.cache.read(clip.video_id, self.spec.num_frames, rng)
            else:
                sampled = read_frames(clip.path, self.spec.num_frames, rng, clip.start, clip.end)
        except VideoReadError as err:
            return DecodeFailure(index, str(err))
        frames = preprocess_frames(sampled.frames, self.spec.image_size, self.spec.mean, self.spec.std)
        return {"frames": frames, "mask": torch.from_numpy(sampled.mask), "clip": index}

    def __getitem__(self, index: int) -> dict | DecodeFailure:
        return self.frames(index)


class CaptionPairs(ClipFrames):
    """Training pairs: every caption of every clip, with its clip's frames."""

    def __init__(
        self, clips: list[Clip], spec: FrameSpec, tokens: torch.Tensor, seed: int = 0,
        cache: FrameCache | None = None,
    ):
        super().__init__(clips, spec, train=True, seed=seed, cache=cache)
        self.pairs = np.repeat(np.arange(len(clips)), [len(c.captions) for c in clips])
        self.tokens = tokens
        if len(self.pairs) != len(tokens):
            raise ValueError("one token row per caption is needed")

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict | DecodeFailure:
        item = self.frames(int(self.pairs[index]))
        if isinstance(item, dict):
            item["tokens"] = self.tokens[index]
        return item


def collate(items: list[dict | DecodeFailure]) -> dict:
    """Stack the items that decoded; count and name the ones that did not (skipped, never fatal)."""
    good = [item for item in items if isinstance(item, dict)]
    failures = [(item.clip, item.reason) for item in items if isinstance(item, DecodeFailure)]
    batch: dict = {"failed": len(failures), "failures": failures}
    if good:
        for key in good[0]:
            values = [item[key] for item in good]
            batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else torch.tensor(values)
    return batch
