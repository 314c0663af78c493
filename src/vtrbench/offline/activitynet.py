"""The generated world in ActivityNet Captions' real layout, for paragraph-to-video retrieval.

`train.json` and `val_1.json` (the retrieval test), each `{"v_<id>": {"duration", "timestamps",
"sentences"}}`, and `videos/<id>.mp4` (no `v_` prefix, as CLIP4Clip-style loaders name the files). A video
is one object in one scene doing 2-3 things in turn: events of the clip sampler played one after another,
the later ones taking the first one's appearance and background (each keeps its own place). One sentence
per event with its `[start, end]` in seconds; as in the real files, sentences after the first start with a
space. Like the real dataset there is no validation file (the real val_2 shares its videos with val_1): the
loader holds out part of train.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from vtrbench.offline import writer
from vtrbench.offline.world import distinct_captions, sample_clips
from vtrbench.offline.writer import VIDEO_FPS, VideoJob, derived_seed, generate_dataset, write_json, youtube_ids

# One paragraph per video; about 1,000 test paragraphs. The loader holds out a tenth of train for validation
# (150 videos), leaving 1,350 (42 steps of 32 an epoch).
SIZES = {"train": 1500, "test": 1000}
FILES = {"train": "train.json", "test": "val_1.json"}
EVENTS_PER_VIDEO = (2, 3)  # fewest and most
# Events are shorter than a stand-alone clip so that a video stays at most 6 s (48 frames) and decodes fast;
# the 8 frames the harness samples from a video still give every event at least 2.
EVENT_FRAMES = (12, 16)
EXTRA_SETTINGS = {"events": list(EVENTS_PER_VIDEO), "event_frames": list(EVENT_FRAMES)}


def generate_activitynet(
    root: Path, seed: int = writer.OFFLINE_SEED, sizes: dict[str, int] | None = None, progress: bool = True
) -> Path:
    """Write a synthetic ActivityNet Captions to `root` (unless it holds this one already) and return `root`."""
    return generate_dataset("activitynet", "ActivityNet", root, seed, dict(sizes or SIZES), write_activitynet,
                            progress, **EXTRA_SETTINGS)


def write_activitynet(root: Path, video_dir: Path, seed: int, sizes: dict[str, int]) -> list[VideoJob]:
    id_rng = np.random.default_rng(derived_seed(seed, "activitynet/ids"))
    ids = iter(youtube_ids(id_rng, sum(sizes.values())))
    caption_rng = np.random.default_rng(derived_seed(seed, "activitynet/captions"))
    jobs = []
    for split, size in sizes.items():
        # The k-th events of a split's videos are the k-th of its own sampler run; a video is one scene: its
        # later events keep the first one's subject, look and companion.
        by_position = [
            sample_clips(size, derived_seed(seed, f"activitynet/{split}/{k}"),
                         frames=EVENT_FRAMES)
            for k in range(EVENTS_PER_VIDEO[1])
        ]
        annotations = {}
        for index in range(size):
            first = by_position[0][index]
            n_events = int(id_rng.integers(EVENTS_PER_VIDEO[0], EVENTS_PER_VIDEO[1] + 1))
            events = [first] + [
                replace(by_position[k][index], colour=first.colour, shape=first.shape, size=first.size,
                        radius=first.radius, background=first.background, look_seed=first.look_seed,
                        companion=first.companion)
                for k in range(1, n_events)
            ]
            youtube_id = next(ids)
            jobs.append(VideoJob(video_dir / f"{youtube_id}.mp4", tuple(events)))
            timestamps, sentences, first_frame = [], [], 0
            for spec in events:
                last_frame = first_frame + spec.n_frames
                timestamps.append([round(first_frame / VIDEO_FPS, 3), round(last_frame / VIDEO_FPS, 3)])
                sentence = distinct_captions(spec, caption_rng, 1)[0]
                sentences.append(f" {sentence}" if sentences else sentence)
                first_frame = last_frame
            annotations[f"v_{youtube_id}"] = {
                "duration": round(first_frame / VIDEO_FPS, 3),
                "timestamps": timestamps,
                "sentences": sentences,
            }
        write_json(root / FILES[split], annotations)
    return jobs


writer.register_offline_root("activitynet", generate_activitynet, lambda: SIZES, **EXTRA_SETTINGS)
