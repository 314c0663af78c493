"""Result files and checkpoints. Everything is written to a temporary file and renamed into place, so an
interrupted run never leaves half a result and never damages a finished one."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from safetensors.torch import load_file, save_file
from torch import nn

from vtrbench.benchmark.config import config_differences
from vtrbench.benchmark.counting import tuned_parameters

RESULT_FILE = "result.json"
WEIGHTS_FILE = "tuned.safetensors"
CHECKPOINT_FILE = "last_epoch.pt"
CONFIG_FILE = "config.yaml"
VAL_IDS_FILE = "val_ids.txt"  # the ids of the val split a run held out of training, one per line
SCHEMA_VERSION = 1


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n"))


def read_result(run_dir: Path) -> dict | None:
    path = run_dir / RESULT_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from err


def is_finished(run_dir: Path) -> bool:
    result = read_result(run_dir)
    return result is not None and result.get("status") == "finished"


class RunConflictError(ValueError):
    """A run folder holds a finished run of another configuration than the one requested."""


def finished_result(run_dir: Path, config: DictConfig) -> dict | None:
    """The finished result in `run_dir` when it was made with `config` (output-only keys aside), None when
    there is no finished result; a finished result of any other config is never reused nor replaced."""
    result = read_result(run_dir)
    if result is None or result.get("status") != "finished":
        return None
    differences = config_differences(result.get("config") or {}, config)
    if differences:
        shown = "; ".join(differences[:4]) + (f"; and {len(differences) - 4} more" if len(differences) > 4 else "")
        raise RunConflictError(
            f"{run_dir} holds a finished run of another config ({shown}); it is kept, not reused: choose "
            f"another output.runs_dir or variant=NAME, or delete that folder to run this config there"
        )
    return result


def save_tuned_weights(model: nn.Module, path: Path) -> int:
    """Only the parameters that train; returns the file's size in bytes."""
    tensors = {name: p.detach().cpu().contiguous() for name, p in tuned_parameters(model).items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))
    return path.stat().st_size


def load_tuned_weights(model: nn.Module, path: Path) -> None:
    """Load a method's tuned weights; the file must hold exactly the parameters the model tunes."""
    tensors = load_file(str(path))
    expected = set(tuned_parameters(model))
    if set(tensors) != expected:
        missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
        raise ValueError(f"{path}: tuned weights do not match the method (missing {missing[:5]}, extra {extra[:5]})")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(value)


def save_checkpoint(path: Path, model: nn.Module, state: dict) -> None:
    """Tuned weights plus optimiser/scheduler state after an epoch, for resuming."""
    payload = {"tuned": {k: v.detach().cpu() for k, v in tuned_parameters(model).items()}, **state}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in ("vtrbench", "torch", "open_clip_torch", "decord", "peft", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
