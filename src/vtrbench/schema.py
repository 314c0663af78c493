"""The files a run leaves and what they hold, defined once for the harness, which writes them, and the
reports, which read them (no torch here, so the reports need none).

- `RunResult`: one run's `result.json` (a test run, a tuning trial, or a failure).
- `TuningRecord`: one search's `tuning.json`.
Each record's `to_json()` is what the file holds: its fields in definition order, without the optional
fields that are not set (a finished run has no `error`, a failed run no `metrics`). To add a field, add it
here with a default of None; readers of older files find it absent. Change a field's meaning or remove one
and the version (`SCHEMA_VERSION`, `TUNING_SCHEMA_VERSION`) goes up.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

SCHEMA_VERSION = 1
TUNING_SCHEMA_VERSION = 1

# The files of a run folder (`runs/<dataset>/<backbone>/<method>[.<variant>]/seed<n>/`) and of a search.
RESULT_FILE = "result.json"
CONFIG_FILE = "config.yaml"  # the resolved config
WEIGHTS_FILE = "tuned.safetensors"  # the tuned parameters only
VAL_IDS_FILE = "val_ids.txt"  # the ids of the val split a run held out of training, one per line
TUNING_FILE = "tuning.json"  # beside a search's trials: `<method dir>/tuning/seed<n>/tuning.json`

# A run that ran to its end is `finished`, or `degenerate` (its scores collapsed into ties, or, on a pretrained
# backbone, it ranks at chance: see vtrbench/ranking.py); a run that did not end is `failed`, or `diverged`
# (a non-finite loss or score).
STATUSES = ("finished", "failed", "diverged", "degenerate")
# Statuses of a run that ran to its end: its metrics are kept and reused for the same config, and a failure
# never overwrites them. A `degenerate` result is never ranked nor chosen. `failed` and `diverged` runs run
# again next time.
COMPLETE_STATUSES = ("finished", "degenerate")
DIRECTIONS = ("t2v", "v2t")  # text->video, video->text
RANK_METRICS = ("R1", "R5", "R10", "MdR", "MnR")
# What identifies a run: two result files with the same identity are the same run.
RUN_IDENTITY = ("dataset", "split", "backbone", "method", "variant", "seed")


# Keys of a resolved config that change where a run writes and what it prints, never what it computes: a
# finished run is reused across them, and the report's rows hold seeds that differ only in them. Everything
# else must be equal. A search's space and budget only decide which runs a tuner asks for, and a preset only
# which settings a run gets; each run's values are in its own config.
OUTPUT_ONLY_KEYS = ("output", "quiet", "data.num_workers", "tune.space", "tune.trials", "preset")


def flatten_config(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted key: value}."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten_config(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def computes(key: str) -> bool:
    """Whether a dotted config key can change what a run computes (see OUTPUT_ONLY_KEYS)."""
    return not any(key == k or key.startswith(f"{k}.") for k in OUTPUT_ONLY_KEYS)


# What a point of a learning curve (`val_curve`, in result.json and in a resume state) holds as numbers
CURVE_POINT_NUMBERS = ("epoch", "step", "metrics.t2v.R1", "metrics.v2t.R1", "metrics.rsum")


def curve_point_misfit(point: Any) -> str | None:
    """Why `point` is not a learning-curve point (an object with CURVE_POINT_NUMBERS), None when it is one."""
    if not isinstance(point, dict):
        return f"must be an object, got {point!r:.60}"
    for key in CURVE_POINT_NUMBERS:
        value = point
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                return f"missing key '{key}'"
            value = value[part]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"'{key}' must be a number, got {value!r:.60}"
    return None


def method_label(method: str, variant: str | None) -> str:
    """`method.variant`, or the method alone: how a run's method is named in folders, logs and reports."""
    return f"{method}.{variant}" if variant else method


def optional(default: Any = None) -> Any:
    """A field written only when it is set (not None)."""
    return field(default=default, metadata={"optional": True})


class Record:
    """A JSON record whose dataclass fields are its keys."""

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)  # type: ignore[arg-type]
                if not (f.metadata.get("optional") and getattr(self, f.name) is None)}

    @classmethod
    def required_keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if not f.metadata.get("optional"))  # type: ignore[arg-type]


@dataclass(kw_only=True)
class RunResult(Record):
    """One run's `result.json`. Every run has the identity fields, its status and its resolved config; a
    finished (or degenerate) run has its metrics, its ties and what it cost, a failed (or diverged) one its
    error."""

    schema: int = SCHEMA_VERSION
    status: str  # one of STATUSES
    reason: str | None = optional()  # why a `degenerate` run is not ranked, one line
    method: str
    variant: str | None
    dataset: str
    split: str  # "test", or "val" for a tuning trial
    trial: str | None = optional()  # a tuning trial's name (its settings)
    backbone: str
    pretrained: str
    activation: str | None = optional()  # the MLP activation read from the modules built
    seed: int
    metrics: dict[str, Any] | None = optional()  # {t2v: {R1, R5, R10, MdR, MnR}, v2t: {...}, rsum}
    ranks: dict[str, list[int]] | None = optional()  # per-query ranks of each direction
    # the clip (0..clips-1, the order of ranks.v2t) of each T2V query, in the order of ranks.t2v: several captions
    # of one clip are drawn together by the report's bootstrap (reports/bootstrap.py)
    t2v_query_clips: list[int] | None = optional()
    num_queries: dict[str, int] | None = optional()
    # {t2v: {tied_queries, collapsed_queries, queries}, v2t: {...}, degenerate, chance_z: {t2v, v2t}}: ties
    # count in the query's favour (CLIP4Clip), so collapsed scores are flagged, and so is a ranking at chance
    # (the rules are in vtrbench/ranking.py)
    ties: dict[str, Any] | None = optional()
    params: dict[str, Any] | None = optional()  # tuned, backbone, tuned_pct, checkpoint_bytes
    timing: dict[str, Any] | None = optional()  # train_s, eval_s, val_curve_s, clips_per_s, steps, epochs
    peak_memory_mb: float | None = optional()  # the run's own peak, in the measure `memory` names
    memory: dict[str, Any] | None = optional()
    device: str | None = optional()
    world_size: int | None = optional()
    # processes, batch per process and global batch, GPU model and count, precision, torch/CUDA/open_clip
    # versions, and the post-processing applied (none)
    reproducibility: dict[str, Any] | None = optional()
    skipped: dict[str, Any] | None = optional()  # clip id -> reason, per split; training decode failures
    val: dict[str, Any] | None = optional()  # the val split: source, clips, ids_file
    val_curve: list[dict[str, Any]] | None = optional()  # {epoch, step, metrics} before and after each epoch
    model_selection: dict[str, Any] | None = optional()  # rule (last_epoch | best_val), epoch, step
    versions: dict[str, str] | None = optional()
    # the offline data and backbone by name (data: "<format>-<hash of its settings>", backbone:
    # "vtrbench-tiny-<hash of its recipe>"): a result of other inputs is never reused
    inputs: dict[str, str] | None = optional()
    git_commit: str | None = optional()
    error: str | None = optional()  # a failed run's error, one line
    traceback: str | None = optional()
    config: dict[str, Any]
    tuning: dict[str, Any] | None = optional()  # the search that chose this run's settings (tune=true)


@dataclass(kw_only=True)
class TuningRecord(Record):
    """One search's `tuning.json`: the space, every trial's val score, the choice and the budget."""

    schema: int = TUNING_SCHEMA_VERSION
    kind: str = "tuning"
    method: str
    variant: str | None
    dataset: str
    backbone: str
    seed: int
    command: str  # the `vtrbench tune` command that reproduces the search
    split: str = "val"
    val: dict[str, Any]  # the val split the trials were scored on
    metric: str
    trials_budget: int
    trials_finished: int
    epochs: int
    space: list[dict[str, Any]]
    trials: list[dict[str, Any]]  # trial, settings, status, score, metrics, val_curve, steps, run
    chosen: dict[str, Any]  # trial, settings, score
    at_edge: list[str]  # chosen values at an end of their range
    git_commit: str
    rule: dict[str, Any] | None = optional()  # the preset rule that sets the choice
