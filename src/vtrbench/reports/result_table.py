"""Read the runner's ``result.json`` files into one flat pandas table (one row per run).

The fields are `vtrbench.schema.RunResult`'s, the schema the runner writes. The JSON fields are trusted,
not the directory names, so a copied or renamed run folder still lands in the right row.

Flattened columns:
  identity   ``method variant dataset split backbone pretrained activation seed status error path``
  metrics    ``t2v_R1 t2v_R5 t2v_R10 t2v_MdR t2v_MnR`` (same for ``v2t_``) and ``rsum``
  ranks      ``t2v_ranks v2t_ranks``: per-query ranks as int64 numpy arrays (None when absent);
             ``t2v_query_clips``: each T2V query's clip, int64 (None when the file records none)
  params     ``tuned backbone_params tuned_pct checkpoint_bytes``
  cost       ``train_s eval_s clips_per_s peak_memory_mb peak_memory_measure``
  bookkeeping ``skipped_train skipped_test`` (counts), ``model_selection`` (``last_epoch`` or
             ``best_val:<metric>``) ``selected_epoch git_commit vtrbench_version``
  curve      ``val_curve``: the run's val points ({epoch, step, metrics}), a list (None when absent)

Results on the val split are tuning trials (`vtrbench tune`): they are left out here, so no trial ever
enters a test table; the report's Tuning section reads their `tuning.json` records instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vtrbench.ranking import RANDOM_PRETRAINED, chance_zs, metrics_from_ranks, unusable_reason
from vtrbench.schema import (
    DIRECTIONS,
    RANK_METRICS,
    RESULT_FILE,
    RUN_IDENTITY,
    SCHEMA_VERSION,
    STATUSES,
    computes,
    curve_point_misfit,
    flatten_config,
)

IDENTITY_KEYS = ("method", "variant", "dataset", "split", "backbone", "seed")
FINISHED_COLUMNS = (
    *(f"{direction}_{metric}" for direction in DIRECTIONS for metric in RANK_METRICS),
    "rsum",
    "t2v_ranks",
    "v2t_ranks",
    "t2v_query_clips",
    "tuned",
    "tuned_pct",
    "backbone_params",
    "checkpoint_bytes",
    "train_s",
    "eval_s",
    "clips_per_s",
    "peak_memory_mb",
    "val_curve",
)
VAL_SPLIT = "val"  # the split tuning trials are scored on
# A file that says `finished` but that the report will not rank: its metrics disagree with its own per-query
# ranks (or it lacks the ranks or tie counts to check them by), or its config with the other seeds of its row.
# Listed under "Runs not ranked" with the reason.
EXCLUDED = "excluded"
METRIC_TOLERANCE = 1e-6
# The order of the DGL paper's tables (and most of the field's): a report shows these datasets in it, any other
# after them, by name.
DATASET_ORDER = ("msrvtt", "vatex", "lsmdc", "activitynet")
# result.json's `reproducibility` record (processes, batches, GPUs, precision, versions, post-processing): one
# `repro_<key>` column each, "unrecorded" for files written before it existed.
REPRODUCIBILITY_KEYS = ("processes", "batch_per_process", "global_batch", "gpu_model", "gpu_count", "precision",
                        "torch", "cuda", "open_clip", "post_processing", "peft", "numpy", "decord")
# Of those, the ones result.json keeps in its `versions` record instead (peft 0.21 computed LoRA differently
# from 0.22: docs/methods.md, "lora").
VERSIONS_KEYS = ("peft", "numpy", "decord")


class ResultFileError(ValueError):
    """A result.json that cannot be read as schema-1 result; the message names the file."""


def _require(record: dict[str, Any], dotted_key: str, path: Path) -> Any:
    value: Any = record
    keys = dotted_key.split(".")
    for depth, key in enumerate(keys):
        if not isinstance(value, dict):
            parent = ".".join(keys[:depth])
            raise ResultFileError(f"{path}: '{parent}' must be an object, got {value!r:.80}")
        if key not in value:
            raise ResultFileError(f"{path}: missing key '{dotted_key}'")
        value = value[key]
    return value


def _number(record: dict[str, Any], dotted_key: str, path: Path) -> float:
    """A number (JSON's NaN and Infinity included: a metric that is not finite is judged, not refused)."""
    value = _require(record, dotted_key, path)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ResultFileError(f"{path}: '{dotted_key}' must be a number, got {value!r}")
    return float(value)


def _optional(record: dict[str, Any], dotted_key: str) -> Any:
    value: Any = record
    for key in dotted_key.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _ranks(record: dict[str, Any], direction: str, path: Path) -> np.ndarray | None:
    ranks = _optional(record, f"ranks.{direction}")
    if ranks is None:
        return None
    try:
        array = np.asarray(ranks)
    except ValueError as error:  # ragged lists
        raise ResultFileError(f"{path}: 'ranks.{direction}' must be a non-empty list of ranks ({error})") from error
    if array.ndim != 1 or array.size == 0 or not np.issubdtype(array.dtype, np.number):
        raise ResultFileError(f"{path}: 'ranks.{direction}' must be a non-empty list of ranks")
    if np.any(array < 1) or np.any(array != np.floor(array)):
        raise ResultFileError(f"{path}: 'ranks.{direction}' must hold whole ranks >= 1")
    return array.astype(np.int64)


def _query_clips(record: dict[str, Any], t2v: np.ndarray | None, v2t: np.ndarray | None,
                 path: Path) -> np.ndarray | None:
    """The clip of each T2V query (`t2v_query_clips`), checked against the ranks: one index per T2V query,
    every clip of the V2T ranks named; None when the file records none (written before it did)."""
    clips = record.get("t2v_query_clips")
    if clips is None or t2v is None or v2t is None:
        return None
    array = np.asarray(clips) if isinstance(clips, list) else np.empty(0)
    if (array.shape != t2v.shape or array.dtype.kind not in "iu"
            or not np.array_equal(np.unique(array), np.arange(v2t.size))):
        raise ResultFileError(f"{path}: 't2v_query_clips' must hold the clip (0..{v2t.size - 1}) of each of the "
                              f"{t2v.size} T2V queries, every clip at least once")
    return array.astype(np.int64)


def _model_selection(selection: Any) -> tuple[str, float]:
    """(rule, epoch) of the result's model selection: `last_epoch`, or `best_val:<metric>` and its epoch.
    Older result files hold the rule alone as a string."""
    if not isinstance(selection, dict):
        return str(selection or ""), np.nan
    rule = str(selection.get("rule", ""))
    if selection.get("metric"):
        rule += f":{selection['metric']}"
    epoch = selection.get("epoch")
    return rule, float(epoch) if isinstance(epoch, (int, float)) else np.nan


def _ids(record: dict[str, Any], dotted_key: str) -> tuple[str, ...]:
    """The clip ids a `skipped` entry names, sorted ({clip id: reason}, or a list in older files)."""
    value = _optional(record, dotted_key)
    return tuple(sorted(map(str, value))) if isinstance(value, (dict, list)) else ()


def _count(record: dict[str, Any], dotted_key: str) -> int:
    """How many clips a `skipped` entry names."""
    return len(_ids(record, dotted_key))


def parse_result(record: dict[str, Any], path: Path) -> dict[str, Any]:
    """Flatten one parsed result.json; raise ``ResultFileError`` naming ``path`` when it is malformed."""
    if not isinstance(record, dict):
        raise ResultFileError(f"{path}: expected a JSON object at the top level")
    schema = _require(record, "schema", path)
    if schema != SCHEMA_VERSION:
        raise ResultFileError(f"{path}: schema {schema!r} is not supported (expected {SCHEMA_VERSION})")
    status = _require(record, "status", path)
    if status not in STATUSES:
        raise ResultFileError(f"{path}: 'status' must be one of {', '.join(STATUSES)}, got {status!r}")
    row: dict[str, Any] = {key: _require(record, key, path) for key in IDENTITY_KEYS}
    for key in ("method", "dataset", "split", "backbone"):
        if not isinstance(row[key], str) or not row[key]:
            raise ResultFileError(f"{path}: '{key}' must be a non-empty string, got {row[key]!r}")
    if row["variant"] is not None and not isinstance(row["variant"], str):
        raise ResultFileError(f"{path}: 'variant' must be a string (or null), got {row['variant']!r}")
    if isinstance(row["seed"], bool) or not isinstance(row["seed"], int):
        raise ResultFileError(f"{path}: 'seed' must be an integer, got {row['seed']!r}")
    row["variant"] = row["variant"] or ""
    row.update(
        status=status,
        error=str(record.get("error") or record.get("reason") or "") if status != "finished" else "",
        pretrained=record.get("pretrained", ""),
        activation=record.get("activation", ""),  # the backbone's MLP activation; absent in older files
        path=str(path),
    )
    reproducibility, versions = record.get("reproducibility"), record.get("versions")
    for key in REPRODUCIBILITY_KEYS:
        record_of = versions if key in VERSIONS_KEYS else reproducibility
        value = record_of.get(key, "unrecorded") if isinstance(record_of, dict) else "unrecorded"
        row[f"repro_{key}"] = "none" if value is None else str(value)
    if status != "finished":
        # A failed, diverged or degenerate run is listed with its reason; no metric is averaged from it.
        row["error"] = str(row["error"] or "no error message recorded")
        return row

    for direction in DIRECTIONS:
        for metric in RANK_METRICS:
            row[f"{direction}_{metric}"] = _number(record, f"metrics.{direction}.{metric}", path)
        row[f"{direction}_ranks"] = _ranks(record, direction, path)
    row["t2v_query_clips"] = _query_clips(record, row["t2v_ranks"], row["v2t_ranks"], path)
    row["rsum"] = _number(record, "metrics.rsum", path)
    row["tuned"] = _number(record, "params.tuned", path)
    row["tuned_pct"] = _number(record, "params.tuned_pct", path)
    row["backbone_params"] = _optional(record, "params.backbone")
    row["checkpoint_bytes"] = _optional(record, "params.checkpoint_bytes")
    for key in ("train_s", "eval_s", "clips_per_s"):
        row[key] = _optional(record, f"timing.{key}")
    row["peak_memory_mb"] = record.get("peak_memory_mb")
    # files written before the per-run measure held the peak of the whole process
    row["peak_memory_measure"] = _optional(record, "memory.measure") or "process_peak_rss"
    row["skipped_train"] = _count(record, "skipped.train")
    row["skipped_test"] = _count(record, "skipped.test")
    row["skipped_test_ids"] = _ids(record, "skipped.test")
    inputs = record.get("inputs") if isinstance(record.get("inputs"), dict) else {}
    row["offline_inputs"] = {f"offline {key}": str(value) for key, value in inputs.items()}
    row["model_selection"], row["selected_epoch"] = _model_selection(record.get("model_selection"))
    row["val_curve"] = _val_curve(record.get("val_curve"), path)
    row["git_commit"] = record.get("git_commit", "")
    row["vtrbench_version"] = _optional(record, "versions.vtrbench") or ""
    row["config_key"] = _computing_config(record.get("config"))
    reason = _why_not_ranked(record, row)
    if reason is not None:
        row["status"], row["error"] = reason
    return row


def _why_not_ranked(record: dict[str, Any], row: dict[str, Any]) -> tuple[str, str] | None:
    """A `finished` file judged again from its own per-query ranks, by the rules in force (vtrbench.ranking):
    (status, reason) when it must not be ranked. Its metrics must be what its ranks give (a file edited by hand,
    or written half, is not a result), and its ties and its distance from chance must pass today's rules,
    whichever version wrote it."""
    if not isinstance(record.get("config"), dict):  # found in review: it was averaged with its row unchecked
        return EXCLUDED, ("it records no config, so its settings cannot be checked against the other seeds of its "
                          "row: not ranked")
    stored = {f"{d}.{m}": row[f"{d}_{m}"] for d in DIRECTIONS for m in RANK_METRICS} | {"rsum": row["rsum"]}
    ranks = {direction: row[f"{direction}_ranks"] for direction in DIRECTIONS}
    missing = [direction for direction, r in ranks.items() if r is None]
    if missing:  # a number that cannot be checked is not a result
        return EXCLUDED, (f"no per-query ranks for {', '.join(missing)}, so its metrics cannot be checked: "
                          f"not ranked")
    recomputed = metrics_from_ranks(ranks)
    expected = {f"{d}.{m}": recomputed[d][m] for d in DIRECTIONS for m in RANK_METRICS} | {"rsum": recomputed["rsum"]}
    wrong = [f"{key}: stored {stored[key]:g}, from its ranks {value:g}" for key, value in expected.items()
             if not abs(stored[key] - value) <= METRIC_TOLERANCE]  # NaN never passes
    if wrong:
        return EXCLUDED, f"its metrics disagree with its per-query ranks ({'; '.join(wrong[:3])}): not ranked"
    counts = ("tied_queries", "collapsed_queries", "queries")
    ties = record.get("ties") if isinstance(record.get("ties"), dict) else {}
    summary = {d: v for d, v in ties.items()
               if d in DIRECTIONS and isinstance(v, dict) and all(isinstance(v.get(c), int) for c in counts)}
    unjudged = [direction for direction in DIRECTIONS if direction not in summary]
    if unjudged:  # without its tie counts a collapsed ranking (every target tied, every rank 1) reads perfect
        return EXCLUDED, (f"no tie record ({', '.join(counts)}) for {', '.join(unjudged)}, so whether its "
                          f"scores collapsed cannot be judged: not ranked")
    summary["chance_z"] = chance_zs(ranks, candidates=int(ranks["v2t"].size))
    reason = unusable_reason(summary, backbone_pretrained=str(row["pretrained"]) != RANDOM_PRETRAINED)
    return None if reason is None else ("degenerate", reason)


def _computing_config(config: Any) -> dict[str, Any] | None:
    """The settings of a run's config that change what it computes, the seed aside, by dotted key (None for a
    file without its config)."""
    if not isinstance(config, dict):
        return None
    return {k: v for k, v in flatten_config(config).items() if computes(k) and k != "seed"}


def _differences(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """`key: first -> second` for the settings both configs hold and set differently. A setting one of them
    lacks was added to the suite after that run; the report cannot tell its default (the harness's structured
    config holds it, and a reused run is compared against it), so it is not counted here."""
    return [f"{k}: {first[k]!r} -> {second[k]!r}" for k in sorted(set(first) & set(second)) if first[k] != second[k]]


def _agreeing_groups(runs: list[tuple[Any, dict[str, Any]]]) -> list[list[tuple[Any, dict[str, Any]]]]:
    """(index, settings) pairs grouped so that the settings of each run agree with every other run of its group,
    each run joining the first group it agrees with, in the given order."""
    groups: list[list] = []
    for index, settings in runs:
        home = next((g for g in groups if not any(_differences(k, settings) for _, k in g)), None)
        if home is None:
            groups.append(home := [])
        home.append((index, settings))
    return groups


def _exclude_all_but_largest(frame: pd.DataFrame, groups: list[list[tuple[Any, dict[str, Any]]]],
                             reason: Callable[[list, str], str]) -> None:
    """The runs of the largest group stay (the first group on a tie); every run of the others is excluded, its
    error `reason(kept group, the settings that differ from the kept group's first run)`."""
    kept = max(groups, key=len)
    for group in groups:
        if group is kept:
            continue
        for index, settings in group:
            shown = _differences(kept[0][1], settings)
            more = f" (and {len(shown) - 3} more)" if len(shown) > 3 else ""
            frame.loc[index, "status"] = EXCLUDED
            frame.loc[index, "error"] = reason(kept, "; ".join(shown[:3]) + more)


def exclude_other_test_sets(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of one table (dataset, split) are ranked and paired query by query, so they must have read the
    same test set. Where finished runs of one table were made with different settings of the dataset's own
    section (another root, another test file), the runs of the largest group stay (the first in run order on a
    tie) and the others are excluded, naming the settings: nothing is ranked against another test set."""
    finished = frame[(frame["status"] == "finished") & frame["config_key"].notna()]
    for (dataset, _), group in finished.groupby(["dataset", "split"], sort=False):
        ordered = group.sort_values([k for k in RUN_IDENTITY if k not in ("dataset", "split")], kind="stable")
        # its dataset's own settings, and the clips its run set aside (found in review: two runs that each set
        # aside another clip ranked test sets of one size, paired query by query)
        groups = _agreeing_groups([(index, {k: v for k, v in row["config_key"].items() if k.startswith(f"{dataset}.")}
                                    | {"test clips set aside": list(row["skipped_test_ids"])}
                                    | {k: v for k, v in row["offline_inputs"].items() if k == "offline data"})
                                   for index, row in ordered.iterrows()])
        if len(groups) > 1:
            _exclude_all_but_largest(frame, groups, lambda kept, shown, dataset=dataset: (
                f"read another {dataset} test set than the {len(kept)} run(s) its table ranks ({shown}): not "
                f"ranked or paired with them; report it from another runs folder"))
    return frame


def exclude_mixed_configs(frame: pd.DataFrame) -> pd.DataFrame:
    """A row of a table averages seeds of one config. Where the finished runs of one (dataset, split,
    backbone, method, variant) were made with different settings (another rate, another backbone weight,
    another budget), the settings of most of them stay (of the lowest seed on a tie) and the others are
    excluded, with the settings that differ: nothing is averaged across configs."""
    finished = frame[(frame["status"] == "finished") & frame["config_key"].notna()]
    keys = [k for k in RUN_IDENTITY if k != "seed"]
    for _, group in finished.groupby(keys, sort=False):
        clusters = _agreeing_groups([(index, row["config_key"] | row["offline_inputs"])
                                     for index, row in group.sort_values("seed", kind="stable").iterrows()])
        if len(clusters) > 1:
            _exclude_all_but_largest(frame, clusters, lambda kept, shown, group=group: (
                f"made with other settings than seed(s) {', '.join(str(group.loc[i, 'seed']) for i, _ in kept)} "
                f"of its row ({shown}): not averaged with them; give it a variant of its own (variant=...) or "
                f"another output.runs_dir"))
    return frame


def _val_curve(curve: Any, path: Path) -> list | None:
    """The learning curve: null or a list of {epoch, step, metrics: {t2v: {R1}, v2t: {R1}, rsum}} points."""
    if curve is None or curve == []:
        return None
    if not isinstance(curve, list):
        raise ResultFileError(f"{path}: 'val_curve' must be a list of points, got {type(curve).__name__}")
    for index, point in enumerate(curve):
        problem = curve_point_misfit(point)
        if problem:
            raise ResultFileError(f"{path}: 'val_curve[{index}]': {problem}")
    return curve


def load_result_file(path: Path) -> dict[str, Any]:
    """Read and flatten one result.json."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ResultFileError(f"{path}: not valid JSON ({error})") from error
    except UnicodeDecodeError as error:
        raise ResultFileError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error
    return parse_result(record, Path(path))


def fill_defaults(frame: pd.DataFrame, defaults: Callable[[str, str], dict[str, Any]]) -> pd.DataFrame:
    """Each run's settings with those its file lacks (added to the suite after it ran) at `defaults(method,
    dataset)`, the harness's structured defaults, as a reused run is read: so an older file is compared with
    the others for what it computed, not left out of the comparison."""
    rows = list(zip(frame["method"], frame["dataset"], frame["config_key"], strict=True))
    compared: dict[tuple[str, str], set[str]] = {}  # the keys a run is compared on: its row's and its test set's
    for method, dataset, settings in rows:
        if isinstance(settings, dict):
            compared.setdefault((method, dataset), set()).update(settings)
            compared.setdefault(("", dataset), set()).update(k for k in settings if k.startswith(f"{dataset}."))
    known: dict[tuple[str, str], dict[str, Any]] = {}  # asked only for a file that lacks a key: building is slow
    filled = []
    for method, dataset, settings in rows:
        if not isinstance(settings, dict) or set(settings) >= compared[method, dataset] | compared["", dataset]:
            filled.append(settings)
            continue
        if (method, dataset) not in known:
            known[method, dataset] = defaults(method, dataset)
        filled.append({**known[method, dataset], **settings})
    frame["config_key"] = filled
    return frame


def load_results(runs_dir: str | Path, defaults: Callable[[str, str], dict[str, Any]] | None = None) -> pd.DataFrame:
    """Every ``result.json`` under ``runs_dir`` (recursively) as one row, sorted by run identity
    (datasets in `DATASET_ORDER`, the order of the field's tables). ``defaults(method, dataset)``: the settings
    a file that lacks them stands for (the harness passes its structured defaults); without it, a setting one
    file lacks is not compared.

    Raises ``FileNotFoundError`` when there is none, and ``ResultFileError`` (naming the files) for a
    malformed file or for two files that claim the same run.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"{runs_dir}: {'not a folder' if runs_dir.exists() else 'no such folder'} (give "
                                f"the runs folder, e.g. runs/)")
    paths = sorted(runs_dir.rglob(RESULT_FILE))
    if not paths:
        raise FileNotFoundError(f"no {RESULT_FILE} under {runs_dir}")
    rows = [row for row in map(load_result_file, paths) if row["split"] != VAL_SPLIT]
    if not rows:
        raise FileNotFoundError(f"no test result under {runs_dir} (only tuning trials, which are scored on val)")
    frame = pd.DataFrame(rows)
    duplicated = frame[frame.duplicated(list(RUN_IDENTITY), keep=False)]
    if not duplicated.empty:
        files = ", ".join(duplicated["path"])
        raise ResultFileError(f"several result files claim the same run ({', '.join(RUN_IDENTITY)}): {files}")
    # Columns of finished runs are missing when every run failed; add them so callers need no special case.
    for column in FINISHED_COLUMNS:
        if column not in frame:
            frame[column] = None if column.endswith(("_ranks", "_curve", "_clips")) else np.nan
    if "config_key" not in frame:  # every run failed: none holds its settings
        frame["config_key"] = None
    if defaults is not None:
        frame = fill_defaults(frame, defaults)
    frame = exclude_mixed_configs(exclude_other_test_sets(frame)).drop(columns=["config_key", "offline_inputs"],
                                                                        errors="ignore")
    return frame.sort_values(list(RUN_IDENTITY), kind="stable", key=_dataset_first).reset_index(drop=True)


def dataset_rank(name: str) -> str:
    """Sort key of a dataset name: those in `DATASET_ORDER` in that order, then the others by name."""
    if name in DATASET_ORDER:
        return f"{DATASET_ORDER.index(name):02d}"
    return f"{len(DATASET_ORDER):02d}{name}"


def _dataset_first(column: pd.Series) -> pd.Series:
    """Sort key of a frame: `dataset_rank` for the dataset column, the other columns as they are."""
    return column.map(dataset_rank) if column.name == "dataset" else column
