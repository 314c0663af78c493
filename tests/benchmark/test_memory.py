"""Each run's peak memory is its own, not the peak of the process that ran it (Linux)."""

import sys
from pathlib import Path

import pytest
import torch

from tests.benchmark.conftest import tiny_run_overrides
from vtrbench.benchmark.config import resolve_config
from vtrbench.benchmark.runner import execute

pytestmark = pytest.mark.skipif(not Path("/proc/self/clear_refs").exists() or not sys.platform.startswith("linux"),
                                reason="resetting the peak resident memory needs Linux /proc")


def leave_freed_memory_behind() -> None:
    """What a previous run does to a shared process: many tensors made and freed, kept by the allocator."""
    kept = [torch.ones(50_000) for _ in range(1500)]
    del kept


def test_each_run_measures_its_own_peak(tiny_msrvtt, tmp_path):
    first = execute(resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "a", method="zero_shot")))
    leave_freed_memory_behind()
    second = execute(resolve_config(tiny_run_overrides(tiny_msrvtt, tmp_path / "b", method="zero_shot")))
    for result in (first, second):
        memory = result["memory"]
        assert memory["measure"] == "cpu_rss_above_start"
        # the process (python, torch) holds hundreds of MB before any run; a tiny zero-shot run needs far less
        # (about 70 MB here, 100 MB when it is the first to load the decoders and the tokenizer)
        assert 0 < result["peak_memory_mb"] < min(300, memory["cpu_rss_start_mb"] / 2)
        assert result["peak_memory_mb"] == memory["cpu_rss_above_start_mb"]
        assert memory["cpu_rss_peak_mb"] == pytest.approx(memory["cpu_rss_start_mb"] + result["peak_memory_mb"],
                                                          abs=0.2)
    assert abs(first["peak_memory_mb"] - second["peak_memory_mb"]) < 80
