from pathlib import Path

import pytest

from vtrbench.offline.msrvtt import generate_msrvtt


@pytest.fixture(scope="session")
def tiny_msrvtt(tmp_path_factory) -> Path:
    """A small generated MSR-VTT (real layout, real mp4 files) shared by the harness tests."""
    return generate_msrvtt(tmp_path_factory.mktemp("msrvtt"), sizes={"train": 24, "val": 8, "test": 8}, progress=False)


def tiny_run_overrides(root: Path, runs: Path, method: str = "full_finetune", **extra: object) -> list[str]:
    """A run on the tiny data with a random-init tiny backbone: seconds, not minutes."""
    overrides = {
        "method": method,
        "dataset": "msrvtt",
        "msrvtt.root": str(root),
        "output.runs_dir": str(runs),
        "backbone.pretrained": "random",
        "data.num_frames": 4,
        "data.batch_size": 8,
        "train.epochs": 2,
        "seed": 0,  # a leaderboard of these runs takes one seed, not the offline preset's three
        "device": "cpu",  # the same arithmetic (and bits, and memory measure) on a machine with a GPU
        "quiet": "true",
        **extra,
    }
    return [f"{k}={v}" for k, v in overrides.items()]
