"""The Tuning section and the learning curves: read from the files the harness writes (no torch).

Tuning records are the `tuning.json` files `vtrbench tune` (and `vtrbench leaderboard tune=true`) write
beside their trials: the space, every trial's val score, the choice and the budget. Learning curves are the
`val_curve` of each test run's result.json: val metrics at step 0 and after every epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from vtrbench.reports.result_table import ResultFileError, dataset_rank
from vtrbench.reports.tables import MISSING, DisplayTable
from vtrbench.schema import TUNING_FILE

CURVE_COLUMNS = ["table", "dataset", "backbone", "method", "variant", "seed", "epoch", "step",
                 "t2v_R1", "v2t_R1", "rsum"]


def load_tuning_records(runs_dir: str | Path) -> list[dict[str, Any]]:
    """Every tuning record under `runs_dir`, sorted by dataset, backbone, method, variant, seed."""
    records = []
    for path in sorted(Path(runs_dir).rglob(TUNING_FILE)):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ResultFileError(f"{path}: not valid JSON ({error})") from error
        except UnicodeDecodeError as error:
            raise ResultFileError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from error
        check_tuning_record(record, path)
        records.append({**record, "variant": record.get("variant") or "", "seed": record.get("seed", 0),
                        "path": str(path)})
    return sorted(records, key=lambda r: (dataset_rank(r["dataset"]), r["backbone"], r["method"], r["variant"],
                                          r["seed"]))


def check_tuning_record(record: Any, path: Path) -> None:
    """The fields the report reads, with their types; a ResultFileError naming the file and the field."""
    if not isinstance(record, dict):
        raise ResultFileError(f"{path}: expected a JSON object at the top level (not a vtrbench tuning record)")
    types = {"method": str, "dataset": str, "backbone": str, "metric": str, "trials_budget": int, "space": list,
             "trials": list, "chosen": dict}
    for key, kind in types.items():
        if key not in record:
            raise ResultFileError(f"{path}: missing key '{key}' (not a vtrbench tuning record)")
        if not isinstance(record[key], kind) or isinstance(record[key], bool):
            raise ResultFileError(f"{path}: '{key}' must be {kind.__name__}, got {record[key]!r}")
    optional = {"variant": (str, type(None)), "seed": int}  # files without them: no variant, seed 0
    for key, kinds in optional.items():
        if key in record and (not isinstance(record[key], kinds) or isinstance(record[key], bool)):
            expected = "a string or null" if key == "variant" else "an integer"
            raise ResultFileError(f"{path}: '{key}' must be {expected}, got {record[key]!r}")
    for index, trial in enumerate(record["trials"]):
        where = f"{path}: 'trials[{index}]"
        if not isinstance(trial, dict) or not isinstance(trial.get("settings"), dict) or "trial" not in trial:
            raise ResultFileError(f"{where}' must be an object with 'trial' and 'settings' (an object), got {trial!r}")
        if trial.get("status", "failed") == "finished" and not isinstance(trial.get("score"), (int, float)):
            raise ResultFileError(f"{where}.score' must be a number, got {trial.get('score')!r}")
    if not isinstance(record["chosen"].get("settings"), dict) or "trial" not in record["chosen"]:
        raise ResultFileError(f"{path}: 'chosen' must hold 'trial' and 'settings' (an object)")
    for index, dim in enumerate(record["space"]):
        if not isinstance(dim, dict) or "key" not in dim:
            raise ResultFileError(f"{path}: 'space[{index}]' must be an object with a 'key', got {dim!r}")
        log_range, choices = dim.get("log_range"), dim.get("choices", [])
        if log_range is not None and not (isinstance(log_range, list) and len(log_range) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in log_range)):
            raise ResultFileError(f"{path}: 'space[{index}].log_range' must be two numbers, got {log_range!r}")
        if not isinstance(choices, list):
            raise ResultFileError(f"{path}: 'space[{index}].choices' must be a list, got {choices!r}")
    for index, trial in enumerate(record["trials"]):
        if not trial["settings"]:  # a cell shows a trial by its settings
            raise ResultFileError(f"{path}: 'trials[{index}].settings' must name at least one setting")
    if not record["chosen"]["settings"]:
        raise ResultFileError(f"{path}: 'chosen.settings' must name at least one setting")
    for key in ("val", "at_edge"):
        if key in record and not isinstance(record[key], dict if key == "val" else list):
            kind = "an object" if key == "val" else "a list"
            raise ResultFileError(f"{path}: '{key}' must be {kind}, got {record[key]!r:.80}")


def _value(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _settings(settings: dict[str, Any], keys: int) -> str:
    """`0.00316` for a one-setting space, `train.lr=0.00316 dgl.latent=linear` for several."""
    if keys == 1:
        return _value(next(iter(settings.values())))
    return " ".join(f"{k}={_value(v)}" for k, v in settings.items())


def _space(space: list[dict[str, Any]]) -> str:
    parts = []
    for dim in space:
        if "log_range" in dim:
            low, high = dim["log_range"]
            parts.append(f"{dim['key']} {_value(float(low))}–{_value(float(high))} (log)")
        else:
            parts.append(f"{dim['key']}: {', '.join(_value(v) for v in dim.get('choices', []))}")
    return "; ".join(parts)


def tuning_tables(records: list[dict[str, Any]]) -> list[DisplayTable]:
    """One table per dataset: each method's space, every trial's val score, the choice and the budget."""
    tables = []
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        rows_of = [r for r in records if r["dataset"] == dataset]
        most = max(len(r["trials"]) for r in rows_of)
        rows = []
        for record in rows_of:
            keys = len(record["space"])
            cells = []
            for trial in record["trials"]:
                status = trial.get("status", "failed")  # degenerate, diverged or failed: never chosen
                score = f"{trial['score']:.1f}" if status == "finished" else status
                mark = " *" if trial["trial"] == record["chosen"]["trial"] else ""
                cells.append(f"{_settings(trial['settings'], keys)}: {score}{mark}")
            cells += [MISSING] * (most - len(cells))
            finished = sum(t.get("status") == "finished" for t in record["trials"])
            rows.append([
                record["method"], record.get("variant", ""), record["backbone"], str(record.get("seed", "")),
                _space(record["space"]), *cells,
                _settings(record["chosen"]["settings"], keys),
                "yes" if record.get("at_edge") else "no",
                f"{finished}/{record['trials_budget']}", str(record.get("epochs", MISSING)),
            ])
        budgets = {(r["trials_budget"], r["metric"], r.get("epochs")) for r in rows_of}
        val = rows_of[0].get("val") or {}
        notes = [
            f"Trial cells: setting: val {rows_of[0]['metric']} (the val split: {val.get('source', '?')}, "
            f"{val.get('clips', '?')} clips); * marks the chosen trial (the first best in grid order). Every "
            "trial trains on train with val held out; no trial reads the test split.",
            ("Budget: the same for every method here: " if len(budgets) == 1 else "UNEQUAL BUDGETS: ")
            + "; ".join(f"{t} trials, metric {m}, {e} epoch(s) each" for t, m, e in sorted(budgets, key=str)) + ".",
        ]
        edges = [f"{r['method']}: {e}" for r in rows_of for e in r.get("at_edge", [])]
        if edges:
            notes.append("Chosen at the edge of the range (the best may lie beyond it): " + "; ".join(edges) + ".")
        tables.append(DisplayTable(
            title=f"{dataset}: tuning on the val split",
            columns=["Method", "Variant", "Backbone", "Seed", "Space",
                     *(f"Trial {k}" for k in range(1, most + 1)), "Chosen", "At edge", "Trials", "Epochs"],
            blocks=[("", rows)],
            notes=notes,
            name=f"tuning {dataset}",
            label_columns=5,
        ))
    return tables


def tuning_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per trial (the CSV of the Tuning section)."""
    rows = []
    for record in records:
        for trial in record["trials"]:
            rows.append({
                "dataset": record["dataset"], "backbone": record["backbone"], "method": record["method"],
                "variant": record.get("variant", ""), "seed": record.get("seed"), "metric": record["metric"],
                "trials_budget": record["trials_budget"], "epochs": record.get("epochs"), "trial": trial["trial"],
                "settings": json.dumps(trial["settings"]), "status": trial.get("status"), "score": trial.get("score"),
                "chosen": trial["trial"] == record["chosen"]["trial"], "at_edge": bool(record.get("at_edge")),
                "record": record["path"],
            })
    return pd.DataFrame(rows)


def curve_frame(results: pd.DataFrame) -> pd.DataFrame:
    """One row per learning-curve point of every finished test run (`table` as in the dataset tables)."""
    rows = []
    finished = results[results["status"] == "finished"]
    for _, run in finished.iterrows():
        points = run.get("val_curve")
        for point in points if isinstance(points, list) else []:  # NaN where a run has none
            metrics = point["metrics"]
            rows.append({
                "table": run["table"], "dataset": run["dataset"], "backbone": run["backbone"],
                "method": run["method"], "variant": run["variant"], "seed": run["seed"], "epoch": point["epoch"],
                "step": point["step"], "t2v_R1": metrics["t2v"]["R1"], "v2t_R1": metrics["v2t"]["R1"],
                "rsum": metrics["rsum"],
            })
    return pd.DataFrame(rows, columns=CURVE_COLUMNS)
