"""A run's own peak memory, also when a leaderboard executes many runs in one process.

CUDA: `torch.cuda.max_memory_allocated`, its peak reset when the run's model is on the device (the model is
counted: its tensors are alive). CPU: the peak resident memory of the process (VmHWM) is reset per run by
writing 5 to /proc/self/clear_refs (Linux), and the run's peak is taken above the resident memory the process
held when the run started. Before that start, what earlier runs left is given back to the system (garbage
collection, then glibc's malloc_trim): without it, memory a previous run freed but the allocator kept would
be reused unseen and the run's figure would be too small (measured: 328 MB instead of the 560 MB of the same
run in a fresh process; 577 MB with the release). The process's own peak is recorded beside it.
Where the peak cannot be reset (no /proc), the run's own CPU peak is unknown and recorded as None.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

CPU_MEASURE = "cpu_rss_above_start"
CUDA_MEASURE = "cuda_max_allocated"


def resident_mb(field: str = "VmRSS") -> float | None:
    """`VmRSS` (now) or `VmHWM` (peak since the last reset) of this process in MB; None without /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def release_free_memory() -> None:
    """Collect garbage and hand the allocator's free pages back to the system (glibc only)."""
    gc.collect()
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        trim = getattr(libc, "malloc_trim", None)
    except OSError:
        trim = None
    if trim is not None:
        trim(0)


def reset_resident_peak() -> bool:
    """Reset VmHWM to the current resident memory; False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    peak, now = resident_mb("VmHWM"), resident_mb("VmRSS")
    return peak is not None and now is not None and peak <= now + 1.0


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        reset_resident_peak()


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated, or the process's peak resident memory since the last reset on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    peak = resident_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class MemoryMeter:
    """Start it before the run builds anything; `watch` its device once the model is there; `record` last."""

    start_mb: float | None  # resident memory when the run started; None when the peak cannot be reset

    @classmethod
    def start(cls) -> MemoryMeter:
        release_free_memory()
        return cls(resident_mb("VmRSS") if reset_resident_peak() else None)

    def watch(self, device: torch.device) -> None:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def record(self, device: torch.device) -> dict[str, Any]:
        """`peak_memory_mb` (the run's own, in the device's measure) and `memory` with the details."""
        process_peak = resident_mb("VmHWM")
        own_cpu = None if self.start_mb is None or process_peak is None else process_peak - self.start_mb
        if device.type == "cuda":
            peak, measure = torch.cuda.max_memory_allocated(device) / 2**20, CUDA_MEASURE
        else:
            peak, measure = own_cpu, CPU_MEASURE

        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 1)

        return {
            "peak_memory_mb": rounded(peak),
            "memory": {"measure": measure, "cpu_rss_start_mb": rounded(self.start_mb),
                       "cpu_rss_peak_mb": rounded(process_peak), "cpu_rss_above_start_mb": rounded(own_cpu)},
        }
