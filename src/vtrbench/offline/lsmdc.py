"""The generated world in LSMDC's real layout.

`LSMDC16_annos_training.csv`, `LSMDC16_annos_val.csv` and `LSMDC16_challenge_1000_publictect.csv`:
tab-separated, no header, `<clip id>\\t<start>\\t<end>\\t<start>\\t<end>\\t<sentence>` with `hh.mm.ss.mmm`
times (aligned and extracted times are the same) and ONE sentence per clip. Clip ids are
`<movie>_<start>-<end>`, each movie a run of consecutive clips with gaps between them; videos are
`videos/<movie>/<clip id>.mp4`. As in the real LSMDC, each split's clips come from movies of its own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vtrbench.files import atomic_write_text
from vtrbench.offline import writer
from vtrbench.offline.world import distinct_captions
from vtrbench.offline.writer import VIDEO_FPS, VideoJob, derived_seed, generate_dataset, split_clips

# One caption per clip, as the real LSMDC: 1,250 training clips make 39 steps of 32 an epoch; a test of 1,000
# clips as the real public test.
SIZES = {"train": 1250, "val": 250, "test": 1000}
FILES = {"train": "LSMDC16_annos_training.csv", "val": "LSMDC16_annos_val.csv",
         "test": "LSMDC16_challenge_1000_publictect.csv"}
MOVIES = {
    "train": ("0001_SYNTHETIC_MOVIE_ONE", "0002_SYNTHETIC_MOVIE_TWO", "0003_SYNTHETIC_MOVIE_THREE"),
    "val": ("1001_SYNTHETIC_VAL_MOVIE_ONE", "1002_SYNTHETIC_VAL_MOVIE_TWO"),
    "test": ("3001_SYNTHETIC_TEST_MOVIE_ONE", "3002_SYNTHETIC_TEST_MOVIE_TWO"),
}


def lsmdc_timestamp(milliseconds: int) -> str:
    """LSMDC's `hh.mm.ss.mmm`."""
    seconds, millis = divmod(milliseconds, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}.{minutes:02d}.{seconds:02d}.{millis:03d}"


def generate_lsmdc(root: Path, seed: int = writer.OFFLINE_SEED, sizes: dict[str, int] | None = None,
                   progress: bool = True) -> Path:
    """Write a synthetic LSMDC to `root` (unless it holds this one already) and return `root`."""
    return generate_dataset("lsmdc", "LSMDC", root, seed, dict(sizes or SIZES), write_lsmdc, progress)


def write_lsmdc(root: Path, video_dir: Path, seed: int, sizes: dict[str, int]) -> list[VideoJob]:
    time_rng = np.random.default_rng(derived_seed(seed, "lsmdc/times"))
    caption_rng = np.random.default_rng(derived_seed(seed, "lsmdc/captions"))
    specs_of: dict[str, list] = {split: [] for split in sizes}
    for split, spec in split_clips("lsmdc", seed, sizes):
        specs_of[split].append(spec)
    jobs = []
    for split, specs in specs_of.items():
        movies = MOVIES[split]
        clock = {movie: int(time_rng.integers(60_000, 600_000)) for movie in movies}
        lines = []
        for index, spec in enumerate(specs):  # each split's clips in contiguous blocks per movie
            movie = movies[index * len(movies) // len(specs)]
            start = clock[movie] + int(time_rng.integers(500, 8_000))
            end = start + round(spec.n_frames * 1000 / VIDEO_FPS)
            clock[movie] = end
            clip_id = f"{movie}_{lsmdc_timestamp(start)}-{lsmdc_timestamp(end)}"
            jobs.append(VideoJob(video_dir / movie / f"{clip_id}.mp4", (spec,)))
            times = f"{lsmdc_timestamp(start)}\t{lsmdc_timestamp(end)}"
            lines.append(f"{clip_id}\t{times}\t{times}\t{distinct_captions(spec, caption_rng, 1)[0]}\n")
        atomic_write_text(root / FILES[split], "".join(lines))
    return jobs


writer.register_offline_root("lsmdc", generate_lsmdc, lambda: SIZES)
