"""`vtrbench tune`: choose a method's settings on the val split, with the same budget for every method.

The budget is the harness's (`tune.trials`, `tune.metric` in base.yaml) and the epochs are the run's own; a
method's yaml declares only its search space (`tune.space`), whose grid must hold exactly `tune.trials`
points or the search is refused (equal budgets are enforced, not hoped for). Each trial is a run of its own
(`<method dir>/tuning/seed<n>/<trial>/`) that trains on train (val held out) and is scored on val; it never
loads the test split. Finished trials are reused when their config is the same, so an interrupted search
resumes. The winner (the first best score, in grid order) is written to `tuning.json` beside the trials,
with the space, every trial's score and the choice, and printed as a preset rule ready to paste into
`configs/presets/offline.yaml`, whose source is the command that reproduces it.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from vtrbench.benchmark.config import ConfigError, config_file, is_preset_file, resolve_config, run_dir
from vtrbench.benchmark.counting import count_parameters
from vtrbench.benchmark.locks import RunLockedError
from vtrbench.benchmark.matrix import check_disjoint_splits, expand, prepare_offline_assets
from vtrbench.benchmark.results import (
    RunConflictError,
    git_commit,
    read_result,
    reuse_note,
    write_json,
)
from vtrbench.benchmark.runner import build_method, execute_or_reuse, record_failure
from vtrbench.benchmark.validation import is_better, metric_value
from vtrbench.methods.backbone import load_backbone
from vtrbench.schema import TUNING_FILE, TuningRecord, method_label

SIGNIFICANT_DIGITS = 3  # grid points are rounded so that the chosen value reads (and pastes) as written


def log_grid(low: float, high: float, points: int) -> list[float]:
    """`points` values evenly spaced in log between low and high (both included), to 3 significant digits."""
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
        raise ConfigError(f"log_range [{low}, {high}]: expected finite numbers with 0 < low < high")
    return [float(f"{value:.{SIGNIFICANT_DIGITS}g}") for value in np.logspace(math.log10(low), math.log10(high),
                                                                             points)]


def space_source(config: DictConfig, overrides: list[str] = ()) -> str:
    """Where the method's search space was declared, for error messages: the command line when one of
    `overrides` sets it, else the method's yaml."""
    if any(o.split("=", 1)[0].startswith("tune.space") for o in overrides):
        return "tune.space on the command line"
    own = config_file("methods", f"{config.method}.yaml")
    if own:
        return str(own)
    return "base.yaml's tune.space (the method has no yaml in vtrbench: give it tune.space=[...] on the command line)"


def search_grid(config: DictConfig, overrides: list[str] = ()) -> list[dict[str, Any]]:
    """Every trial's settings (dotted key -> value) in grid order. A space holds at most one `log_range`
    dimension, which gets as many points as the budget leaves; the grid must hold exactly `tune.trials`
    points. An empty space is an empty grid (nothing to tune). `overrides`: the command line's, for errors."""
    dims, trials, source = list(config.tune.space), int(config.tune.trials), space_source(config, overrides)
    if not dims:
        return []
    explicit, ranged = 1, [d for d in dims if d.log_range is not None]
    repeated = sorted(key for key, times in Counter(d.key for d in dims).items() if times > 1)
    if repeated:
        raise ConfigError(f"{source}: tune.space names {', '.join(repeated)} more than once; give each key once")
    for dim in dims:
        if (dim.log_range is None) == (dim.choices is None):
            raise ConfigError(f"{source}: tune.space {dim.key}: give exactly one of log_range or choices")
        if dim.key.split(".", 1)[0] in ("tune", "seed", "method", "dataset", "output") \
                or OmegaConf.select(config, dim.key, default=KeyError) is KeyError:
            raise ConfigError(f"{source}: tune.space {dim.key}: not a setting a search may vary")
        if dim.choices is not None:
            explicit *= len(dim.choices)
        elif len(dim.log_range) != 2:
            raise ConfigError(f"{source}: tune.space {dim.key}: log_range is [low, high]")
    if len(ranged) > 1:
        raise ConfigError(f"{source}: tune.space has {len(ranged)} log_range dimensions; give all but one as choices")
    points = trials // explicit if ranged else explicit
    if ranged and not trials % explicit and points < 2:
        raise ConfigError(f"{source}: tune.trials={trials} leaves {points} point(s) for {ranged[0].key}'s log_range, "
                          f"which needs at least 2")
    if (ranged and trials % explicit) or (not ranged and explicit != trials):
        raise ConfigError(
            f"{source}: tune.space yields {points * explicit if ranged else explicit} trial(s) but the budget "
            f"tune.trials is {trials}: every method gets the same number of trials")
    try:
        axes = [(d.key, log_grid(*d.log_range, points) if d.log_range is not None else list(d.choices)) for d in dims]
    except ConfigError as err:
        raise ConfigError(f"{source}: tune.space: {err}") from err
    grid: list[dict[str, Any]] = [{}]
    for key, values in axes:
        grid = [{**settings, key: value} for settings in grid for value in values]
    return grid


def format_value(value: Any) -> str:
    return f"{value:.{SIGNIFICANT_DIGITS}g}" if isinstance(value, float) else str(value)


def trial_name(settings: dict[str, Any]) -> str:
    """The trial's folder name: its settings, e.g. `train.lr-0.00316`."""
    return "_".join(f"{key}-{format_value(value)}".replace("/", "-") for key, value in settings.items())


def settings_overrides(settings: dict[str, Any]) -> list[str]:
    """`key=value` command-line overrides that set exactly these values (floats in full)."""
    return [f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}" for key, value in settings.items()]


def at_edge(config: DictConfig, settings: dict[str, Any]) -> list[str]:
    """The chosen values that sit at an end of a numeric range (true/false choices have no beyond): the best may
    lie beyond it."""
    edges = []
    for dim in config.tune.space:
        values = list(dim.log_range) if dim.log_range is not None else list(dim.choices)
        if len(values) < 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            continue
        chosen, low, high = settings[dim.key], min(values), max(values)
        if math.isclose(chosen, low, rel_tol=1e-2) or math.isclose(chosen, high, rel_tol=1e-2):
            side = "bottom" if math.isclose(chosen, low, rel_tol=1e-2) else "top"
            edges.append(f"{dim.key}={format_value(chosen)} is the {side} of its range [{format_value(low)}, "
                         f"{format_value(high)}]")
    return edges


@dataclass
class Search:
    """One method x dataset search: its base overrides and config (no trial settings yet)."""

    overrides: list[str]
    config: DictConfig
    grid: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.config.dataset} {method_label(self.config.method, self.config.variant)}"

    @property
    def command(self) -> str:
        """The `vtrbench tune` command that reproduces this search alone."""
        return " ".join(["vtrbench tune", *self.overrides])

    def trial_config(self, settings: dict[str, Any]) -> DictConfig:
        return resolve_config([*self.overrides, *settings_overrides(settings), f"tune.trial={trial_name(settings)}"])

    @property
    def record_path(self) -> Path:
        return run_dir(self.config).parent / "tuning" / f"seed{self.config.seed}" / TUNING_FILE


def parameter_counts(config: DictConfig) -> dict[str, float]:
    """The method's tuned-parameter counts, on a randomly initialised backbone: no weights read, same shapes."""
    backbone = load_backbone(config.backbone.name, "random")
    return count_parameters(build_method(config, backbone), backbone.num_elements)


def tunes_nothing(config: DictConfig) -> bool:
    return parameter_counts(config)["tuned"] == 0


def plan_searches(overrides: list[str]) -> list[Search]:
    """One search per method x dataset (`method=`/`dataset=` or `methods=[..]`/`datasets=[..]`), every
    config resolved and every space checked before anything trains. A search runs with one seed (`seed=`)."""
    if any(o.split("=", 1)[0] == "seeds" for o in overrides):
        raise ConfigError("seeds=[..]: a search runs with one seed (seed=N); the leaderboard runs several")
    trial = [o for o in overrides if o.split("=", 1)[0] == "tune.trial"]
    if trial:
        raise ConfigError(f"{trial[0]}: a search names each trial's folder itself; drop tune.trial (it is for "
                          f"`vtrbench run` of one trial's settings)")
    matrix = expand(overrides, keep=("seed",))
    searches = []
    for dataset in matrix.datasets:
        for method in matrix.methods:
            own = matrix.overrides_for(method, dataset)
            search_overrides = [f"method={method}", f"dataset={dataset}", *own]
            config = resolve_config(search_overrides)
            searched = {dim.key for dim in config.tune.space}
            fixed = searched & {o.split("=", 1)[0] for o in own}
            if fixed:
                raise ConfigError(f"{', '.join(sorted(fixed))}: searched by {method}'s tune.space; do not set it "
                                  f"on the command line of a search")
            source = space_source(config, own)
            search = Search(search_overrides, config, search_grid(config, own))
            if tunes_nothing(config):  # nothing trains, so no setting can matter (a space set for all is ignored)
                search.grid = []
            elif not search.grid:
                raise ConfigError(f"{source}: {method} trains parameters but declares no tune.space: "
                                  f"give it one of tune.trials={config.tune.trials} trials")
            seen: dict[tuple, str] = {}
            folders: dict[str, str] = {}
            for settings in search.grid:  # every trial's values checked before the first trial trains
                shown = " ".join(settings_overrides(settings))
                try:
                    trial = search.trial_config(settings)
                except ConfigError as err:
                    raise ConfigError(f"{source}: trial "
                                      f"{shown}: {err}") from err
                values = tuple(repr(OmegaConf.select(trial, key)) for key in settings)  # as the run reads them
                if values in seen:  # `choices: [0.1, 0.1, ...]`, or `[true, 1]` for a flag: fewer distinct trials
                    raise ConfigError(f"{source}: trials "
                                      f"{seen[values]} and {shown} set the same values: every method gets "
                                      f"tune.trials={config.tune.trials} distinct trials")
                seen[values] = shown
                folder = trial_name(settings)  # its values to SIGNIFICANT_DIGITS: two may round alike
                if folder in folders:
                    raise ConfigError(f"{source}: trials {folders[folder]} and {shown} would share the folder "
                                      f"{folder!r}: make them differ in the first {SIGNIFICANT_DIGITS} significant "
                                      f"digits")
                folders[folder] = shown
            searches.append(search)
    check_equal_budgets(searches)
    check_disjoint_splits([search.config for search in searches])
    return searches


def check_equal_budgets(searches: list[Search]) -> None:
    """Every search of one command has the same trials and metric (refused otherwise: a preset rule or a
    method could have changed them); epochs are each run's own, so a difference between the methods of one
    dataset (the paper preset's recipes) is said, not refused."""
    budgets = {(int(s.config.tune.trials), str(s.config.tune.metric)) for s in searches if s.grid}
    if len(budgets) > 1:
        shown = "; ".join(f"{t} trials, metric {m}" for t, m in sorted(budgets))
        raise ConfigError(f"unequal tuning budgets in one search ({shown}): tune.trials and tune.metric must be "
                          f"the same for every method")
    for dataset in dict.fromkeys(s.config.dataset for s in searches):
        epochs = {s.config.method: int(s.config.train.epochs) for s in searches
                  if s.grid and s.config.dataset == dataset}
        if len(set(epochs.values())) > 1:
            shown = ", ".join(f"{method} {count}" for method, count in epochs.items())
            print(f"NOTE: on {dataset} the methods train for different epochs ({shown}); each trial uses its "
                  f"run's own", flush=True)


def run_search(search: Search, quiet: bool = False) -> dict | None:
    """Run (or reuse) every trial of one search; write and return its record (None: nothing to tune)."""
    config = search.config
    if not search.grid:
        print(f"{search.label}: trains nothing, nothing to tune", flush=True)
        return None
    metric, budget = config.tune.metric, len(search.grid)
    dims = ", ".join(dim.key for dim in config.tune.space)
    print(f"{search.label}: {budget} trials of {dims} on the val split, metric {metric}, "
          f"{config.train.epochs} epoch(s) each, seed {config.seed}", flush=True)
    trials = []
    for index, settings in enumerate(search.grid, 1):
        trial_config = search.trial_config(settings)
        if quiet:
            trial_config.quiet = True
        shown = " ".join(settings_overrides(settings))
        started = time.perf_counter()
        try:
            result, ran = execute_or_reuse(trial_config)
        except (RunConflictError, RunLockedError):  # not this trial's failure: the search stops, records nothing
            raise
        except Exception as err:  # a failing (or diverged) trial is recorded and never chosen; the others go on
            failed = record_failure(trial_config, err)
            print(f"  trial {index}/{budget} {shown}: {failed['status'].upper()}: {failed['error']}", flush=True)
            trials.append({"trial": index, "settings": settings, "status": failed["status"],
                           "error": failed["error"], "run": str(run_dir(trial_config))})
            continue
        score = metric_value(result["metrics"], metric)
        took = f"{time.perf_counter() - started:.0f} s" if ran else f"finished earlier, reused{reuse_note(result)}"
        degenerate = f" DEGENERATE, never chosen: {result['reason']};" if result["status"] == "degenerate" else ""
        print(f"  trial {index}/{budget} {shown}: val {metric} {score:.1f} "
              f"({degenerate} T2V R@1 {result['metrics']['t2v']['R1']:.1f}; {took})", flush=True)
        trials.append({"trial": index, "settings": settings, "status": result["status"], "score": score,
                       "metrics": result["metrics"], "val_curve": result.get("val_curve", []),
                       "steps": (result.get("timing") or {}).get("steps"), "run": str(run_dir(trial_config))})
    finished = [t for t in trials if t["status"] == "finished"]
    if not finished:
        raise ValueError(f"{search.label}: no trial finished with usable scores (failed, diverged or degenerate); "
                         f"see the run folders under {search.record_path.parent}")
    best = None
    for trial in finished:  # the first best in grid order
        if best is None or is_better(metric, trial["score"], best["score"]):
            best = trial
    edges = at_edge(config, best["settings"])
    first = finished[0]
    record = TuningRecord(
        method=config.method,
        variant=config.variant,
        dataset=config.dataset,
        backbone=config.backbone.name,
        seed=config.seed,
        command=search.command,
        val=read_result(Path(first["run"]))["val"],
        metric=metric,
        trials_budget=budget,
        trials_finished=len(finished),
        epochs=int(config.train.epochs),
        space=[{k: v for k, v in OmegaConf.to_container(dim).items() if v is not None} for dim in config.tune.space],
        trials=trials,
        chosen={"trial": best["trial"], "settings": best["settings"], "score": best["score"]},
        at_edge=edges,
        git_commit=git_commit(),
    ).to_json()
    record["rule"] = preset_rule(record)
    write_json(search.record_path, record)
    print(f"  chosen: {' '.join(settings_overrides(best['settings']))} (val {metric} {best['score']:.1f}, "
          f"trial {best['trial']} of {budget})", flush=True)
    for edge in edges:
        print(f"  WARNING: {edge}: the best may lie beyond it; widen tune.space in "
              f"{space_source(config, search.overrides)}", flush=True)
    if len(finished) < budget:
        print(f"  WARNING: {budget - len(finished)} trial(s) failed: this method had fewer trials than the budget",
              flush=True)
    print(f"  record: {search.record_path}", flush=True)
    return record


def preset_rule(record: dict) -> dict:
    """The preset rule that sets the chosen values, with its provenance as its source."""
    scores = "; ".join(
        f"{' '.join(settings_overrides(t['settings']))} -> "
        + (f"{t['score']:.1f}" if t["status"] == "finished" else t["status"])
        for t in record["trials"]
    )
    source = (f"{record['command']} (seed {record['seed']}): chosen on the val split ({record['val']['source']}, "
              f"{record['val']['clips']} clips), {record['trials_budget']} trials, {record['epochs']} epoch(s) each, "
              f"metric {record['metric']}: {scores}")
    if record["at_edge"]:
        source += f"; AT THE EDGE: {'; '.join(record['at_edge'])}"
    nested: DictConfig = OmegaConf.create({})
    for key, value in record["chosen"]["settings"].items():
        OmegaConf.update(nested, key, value, force_add=True)
    return {"method": record["method"], "dataset": record["dataset"], "source": source,
            "set": OmegaConf.to_container(nested)}


def _flow(value: Any) -> str:
    """A YAML flow mapping, e.g. {train: {lr: 0.00316}}."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    return format_value(value) if isinstance(value, float) else str(value)


def rules_yaml(records: list[dict]) -> str:
    """The rules to paste under `rules:` of a preset (configs/presets/offline.yaml for the offline data)."""
    lines = []
    for record in records:
        rule = record["rule"]
        source = rule["source"].replace("\\", "\\\\").replace('"', '\\"')
        lines += [f"  - method: {rule['method']}", f"    dataset: {rule['dataset']}", f'    source: "{source}"',
                  f"    set: {_flow(rule['set'])}"]
    return "\n".join(lines)


def run_tune(overrides: list[str], quiet: bool = False) -> dict[tuple[str, str], dict | None]:
    """`vtrbench tune`: every search of the command, then the preset rules; returns the records by
    (dataset, method)."""
    searches = plan_searches(overrides)
    prepare_offline_assets([s.config for s in searches if s.grid], quiet)
    records = {}
    for search in searches:
        records[(search.config.dataset, search.config.method)] = run_search(search, quiet)
    done = [record for record in records.values() if record is not None]
    if done:
        preset = searches[0].config.preset
        shipped = preset and not is_preset_file(preset)
        where = f"configs/presets/{preset}.yaml" if shipped else (preset or "a preset of your own")
        print(f"\n# rules for {where} (or a preset of yours that extends it), under `rules:`")
        print(rules_yaml(done))
        for search in searches:
            extra = settings_beyond_rule(search.overrides)
            if extra and records[(search.config.dataset, search.config.method)] is not None:
                print(f"# NOTE: {search.label} was searched with {' '.join(extra)}, which its rule does not set: "
                      f"the rate suits runs with them; add them to the rule's set (or to your preset's defaults)",
                      flush=True)
    return records


# Keys of a search's command line that say which search it is or where it writes, not how its runs train
_NOT_SETTINGS = ("method", "dataset", "seed", "preset", "output", "tune", "quiet", "device")


def settings_beyond_rule(overrides: list[str]) -> list[str]:
    """The command-line settings of a search that change how its trials train (`dgl.latent=transformer`,
    `train.epochs=6`): a preset rule sets only the chosen values, so runs without them get a rate chosen for
    something else."""
    keys = ((override, override.split("=", 1)[0]) for override in overrides)
    return [override for override, key in keys  # a dataset's root: where the data is, not how it trains
            if key.split(".", 1)[0] not in _NOT_SETTINGS and not key.endswith(".root")]
