"""Result files and checkpoints. Everything is written to a temporary file and renamed into place, so an
interrupted run never leaves half a result and never damages a finished one.

Nothing read back is a pickle: run folders are shared and downloaded, and unpickling runs whatever code the
file names. Results are JSON, weights safetensors, and the resume state one safetensors file of tensors
whose JSON metadata holds the rest (epoch, statistics, scheduler state, optimizer hyper-parameters and the
resolved config it belongs to). Every file goes through `vtrbench.files.atomic_write`.
"""

from __future__ import annotations

import functools
import json
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from vtrbench.benchmark.config import config_differences
from vtrbench.benchmark.counting import tuned_parameters
from vtrbench.files import atomic_write
from vtrbench.registry import BACKBONES, DATA_ROOTS, DATASETS
from vtrbench.reports.result_table import EXCLUDED, ResultFileError, parse_result
from vtrbench.schema import COMPLETE_STATUSES, RESULT_FILE

CHECKPOINT_FILE = "last_epoch.safetensors"
LEGACY_CHECKPOINT_FILE = "last_epoch.pt"  # a pickle (early versions, or planted): never loaded
CHECKPOINT_FORMAT = "vtrbench-resume-1"


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n"))


def read_result(run_dir: Path) -> dict | None:
    path = run_dir / RESULT_FILE
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON at line {err.lineno}: {err.msg}") from err
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    if not isinstance(result, dict):
        raise ValueError(f"{path}: expected a JSON object (a run's result), got {type(result).__name__}")
    return result


def is_finished(run_dir: Path) -> bool:
    result = read_result(run_dir)
    return result is not None and result.get("status") in COMPLETE_STATUSES


class RunConflictError(ValueError):
    """A run folder holds a finished run of another configuration than the one requested."""


def run_inputs(config: DictConfig) -> dict[str, str]:
    """What a run computes from that its config does not name: the generated offline data and the backbone
    pretrained here, each by the name its factory gives it (`Registry.identity`), which changes whenever the
    world's code does. result.json records it, and a result of other inputs is not reused. Real data and
    weights are named by the config itself (their root, the open_clip tag or file)."""
    inputs = {}
    backbone = str(config.backbone.name)
    if backbone in BACKBONES:
        named = BACKBONES.identity(backbone, str(config.backbone.pretrained))
        if named is not None:
            inputs["backbone"] = named
    data_format = getattr(DATASETS.get(config.dataset), "offline_format", None)
    if config[config.dataset].root is None and data_format is not None and data_format in DATA_ROOTS:
        named = DATA_ROOTS.identity(data_format)
        if named is not None:
            inputs["data"] = named
    return inputs


def inputs_misfit(recorded: Any, config: DictConfig) -> str | None:
    """Why inputs recorded by a result or a resume state are not this run's; None when they are. A file that
    records none (written before results recorded them) fits only a run that has none (real data and weights):
    whether the offline world it was computed on is today's cannot be told."""
    here = run_inputs(config)
    if not isinstance(recorded, dict):
        return None if not here else ("it does not record the offline inputs it was computed from (written "
                                       "before results recorded them)")
    changed = [f"{key} {recorded.get(key)}, here {here.get(key)}" for key in sorted(set(recorded) | set(here))
               if recorded.get(key) != here.get(key)]
    return f"it was computed from other offline inputs ({'; '.join(changed)})" if changed else None


def finished_result(run_dir: Path, config: DictConfig) -> dict | None:
    """The finished result in `run_dir` when it was made with `config` (output-only keys aside), None when
    there is no finished result; a finished result of any other config is never reused nor replaced."""
    result = read_result(run_dir)
    if result is None or result.get("status") not in COMPLETE_STATUSES:
        return None
    differences = config_differences(result.get("config") or {}, config)
    if differences:
        shown = "; ".join(differences[:4]) + (f"; and {len(differences) - 4} more" if len(differences) > 4 else "")
        raise RunConflictError(
            f"{run_dir} holds a finished run of another config ({shown}); it is kept, not reused: choose "
            f"another output.runs_dir or variant=NAME, or delete that folder to run this config there"
        )
    misfit = inputs_misfit(result.get("inputs"), config)
    if misfit is not None:
        raise RunConflictError(f"{run_dir} holds a finished run of this config, but {misfit}: the offline world "
                               f"may have changed since; it is kept, not reused: choose another output.runs_dir, "
                               f"or delete that folder to run it again")
    # reused as the report reads it: a missing or mistyped field is named with the file, never a KeyError, and
    # today's rules judge it, whichever version wrote it (a search never chooses what the report would not rank)
    path = run_dir / RESULT_FILE
    row = parse_result(result, path)
    if not isinstance(result.get("timing", {}), dict):
        raise ResultFileError(f"{path}: 'timing' must be an object, got {result['timing']!r:.80}")
    if row["status"] == EXCLUDED:
        raise ResultFileError(f"{path}: {row['error']}; it is kept, not reused: delete that folder to run it again")
    if row["status"] != result["status"]:
        return {**result, "status": row["status"], "reason": row["error"]}
    return result


def save_tuned_weights(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> int:
    """Only the parameters that train (and string `metadata` in the file's header); returns its size in bytes."""
    tensors = {name: p.detach().cpu().contiguous() for name, p in tuned_parameters(model).items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return path.stat().st_size


def weights_metadata(path: Path) -> dict[str, str]:
    """The string metadata in a safetensors file's header ({} when it has none or cannot be read)."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError):
        return {}


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


class CheckpointError(ValueError):
    """A resume state that cannot be read; the message names the file."""


def save_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any], config: DictConfig
) -> None:
    """The state after an epoch, for resuming: tuned weights and every optimizer tensor in one safetensors
    file; `state` (epoch, stats, scheduler state: JSON values), the optimizer's hyper-parameters and the
    resolved `config` in its JSON metadata. One file, one rename: weights and state always belong together."""
    tensors = {f"tuned/{name}": p.detach().cpu().contiguous() for name, p in tuned_parameters(model).items()}
    # where the random streams stand (dropout, the loaders' seeds): a resumed run draws what it would have
    tensors["rng/cpu"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors.update({f"rng/cuda/{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    optimizer_state = optimizer.state_dict()
    plain: dict[str, dict[str, Any]] = {}
    for index, values in optimizer_state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer/{index}/{key}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(index), {})[key] = value
    metadata = {
        **state,
        "optimizer": {"param_groups": optimizer_state["param_groups"], "plain_state": plain},
        "config": OmegaConf.to_container(config, resolve=True),
        "versions": package_versions(),
        "inputs": run_inputs(config),
    }
    header = {"format": CHECKPOINT_FORMAT, "state": json.dumps(metadata)}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """(tuned weights by parameter name, optimizer state dict, the rest of the saved state with `config`, and
    `rng`: the random generators' states by device, `cpu` and `cuda/<i>`); raises CheckpointError naming the
    file when it is not a resume state of this format."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            header = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
        if header.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"{path}: not a vtrbench resume state (format {header.get('format')!r})")
        state = json.loads(header["state"])
        groups = state.pop("optimizer")
        optimizer_state: dict[int, dict[str, Any]] = {
            int(index): dict(values) for index, values in groups["plain_state"].items()
        }
        tuned, rng = {}, {}
        for key, tensor in tensors.items():
            kind, _, rest = key.partition("/")
            if kind == "tuned":
                tuned[rest] = tensor
            elif kind == "rng" and tensor.dtype == torch.uint8 and tensor.dim() == 1:
                rng[rest] = tensor
            elif kind == "optimizer":
                index, _, name = rest.partition("/")
                optimizer_state.setdefault(int(index), {})[name] = tensor
            else:
                raise CheckpointError(f"{path}: unexpected tensor {key!r}")
        for required, kind in (("epoch", int), ("stats", dict), ("scheduler", dict), ("config", dict)):
            if required not in state:
                raise CheckpointError(f"{path}: the saved state has no {required!r}")
            if not isinstance(state[required], kind) or isinstance(state[required], bool):
                raise CheckpointError(f"{path}: the saved state's {required!r} must be {kind.__name__}, got "
                                      f"{state[required]!r:.60}")
        if not isinstance(groups["param_groups"], list) or not all(isinstance(g, dict) for g in groups["param_groups"]):
            raise CheckpointError(f"{path}: the saved optimizer's 'param_groups' must be a list of objects")
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"{path}: cannot be read as a resume state ({err})") from err
    state["rng"] = rng
    return tuned, {"state": optimizer_state, "param_groups": groups["param_groups"]}, state


# The libraries whose version can change what a run computes (peft 0.21 and 0.22 compute LoRA differently);
# result.json's `versions` records these and vtrbench's own, in this order.
COMPUTING_LIBRARIES = ("torch", "open_clip_torch", "decord", "peft", "numpy")


def reuse_note(result: dict) -> str:
    """For a finished result about to be reused: "" when this process has the versions of the computing
    libraries it was computed with (or it records none), else a note naming each change."""
    recorded = result.get("versions")
    if not isinstance(recorded, dict):
        return ""
    here = package_versions()
    changed = [f"{name} {recorded[name]}, here {here[name]}" for name in COMPUTING_LIBRARIES
               if name in recorded and recorded[name] != here[name]]
    return (f" (computed with {'; '.join(changed)}: reused all the same; a fresh output.runs_dir computes it "
            f"again)") if changed else ""


def package_versions() -> dict[str, str]:
    """The versions result.json records (`versions`), read once per process."""
    return dict(_package_versions())


@functools.lru_cache(maxsize=1)
def _package_versions() -> dict[str, str]:
    versions = {}
    for name in ("vtrbench", *COMPUTING_LIBRARIES):
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
