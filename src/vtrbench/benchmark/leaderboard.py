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

from omegaconf import DictConfig, ListConfig

from vtrbench.benchmark.config import (
    ConfigError,
    load_preset,
    overrides_for_run,
    parse_overrides,
    resolve_config,
    run_dir,
)
from vtrbench.benchmark.launchers import PendingRun, launch, split_launch_options
from vtrbench.benchmark.locks import describe, locked_by_another
from vtrbench.benchmark.results import RESULT_FILE, RunConflictError, finished_result, read_result, write_json
from vtrbench.registry import METHODS

MATRIX_KEYS = ("methods", "datasets", "seeds")
TUNE_SWITCH = "tune"  # `tune=true`: a leaderboard switch; `tune.trials=..` etc. stay run keys
DEFAULT_DATASETS = ["msrvtt", "vatex", "lsmdc", "activitynet"]


def plan(overrides: list[str]) -> list[tuple[list[str], DictConfig]]:
    """The runs of a leaderboard call, each as (its `vtrbench run` overrides, its resolved config).

    Every config is resolved before anything runs, so a typo fails at once rather than after hours.
    """
    cli = parse_overrides(overrides)
    preset = load_preset(cli.preset) if cli.get("preset") else {}
    methods = matrix_list(cli, "methods", str) or list(preset.get("methods") or METHODS.names())
    datasets = matrix_list(cli, "datasets", str) or list(preset.get("datasets") or DEFAULT_DATASETS)
    seeds = matrix_list(cli, "seeds", int) or [cli.get("seed", 0)]
    passthrough = [o for o in overrides if o.split("=", 1)[0] not in MATRIX_KEYS + ("method", "dataset", "seed")]
    runs = []
    for dataset in datasets:
        for method in methods:
            own = overrides_for_run(passthrough, method, dataset, [*methods, *datasets])
            for seed in seeds:
                run_overrides = [*own, f"method={method}", f"dataset={dataset}", f"seed={seed}"]
                runs.append((run_overrides, resolve_config(run_overrides)))
    check_disjoint_splits([config for _, config in runs])
    return runs


def check_disjoint_splits(configs: list[DictConfig]) -> None:
    """Before anything runs: every dataset root given must have splits that share no clip (each run checks
    again; the offline data is disjoint by construction and is not generated here)."""
    from vtrbench.benchmark.config import dataset_options
    from vtrbench.registry import DATASETS

    checked = set()
    for config in configs:
        options = dataset_options(config)
        key = (config.dataset, repr(options))
        if options.root is not None and key not in checked:
            checked.add(key)
            DATASETS.get(config.dataset)(options).check_disjoint_splits()


def matrix_list(cli: DictConfig, key: str, kind: type) -> list | None:
    """`methods=[..]`, `datasets=[..]` or `seeds=[..]` from the command line, checked; None when not given."""
    if key not in cli:
        return None
    value = cli[key]
    example = {"methods": "methods=[zero_shot,dgl]", "datasets": "datasets=[msrvtt]", "seeds": "seeds=[0,1,2]"}[key]
    if not isinstance(value, ListConfig) or not value:
        raise ConfigError(f"{key}={value!r}: expected a non-empty list, e.g. {example}")
    items = list(value)
    for item in items:
        if type(item) is not kind:  # bool is an int to isinstance; `seeds=[true]` is no seed
            raise ConfigError(f"{key}: {item!r} is not {'an integer' if kind is int else 'a name'} ({example})")
    repeated = sorted({str(item) for item in items if items.count(item) > 1})
    if repeated:
        raise ConfigError(f"{key}: {', '.join(repeated)} repeated (each run would be planned twice)")
    return items


def prepare_offline_assets(configs: list[DictConfig], quiet: bool = False) -> None:
    """Build what the runs share once, in this process, before they start: registered backbones that make
    their weights on first use (the offline one), generated datasets and their frame caches."""
    from vtrbench.benchmark.config import dataset_options
    from vtrbench.methods.backbone import load_backbone
    from vtrbench.registry import BACKBONES, DATASETS

    for name, pretrained in dict.fromkeys((c.backbone.name, c.backbone.pretrained) for c in configs):
        if name in BACKBONES:
            load_backbone(name, pretrained, progress=not quiet)
    seen = set()
    for config in configs:
        options = dataset_options(config)
        key = (config.dataset, config.backbone.name, config.data.num_frames, config.data.frame_cache_fps)
        if options.root is None and key not in seen:
            seen.add(key)
            dataset = DATASETS.get(config.dataset)(options)
            dataset.offline_root(progress=not quiet)
            if config.data.frame_cache:
                cache_offline_frames(config, dataset, quiet)


def cache_offline_frames(config: DictConfig, dataset, quiet: bool) -> None:
    """The offline data's frame cache: decoding once here spares every method's every epoch the decoding."""
    from vtrbench.datasets.base import SPLITS
    from vtrbench.datasets.frame_cache import CacheSettings, FrameCache, frame_cache_dir, prepare_frame_cache
    from vtrbench.methods.backbone import load_backbone
    from vtrbench.progress import phase

    image_size = load_backbone(config.backbone.name, "random").image_size  # only its input size is needed
    settings = CacheSettings(image_size, config.data.frame_cache_fps, min_frames=config.data.num_frames)
    for split in SPLITS:
        clips = dataset.load(split).clips
        directory = frame_cache_dir(config.dataset, dataset.root)
        cache = FrameCache.open(directory, split, settings)
        if cache is not None and cache.is_current(clips):
            continue
        with phase(f"caching the frames of the offline {config.dataset} {split} split ({len(clips):,} clips)",
                   not quiet):
            prepare_frame_cache(clips, directory, split, settings, progress=not quiet)


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
    from vtrbench.benchmark.tuning import (
        Search,
        check_equal_budgets,
        plan_searches,
        run_search,
        settings_overrides,
    )

    seed = runs[0][1].seed if runs else 0
    print(f"tune=true: every method x dataset is tuned on its val split with seed {seed} (the first seed), "
          f"then every seed runs with the chosen settings", flush=True)
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
    had finished earlier with the same config)."""
    result = read_result(run_dir(config))
    if record is not None and result is not None and result.get("status") == "finished" \
            and result.get("tuning") != record:
        write_json(run_dir(config) / RESULT_FILE, {**result, "tuning": record})


def run_leaderboard(overrides: list[str], quiet: bool = False) -> int:
    """`launcher=local|slurm|submitit-local` and `slurm.*` choose where the runs execute (launchers.py);
    `tune=true` tunes every method x dataset on val first."""
    launch_options, overrides = split_launch_options(overrides)
    tune_first, overrides = split_tune_switch(overrides)
    runs = plan(overrides)
    records = [None] * len(runs)
    if tune_first:
        runs, records = tune_then_plan(overrides, runs, quiet)
    started = time.perf_counter()
    pending = []
    conflicts = []
    for i, (run_overrides, config) in enumerate(runs, 1):
        label = f"[{i}/{len(runs)}] {config.dataset} {config.method}{'.' + config.variant if config.variant else ''}" \
                f" seed{config.seed}"
        try:
            finished = finished_result(run_dir(config), config)
        except RunConflictError as err:
            conflicts.append(str(err))
            continue
        if finished is not None:
            print(f"{label}: finished earlier with this config, skipped", flush=True)
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
    print(f"{len(runs)} run(s): {len(pending) - elsewhere - meanwhile - failed} ran here, "
          f"{len(runs) - len(pending) + meanwhile} finished earlier, {failed} failed, {elsewhere} being run by "
          f"another process (not in this report), {time.perf_counter() - started:.0f} s", flush=True)
    if not runs:
        return 0
    runs_dir, report_dir = Path(runs[0][1].output.runs_dir), Path(runs[0][1].output.reports_dir)
    if not any(runs_dir.rglob("result.json")):  # e.g. every run is in another process's hands
        print(f"no result under {runs_dir} yet: no report written", flush=True)
        return 1 if failed else 0
    from vtrbench.reports import measured_tables_markdown, write_report

    paths = write_report(runs_dir, report_dir)
    print(measured_tables_markdown(runs_dir))
    print(f"\nreport (with published rows, confidence intervals and paired tests): {paths['markdown']}")
    for kind in ("html", "latex"):
        print(f"{kind}: {paths[kind]}")
    plots = [str(path) for kind, path in paths.items() if kind.startswith("png:")]
    print(f"plots: {', '.join(plots)}")
    return 1 if failed else 0
