"""The property the default leaderboard exists for, on a small scale: the offline world tells a method that
learns from one that does not. A DGL whose tuned tensors are never updated (its optimiser's step does
nothing) scores significantly below the same DGL trained, on a small generated MSR-VTT with a briefly
pretrained offline backbone. A bug that stopped DGL's prompts from learning would fail this test."""

from pathlib import Path

import pytest
import torch

from vtrbench.benchmark.config import resolve_config
from vtrbench.benchmark.runner import execute
from vtrbench.offline.msrvtt import generate_msrvtt
from vtrbench.offline.tiny_clip import build_offline_clip
from vtrbench.reports.bootstrap import paired_bootstrap


@pytest.fixture(scope="module")
def small_world(tmp_path_factory) -> tuple[Path, Path]:
    """A backbone pretrained for 150 steps (about 30 s on one core) and a 160/16/200-clip MSR-VTT."""
    folder = tmp_path_factory.mktemp("property")
    checkpoint = build_offline_clip(steps=150, seed=0, cache_dir=folder / "backbone", progress=False)
    root = generate_msrvtt(folder / "msrvtt", sizes={"train": 160, "val": 16, "test": 200}, progress=False)
    return checkpoint, root


def dgl_ranks(checkpoint: Path, root: Path, runs: Path) -> list[int]:
    config = resolve_config([
        "method=dgl", "dataset=msrvtt", f"msrvtt.root={root}", f"output.runs_dir={runs}",
        f"backbone.pretrained={checkpoint}", "data.num_frames=4", "data.batch_size=16", "train.epochs=3",
        "train.lr=0.1", "train.val_curve=false", "data.frame_cache=false", "quiet=true",
    ])
    result = execute(config)
    assert result["status"] == "finished"
    return result["ranks"]["t2v"]


def test_a_dgl_that_never_learns_scores_significantly_below_a_trained_one(small_world, tmp_path, monkeypatch):
    checkpoint, root = small_world
    trained = dgl_ranks(checkpoint, root, tmp_path / "trained")
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, closure=None: None)
    frozen = dgl_ranks(checkpoint, root, tmp_path / "frozen")

    comparison = paired_bootstrap([trained], [frozen], k=1)
    assert comparison.difference > 0 and comparison.significant, comparison
