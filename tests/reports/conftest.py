"""Build result.json files with known per-query ranks; metrics are computed from the ranks like the runner."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest


def metrics_from_ranks(ranks: Sequence[int]) -> dict[str, float]:
    ranks = np.asarray(ranks)
    return {
        "R1": 100.0 * np.mean(ranks <= 1),
        "R5": 100.0 * np.mean(ranks <= 5),
        "R10": 100.0 * np.mean(ranks <= 10),
        "MdR": float(np.median(ranks)),
        "MnR": float(np.mean(ranks)),
    }


def result_record(
    method: str,
    t2v_ranks: Sequence[int],
    v2t_ranks: Sequence[int] | None = None,
    variant: str = "",
    dataset: str = "msrvtt",
    seed: int = 0,
    tuned: int = 0,
    backbone_params: int = 1_000_000,
    backbone: str = "vtrbench-tiny",
    pretrained: str = "offline",
) -> dict:
    v2t_ranks = list(t2v_ranks) if v2t_ranks is None else list(v2t_ranks)
    t2v, v2t = metrics_from_ranks(t2v_ranks), metrics_from_ranks(v2t_ranks)
    return {
        "schema": 1,
        "status": "finished",
        "method": method,
        "variant": variant,
        "dataset": dataset,
        "split": "test",
        "backbone": backbone,
        "pretrained": pretrained,
        "activation": "gelu",
        "seed": seed,
        "metrics": {
            "t2v": t2v,
            "v2t": v2t,
            "rsum": sum(m[k] for m in (t2v, v2t) for k in ("R1", "R5", "R10")),
        },
        "ranks": {"t2v": [int(r) for r in t2v_ranks], "v2t": [int(r) for r in v2t_ranks]},
        "ties": {d: {"tied_queries": 0, "collapsed_queries": 0, "queries": len(r)}
                 for d, r in (("t2v", t2v_ranks), ("v2t", v2t_ranks))},
        "params": {
            "tuned": tuned,
            "backbone": backbone_params,
            "tuned_pct": 100.0 * tuned / backbone_params,
            "checkpoint_bytes": 4 * tuned,
        },
        "timing": {"train_s": 12.3, "eval_s": 1.2, "clips_per_s": 50.1},
        "peak_memory_mb": 812.0,
        "skipped": {"train": [], "test": []},
        "model_selection": "last_epoch",
        "versions": {"vtrbench": "0.1.0"},
        "git_commit": "abc123",
        "config": {},
    }


def write_record(runs_dir: Path, record: dict) -> Path:
    name = record["method"] + (f".{record['variant']}" if record["variant"] else "")
    path = runs_dir / record["dataset"] / record["backbone"] / name / f"seed{record['seed']}" / "result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


def failed_record(method: str, error: str, dataset: str = "msrvtt", seed: int = 0) -> dict:
    return {
        "schema": 1,
        "status": "failed",
        "error": error,
        "method": method,
        "variant": "",
        "dataset": dataset,
        "split": "test",
        "backbone": "vtrbench-tiny",
        "seed": seed,
    }


@pytest.fixture(scope="session")
def run_writers() -> tuple[Callable[..., Path], Callable[..., Path]]:
    """``(write_run(runs_dir, method, t2v_ranks, **fields), write_failed_run(runs_dir, method, error, ...))``
    for fixtures wider than one test."""

    def write_run(runs_dir: Path, method: str, t2v_ranks: Sequence[int], **fields) -> Path:
        return write_record(runs_dir, result_record(method, t2v_ranks, **fields))

    def write_failed_run(runs_dir: Path, method: str, error: str, **fields) -> Path:
        return write_record(runs_dir, failed_record(method, error, **fields))

    return write_run, write_failed_run


@pytest.fixture
def write_run(tmp_path: Path, run_writers) -> Callable[..., Path]:
    """``write_run(method, t2v_ranks, **fields)`` writes a finished run under ``tmp_path / "runs"``."""
    return lambda method, t2v_ranks, **fields: run_writers[0](tmp_path / "runs", method, t2v_ranks, **fields)


@pytest.fixture
def write_failed_run(tmp_path: Path, run_writers) -> Callable[..., Path]:
    return lambda method, error, **fields: run_writers[1](tmp_path / "runs", method, error, **fields)


def ranks_with_hits(query_count: int, hits_at_1: int, miss_rank: int = 7) -> list[int]:
    """``hits_at_1`` queries at rank 1, the rest at ``miss_rank``, interleaved deterministically."""
    ranks = np.full(query_count, miss_rank)
    ranks[np.linspace(0, query_count - 1, hits_at_1).round().astype(int) if hits_at_1 else []] = 1
    return ranks.tolist()


@pytest.fixture(scope="session")
def make_ranks() -> Callable[..., list[int]]:
    return ranks_with_hits
