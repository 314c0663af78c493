"""The generated world in MSR-VTT's real layout.

`videos/video<i>.mp4`; `MSRVTT_data.json` in the official layout (every clip's 5 paraphrases, and each video's
`split`: train, validate or test); `MSRVTT_train.9k.csv` (train and validation ids, as the real 9k list
holds the official validation videos); `MSRVTT_val.full.csv` (the validation ids, the official val file's
layout); `MSRVTT_JSFUSION_test.csv` (one caption per test clip, as 1k-A). Ids run train, validation, test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vtrbench.files import atomic_write_text
from vtrbench.offline import writer
from vtrbench.offline.world import CLIPS_VERSION, EVENTS, caption_clip
from vtrbench.offline.writer import VIDEO_FPS, VideoJob, derived_seed, generate_dataset, split_clips, write_json

# The split sizes of the offline default: a 1k-A-sized test, so that R@1's 95% interval is about +-3 points
# or less; 500 training clips of 5 captions each (78 steps of 32 pairs an epoch), which cover the world's
# appearance x event x place combinations about once; a validation split of 250 for tuning and curves.
SIZES = {"train": 500, "val": 250, "test": 1000}
OFFICIAL_SPLIT = {"train": "train", "val": "validate", "test": "test"}


def generate_msrvtt(root: Path, seed: int = writer.OFFLINE_SEED, sizes: dict[str, int] | None = None,
                    progress: bool = True) -> Path:
    """Write a synthetic MSR-VTT to `root` (unless it holds this one already) and return `root`."""
    return generate_dataset("msrvtt", "MSR-VTT", root, seed, dict(sizes or SIZES), write_msrvtt, progress)


def write_msrvtt(root: Path, video_dir: Path, seed: int, sizes: dict[str, int]) -> list[VideoJob]:
    caption_rng = np.random.default_rng(derived_seed(seed, "msrvtt/captions"))
    videos, sentences, test_rows, jobs = [], [], [], []
    for index, (split, spec) in enumerate(split_clips("msrvtt", seed, sizes)):
        video_id = f"video{index}"
        jobs.append(VideoJob(video_dir / f"{video_id}.mp4", (spec,)))
        videos.append({
            "video_id": video_id,
            "category": EVENTS.index(spec.event),
            "url": f"synthetic://vtrbench/{video_id}",
            "start time": 0.0,
            "end time": round(spec.n_frames / VIDEO_FPS, 3),
            "split": OFFICIAL_SPLIT[split],
            "id": index,
        })
        captions = caption_clip(spec, caption_rng)
        sentences += [{"caption": caption, "video_id": video_id, "sen_id": len(sentences) + i}
                      for i, caption in enumerate(captions)]
        if split == "test":
            test_rows.append(f"ret{len(test_rows)},msr{index},{video_id},{captions[0]}")

    info = {
        "contributor": "vtrbench synthetic world",
        "data_created": "generated",
        "version": f"clips {CLIPS_VERSION}",
        "year": 2016,
        "description": "coloured shapes that move, appear, disappear, flash or stay still",
    }
    write_json(root / "MSRVTT_data.json", {"info": info, "videos": videos, "sentences": sentences})

    def id_csv(*splits: str) -> str:
        ids = [video["video_id"] for video in videos if video["split"] in {OFFICIAL_SPLIT[s] for s in splits}]
        return "video_id\n" + "".join(f"{video_id}\n" for video_id in ids)

    atomic_write_text(root / "MSRVTT_train.9k.csv", id_csv("train", "val"))
    atomic_write_text(root / "MSRVTT_val.full.csv", id_csv("val"))
    atomic_write_text(root / "MSRVTT_JSFUSION_test.csv",
                      "key,vid_key,video_id,sentence\n" + "".join(f"{row}\n" for row in test_rows))
    return jobs


writer.register_offline_root("msrvtt", generate_msrvtt, lambda: SIZES)
