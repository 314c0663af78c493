"""The leaderboard: every method x dataset x seed, then the report.

`tune=true` first chooses each method's settings on each dataset's val split (`vtrbench tune`, once per
method x dataset, with the first seed), then runs every seed with the chosen settings; each final result
carries the search's record (`tuning`).

A failing run is recorded as failed (with its error) and the others go on. Results are written atomically
when a run finishes, so an interrupted leaderboard (Ctrl-C, a killed process) leaves every finished result
in place: the next call skips those and resumes the interrupted run from its last epoch checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig

from vtrbench.benchmark.config import (
    ConfigError,
    computing_defaults,
    offline_rates_elsewhere,
    resolve_config,
    run_dir,
    untuned_rate,
    untuned_rate_note,
)
from vtrbench.benchmark.launchers import LOCAL, PendingRun, launch, split_launch_options
from vtrbench.benchmark.locks import RunLockedError, describe, locked_by_another, run_lock
from vtrbench.benchmark.matrix import check_disjoint_splits, expand, prepare_offline_assets
from vtrbench.benchmark.results import RunConflictError, finished_result, reuse_note, write_json
from vtrbench.benchmark.tuning import Search, check_equal_budgets, plan_searches, run_search, settings_overrides
from vtrbench.schema import RESULT_FILE, method_label

TUNE_SWITCH = "tune"  # `tune=true`: a leaderboard switch; `tune.trials=..` etc. stay run keys


def plan(overrides: list[str]) -> list[tuple[list[str], DictConfig]]:
    """The runs of a leaderboard call, each as (its `vtrbench run` overrides, its resolved config).

    Every config is resolved before anything runs, so a typo fails at once rather than after hours.
    """
    matrix = expand(overrides)
    runs = []
    for dataset in matrix.datasets:
        for method in matrix.methods:
            own = matrix.overrides_for(method, dataset)
            for seed in matrix.seeds:
                run_overrides = [*own, f"method={method}", f"dataset={dataset}", f"seed={seed}"]
                runs.append((run_overrides, resolve_config(run_overrides)))
    check_disjoint_splits([config for _, config in runs])
    return runs


def split_tune_switch(overrides: list[str]) -> tuple[bool, list[str]]:
    """The leaderboard's own `tune=true|false`, and the overrides left for the runs."""
    switch = [o for o in overrides if o.split("=", 1)[0] == TUNE_SWITCH]
    values = {o.split("=", 1)[1].strip().lower() if "=" in o else "" for o in switch}
    if not values <= {"true", "false"}:
        raise ConfigError(f"tune={'/'.join(sorted(values))}: expected tune=true or tune=false")
    return "true" in values, [o for o in overrides if o not in switch]


def tune_then_plan(overrides: list[str], runs: list[tuple[list[str], DictConfig]], quiet: bool):
    """Tune every method x dataset of `runs` on val (with the first seed), then the runs with the chosen
    settings; returns them and each run's tuning record (None where the method trains nothing)."""
    seed = runs[0][1].seed if runs else 0
    print(f"tune=true: every method x dataset is tuned on its val split with seed {seed} (the first seed), "
          f"then every seed runs with the chosen settings (the trials one at a time in this process)", flush=True)
    first_of = {}
    for run_overrides, config in runs:
        first_of.setdefault((config.dataset, config.method), run_overrides)
    searches: list[Search] = []
    for run_overrides in first_of.values():
        searches += plan_searches([o for o in run_overrides if not o.startswith("seed=")] + [f"seed={seed}"])
    check_equal_budgets(searches)
    prepare_offline_assets([search.config for search in searches if search.grid], quiet)
    records = {(s.config.dataset, s.config.method): run_search(s, quiet) for s in searches}
    tuned_runs, run_records = [], []
    for run_overrides, config in runs:
        record = records[(config.dataset, config.method)]
        chosen = settings_overrides(record["chosen"]["settings"]) if record else []
        tuned_runs.append(([*run_overrides, *chosen], resolve_config([*run_overrides, *chosen])))
        run_records.append(record)
    return tuned_runs, run_records


def attach_tuning(config: DictConfig, record: dict | None) -> None:
    """The final result carries the record of the search that chose its settings (also when the run itself
    had finished earlier with the same config). Only a finished run of this very config, read and rewritten
    under its lock: a run another process holds, or made with other settings, is left as it is."""
    if record is None or not (run_dir(config) / RESULT_FILE).is_file():  # nothing to attach it to
        return
    try:
        with run_lock(run_dir(config)):
            result = finished_result(run_dir(config), config)
            if result is not None and result.get("status") == "finished" and result.get("tuning") != record:
                write_json(run_dir(config) / RESULT_FILE, {**result, "tuning": record})
    except (RunLockedError, RunConflictError):
        return


def run_leaderboard(overrides: list[str], quiet: bool = False) -> int:
    """`launcher=local|slurm|submitit-local` and `slurm.*` choose where the runs execute (launchers.py);
    `tune=true` tunes every method x dataset on val first."""
    launch_options, overrides = split_launch_options(overrides)
    tune_first, overrides = split_tune_switch(overrides)
    if tune_first and launch_options.launcher != LOCAL:
        raise ConfigError(f"tune=true runs every search's trials in this process, one at a time, not as "
                          f"launcher={launch_options.launcher} jobs: run `vtrbench tune methods=[..] datasets=[..]` "
                          f"where the trials should train (in a job of its own), put its printed rules in a preset "
                          f"(preset=path/to/yours.yaml), then the leaderboard with that preset and no tune=true")
    runs = plan(overrides)
    records = [None] * len(runs)
    if tune_first:
        runs, records = tune_then_plan(overrides, runs, quiet)
    else:
        first_runs = {(c.method, c.dataset): (o, c) for o, c in reversed(runs)}  # seeds share their settings
        untuned = {pair: c.train.lr for pair, (o, c) in first_runs.items() if untuned_rate(c, o)}
        if untuned:
            print(untuned_rate_note(untuned), flush=True)
        elsewhere = next((note for _, c in runs if (note := offline_rates_elsewhere(c))), None)
        if elsewhere:
            print(elsewhere, flush=True)
    started = time.perf_counter()
    pending = []
    conflicts = []
    for i, (run_overrides, config) in enumerate(runs, 1):
        label = f"[{i}/{len(runs)}] {config.dataset} {method_label(config.method, config.variant)} seed{config.seed}"
        try:
            finished = finished_result(run_dir(config), config)
        except RunConflictError as err:
            conflicts.append(str(err))
            continue
        if finished is not None:
            print(f"{label}: finished earlier with this config, skipped{reuse_note(finished)}", flush=True)
            continue
        pending.append(PendingRun(label, run_overrides, config))
        holder = locked_by_another(run_dir(config))
        if holder is not None:
            pending[-1].elsewhere = True
            print(f"{label}: being run by {describe(holder)}, skipped here", flush=True)
    if conflicts:  # before anything runs, so that nothing is half done
        more = f" (and {len(conflicts) - 1} more run folder(s) like it)" if len(conflicts) > 1 else ""
        raise RunConflictError(conflicts[0] + more)
    to_run = [run for run in pending if not run.elsewhere]
    prepare_offline_assets([run.config for run in to_run], quiet)
    failed = launch(to_run, launch_options, quiet)
    for (_, config), record in zip(runs, records, strict=True):
        attach_tuning(config, record)
    elsewhere, meanwhile = sum(run.elsewhere for run in pending), sum(run.finished_elsewhere for run in pending)
    unrecorded = sum(run.unrecorded for run in pending)
    earlier = sum(run.elsewhere and (run_dir(run.config) / RESULT_FILE).is_file() for run in pending)
    print(f"{len(runs)} run(s): {len(pending) - elsewhere - meanwhile - failed} ran here, "
          f"{len(runs) - len(pending) + meanwhile} finished earlier, {failed} failed"
          + (f" ({unrecorded} could not write their failure, so the report does not list them)" if unrecorded else "")
          + f", {elsewhere} being run by another process"
          + (f" ({earlier} with an earlier, unfinished result in its folder, which the report lists as it stands)"
             if earlier else " (not in this report)" if elsewhere else "")
          + f", {time.perf_counter() - started:.0f} s", flush=True)
    if not runs:
        return 0
    runs_dir, report_dir = Path(runs[0][1].output.runs_dir), Path(runs[0][1].output.reports_dir)
    if not any(runs_dir.rglob(RESULT_FILE)):  # e.g. every run is in another process's hands
        print(f"no result under {runs_dir} yet: no report written", flush=True)
        return 1 if failed else 0
    from vtrbench.reports import refresh_report

    paths, written = refresh_report(runs_dir, report_dir, defaults=computing_defaults)
    print(paths["markdown:measured"].read_text(encoding="utf-8"), end="")
    state = "" if written else " (up to date: the same result files, code and libraries wrote it; not written again)"
    print(f"\nreport (with published rows, confidence intervals and paired tests){state}: {paths['markdown']}")
    for kind in ("html", "latex"):
        print(f"{kind}: {paths[kind]}")
    plots = [str(path) for kind, path in paths.items() if kind.startswith("png:")]
    print(f"plots: {', '.join(plots)}")
    return 1 if failed else 0
