"""The generated world in VATEX's real layout.

Clip ids `<11-char YouTube id>_<start>_<end>` (whole seconds, 6 digits each), `videos/<clip id>.mp4`, the
HGR split lists `train_list.txt` / `val_list.txt` / `test_list.txt` (one id per line, disjoint) and
`vatex_data.json` in the official shape: a list of `{"videoID", "enCap": [10 captions], "chCap": [10]}`.
The 10 English captions are rounds of the clip's paraphrases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vtrbench.files import atomic_write_text
from vtrbench.offline import writer
from vtrbench.offline.world import distinct_captions
from vtrbench.offline.writer import (
    VIDEO_FPS,
    VideoJob,
    derived_seed,
    generate_dataset,
    split_clips,
    write_json,
    youtube_ids,
)

CAPTIONS_PER_CLIP = 10
# Every caption of a test clip is a query: 1,000 clips make 10,000 queries. The clips are the unit of a test
# set's statistics (the report draws a clip's captions together), and 1,000 of them is the size of the other
# three datasets' tests (principle 7 of docs/offline-world.md); 200, as before, left R@1's 95% interval at
# about +-5 points. The test clips are drawn after train and val, which they leave as they were. 250 training
# clips of 10 captions make 78 steps of 32 pairs an epoch, as the offline MSR-VTT.
SIZES = {"train": 250, "val": 100, "test": 1000}
# The official files hold 10 Chinese captions beside the English ones; the harness reads only the English, so
# the Chinese slots carry "synthetic video, no Chinese caption".
CHINESE_PLACEHOLDER = "合成视频，没有中文描述"


def generate_vatex(root: Path, seed: int = writer.OFFLINE_SEED, sizes: dict[str, int] | None = None,
                   progress: bool = True) -> Path:
    """Write a synthetic VATEX to `root` (unless it holds this one already) and return `root`."""
    return generate_dataset("vatex", "VATEX", root, seed, dict(sizes or SIZES), write_vatex, progress)


def write_vatex(root: Path, video_dir: Path, seed: int, sizes: dict[str, int]) -> list[VideoJob]:
    specs = split_clips("vatex", seed, sizes)
    id_rng = np.random.default_rng(derived_seed(seed, "vatex/ids"))
    caption_rng = np.random.default_rng(derived_seed(seed, "vatex/captions"))
    entries, jobs = [], []
    ids_of: dict[str, list[str]] = {split: [] for split in sizes}
    for (split, spec), youtube_id in zip(specs, youtube_ids(id_rng, len(specs)), strict=True):
        start = int(id_rng.integers(0, 600))
        end = start + int(np.ceil(spec.n_frames / VIDEO_FPS))
        clip_id = f"{youtube_id}_{start:06d}_{end:06d}"
        jobs.append(VideoJob(video_dir / f"{clip_id}.mp4", (spec,)))
        entries.append({
            "videoID": clip_id,
            "enCap": distinct_captions(spec, caption_rng, CAPTIONS_PER_CLIP),
            "chCap": [CHINESE_PLACEHOLDER] * CAPTIONS_PER_CLIP,
        })
        ids_of[split].append(clip_id)
    write_json(root / "vatex_data.json", entries)
    for split, ids in ids_of.items():
        atomic_write_text(root / f"{split}_list.txt", "".join(f"{clip_id}\n" for clip_id in ids))
    return jobs


writer.register_offline_root("vatex", generate_vatex, lambda: SIZES)
