"""Run configuration: structured defaults < base.yaml < dataset yaml < method yaml < preset < command line.

The schema is built per run from dataclasses: the harness sections below, plus one section named after the
method (its `Config` dataclass) and one named after the dataset. Unknown keys and wrong types are errors
that name the key and the source that set it.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vtrbench.registry import DATASETS, METHODS, UnknownNameError
from vtrbench.schema import computes, flatten_config, method_label


class ConfigError(ValueError):
    pass


@dataclass
class BackboneConfig:
    name: str = "vtrbench-tiny"
    pretrained: str = "offline"
    # MLP activation: auto (an open_clip tag's own flag, else the architecture's config), true or false
    # (forced, e.g. for a checkpoint file of OpenAI's QuickGELU weights); see methods/backbone.py
    quick_gelu: str = "auto"


@dataclass
class DataConfig:
    num_frames: int = 8
    max_words: int = 32
    batch_size: int = 32
    eval_batch_size: int = 64
    num_workers: int = 0
    frame_cache: bool = False  # read frames from `vtrbench data prepare`'s cache instead of decoding
    frame_cache_fps: float = 3.0


@dataclass
class TrainConfig:
    epochs: int = 3
    lr: float = 1e-3
    backbone_lr_scale: float = 1.0  # CLIP4Clip's coef_lr: backbone parameters train at lr * this
    weight_decay: float = 0.2
    # AdamW's beta2 and eps: PyTorch's by default; CLIP-style recipes (STOP's, BertAdam's) use 0.98 and 1e-6
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    warmup: float = 0.1  # fraction of the steps
    grad_clip: float = 1.0
    amp: bool = True  # autocast on CUDA only; ignored on CPU
    max_steps: int | None = None  # stop early (smoke tests, benchmarks)
    # Evaluate the val split before training and after every epoch (the learning curve in result.json);
    # false spares the time on very large val sets (best_val selection and tuning trials still evaluate val).
    val_curve: bool = True
    select: str = "last"  # the model tested: "last" epoch, or "best_val" (the best epoch by tune.metric on val)


@dataclass
class SearchDimension:
    """One setting a tuning search varies: `log_range: [low, high]` (a log-spaced grid whose size the budget
    fixes) or `choices: [...]` (exactly these)."""

    key: str  # a dotted config key, e.g. train.lr
    log_range: list[float] | None = None
    choices: list[Any] | None = None


@dataclass
class TuneConfig:
    """`vtrbench tune`: the budget (`trials`, `metric`) is the harness's, the same for every method; each
    method's yaml declares its `space`. `trial` names a tuning trial's run: set by the tuner; set by hand,
    it puts a val-only run in a folder of its own beside the trials (`tune.trial=budget6`), never among the
    test runs."""

    trials: int = 5
    metric: str = "rsum"  # rsum, or <t2v|v2t>.<R1|R5|R10|MdR|MnR> (ranks: lower is better)
    space: list[SearchDimension] = field(default_factory=list)
    trial: str = ""


@dataclass
class OutputConfig:
    runs_dir: str = "runs"
    reports_dir: str = "reports"  # where `vtrbench leaderboard` writes its report
    wandb: bool = False
    wandb_project: str = "vtrbench"


@dataclass
class HarnessConfig:
    method: str = "zero_shot"
    dataset: str = "msrvtt"
    variant: str = ""  # empty: derived from the method options that differ from their defaults
    preset: str = ""  # configs/presets/<name>.yaml (e.g. `paper`) or your own YAML file by its path
    seed: int = 0
    device: str = "auto"
    quiet: bool = False
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


HARNESS_KEYS = {f.name for f in dataclasses.fields(HarnessConfig)}
SELECTION_RULES = ("last", "best_val")
# What a search or best_val selection may rank by: rsum, or one metric of one direction.
METRIC_NAMES = ("rsum", *(f"{d}.{m}" for d in ("t2v", "v2t") for m in ("R1", "R5", "R10", "MdR", "MnR")))
# The budget of a search is the same for every method: a method's yaml declares its space, nothing more.
HARNESS_ONLY_TUNE_KEYS = ("trials", "metric", "trial")


# Names that become folders of a run (run_dir): plain names, so that no setting writes outside runs_dir.
PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=,@-]{0,127}")
PLAIN_NAME_CHARS = "letters, digits and _ . + = , @ -, not starting with . - + = , or @, at most 128"
# open_clip's hub names (hf-hub:org/model) keep their colon; run_dir turns the slash into '-'
BACKBONE_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=,@:-]{0,127}")


def backbone_folder(name: str) -> str:
    return name.replace("/", "-")


def check_path_names(config: DictConfig) -> None:
    """Every name that becomes a folder of the run (method, dataset, variant, backbone) is a plain name."""
    for key in ("method", "dataset", "variant"):
        value = config[key]
        if key == "variant" and value == "":
            continue
        if not PLAIN_NAME.fullmatch(str(value)):
            hint = " (set variant=NAME)" if key == "variant" else ""
            raise ConfigError(f"{key}={value!r}: it names a folder of the run, so it must be a plain name: "
                              f"{PLAIN_NAME_CHARS}{hint}")
    trial = OmegaConf.select(config, "tune.trial", default="")
    if trial and not PLAIN_NAME.fullmatch(str(trial)):
        raise ConfigError(f"tune.trial={trial!r}: it names a folder of the run, so it must be a plain name: "
                          f"{PLAIN_NAME_CHARS}")
    if not BACKBONE_FOLDER.fullmatch(backbone_folder(str(config.backbone.name))):
        raise ConfigError(f"backbone.name={config.backbone.name!r}: it names a folder of the run, so it must "
                          f"be a plain model name ({PLAIN_NAME_CHARS}; '/' and ':' allowed)")


# (key, test, what is expected): values every run needs to mean what its name says. A run with no training
# step (epochs 0, lr 0, batches of one pair) would write zero-shot numbers under a tuning method's name.
VALUE_RULES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("seed", lambda v: 0 <= v < 2**32, "an integer from 0 to 2**32 - 1"),
    ("device", lambda v: re.fullmatch(r"auto|cpu|mps|(cuda|xpu)(:\d+)?", v) is not None,
     "auto, cpu, cuda, cuda:N, mps or xpu"),
    ("train.epochs", lambda v: v >= 1, "an integer >= 1"),
    ("train.lr", lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    ("train.backbone_lr_scale", lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0"),
    ("train.weight_decay", lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0"),
    ("train.adam_beta2", lambda v: 0 <= v < 1, "a number from 0 up to (not including) 1"),
    ("train.adam_eps", lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    ("train.warmup", lambda v: 0 <= v <= 1, "a fraction of the steps from 0 to 1"),
    ("train.grad_clip", lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    ("train.max_steps", lambda v: v is None or v >= 1, "null or an integer >= 1"),
    ("data.num_frames", lambda v: v >= 1, "an integer >= 1"),
    ("data.max_words", lambda v: v >= 2, "an integer >= 2"),
    ("data.batch_size", lambda v: v >= 2, "an integer >= 2 (a contrastive batch needs two pairs)"),
    ("data.eval_batch_size", lambda v: v >= 1, "an integer >= 1"),
    ("data.num_workers", lambda v: v >= 0, "an integer >= 0"),
    ("data.frame_cache_fps", lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    ("tune.trials", lambda v: v >= 1, "an integer >= 1"),
)


def check_values(config: DictConfig) -> None:
    for key, holds, expected in VALUE_RULES:
        value = OmegaConf.select(config, key)
        if not holds(value):
            raise ConfigError(f"{key}={value!r}: expected {expected}")
    fraction = OmegaConf.select(config, f"{config.dataset}.val_fraction")  # checked also where a val file is set
    if fraction is not None and not 0 < fraction < 1:
        raise ConfigError(f"{config.dataset}.val_fraction={fraction!r}: expected a fraction between 0 and 1 "
                          f"(exclusive)")


def config_file(*parts: str) -> Path | None:
    path = Path(str(resources.files("vtrbench").joinpath("configs", *parts)))
    return path if path.is_file() else None


def _load_yaml(path: Path | None) -> DictConfig:
    return OmegaConf.create(_yaml_data(path))


def _yaml_data(path: Path | None) -> dict:
    """A config file's mapping as plain data (a fresh copy): parsed once per version of the file, since a
    leaderboard resolves one config per run from the same few files."""
    if path is None:
        return {}
    stat = path.stat()
    return copy.deepcopy(_parsed_yaml(str(path), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=256)
def _parsed_yaml(path: str, mtime_ns: int, size: int) -> dict:
    try:
        loaded = OmegaConf.load(path)  # omegaconf's YAML loader: its floats (1e-3) and interpolations
    except Exception as err:  # yaml's own errors carry the line number
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    return OmegaConf.to_container(loaded)  # interpolations stay as written, resolved in the merged config


def first_line(err: BaseException) -> str:
    """omegaconf's messages go on with full_key/object_type lines; a user error is one line."""
    return (str(getattr(err, "msg", None) or err).strip().splitlines() or [type(err).__name__])[0]


def parse_overrides(overrides: list[str]) -> DictConfig:
    for index, item in enumerate(overrides):
        if "=" not in item or item.startswith("="):
            before = overrides[index - 1] if index else ""
            if before.endswith(",") or ("[" in before and "]" not in before):  # `methods=[dgl, lora]` in a shell
                raise ConfigError(f"command-line overrides {before!r} {item!r}: a list split at a space by the "
                                  f"shell; write it without spaces ({before}{item}) or quote it")
            raise ConfigError(f"command-line override {item!r}: expected key=value")
        key, value = item.split("=", 1)
        if key.rsplit(".", 1)[-1] == "root" and not value.strip():
            # `msrvtt.root=$UNSET` must not quietly become the offline data, which only null asks for
            raise ConfigError(f"command-line override {item!r}: an empty root (an unset shell variable?); give the "
                              f"dataset's folder, or {key}=null for the offline data")
        if key.rsplit(".", 1)[-1] == "root" and value.strip() != "null":
            try:
                read = yaml.safe_load(value)
            except yaml.YAMLError:
                read = value
            if not isinstance(read, str):  # `~` is YAML's null, `yes` a bool, `/a: b` a mapping
                raise ConfigError(f"command-line override {item!r}: YAML reads {value!r} as {read!r}, not a folder; "
                                  f"quote it ({key}=\"'{value}'\") to mean a folder of that name, or give "
                                  f"{key}=null for the offline data")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as err:
        raise ConfigError(f"command line: {first_line(err)}") from err
    except yaml.YAMLError:
        for item in overrides:  # name the override that is not YAML
            try:
                OmegaConf.from_dotlist([item])
            except yaml.YAMLError as err:
                problem = getattr(err, "problem", None) or first_line(err)
                raise ConfigError(f"command-line override {item!r}: not valid YAML ({problem}; a list is written "
                                  f"[a,b], a mapping {{key: value}} with a space after each colon, quoted)") from err
        raise


def run_schema(method: str, dataset: str) -> DictConfig:
    """The structured defaults of a run of (method, dataset), typed: a fresh copy, built once per pair of
    registered classes (a leaderboard asks for it twice per run)."""
    check_run_names(method, dataset)
    method_cls, dataset_cls = METHODS.get(method), DATASETS.get(dataset)
    for kind, name, cls in (("method", method, method_cls), ("dataset", dataset, dataset_cls)):
        options = getattr(cls, "Config", None)
        if not (isinstance(options, type) and dataclasses.is_dataclass(options)):
            raise ConfigError(f"{kind} {name!r} ({cls.__module__}.{cls.__qualname__}): its `Config` must be a "
                              f"@dataclass of its options (an empty one when it has none), got {options!r}")
    return copy.deepcopy(_run_schema(method, dataset, method_cls, dataset_cls))


def computing_defaults(method: str, dataset: str) -> dict[str, Any]:
    """The structured defaults of a run of (method, dataset) that change what it computes, by dotted key: what a
    setting absent from an older result file stood for (as `config_differences` reads it). {} for names this
    installation does not register."""
    try:
        schema = run_schema(method, dataset)
    except (ConfigError, UnknownNameError):
        return {}
    return {k: v for k, v in flatten_config(OmegaConf.to_container(schema)).items() if computes(k) and k != "seed"}


def check_run_names(method: str, dataset: str) -> None:
    """Registered names (the registry's error names the known ones) that are not a harness section's."""
    METHODS.get(method), DATASETS.get(dataset)
    if method in HARNESS_KEYS or dataset in HARNESS_KEYS:
        raise ConfigError(f"the names {method!r}/{dataset!r} collide with a harness section")


@functools.cache
def _run_schema(method: str, dataset: str, method_cls: type, dataset_cls: type) -> DictConfig:
    schema_cls = dataclasses.make_dataclass(
        "RunConfig",
        [
            (method, method_cls.Config, field(default_factory=method_cls.Config)),
            (dataset, dataset_cls.Config, field(default_factory=dataset_cls.Config)),
        ],
        bases=(HarnessConfig,),
    )
    schema = OmegaConf.structured(schema_cls)
    schema.method = method
    schema.dataset = dataset
    return schema


def preset_name(cli: DictConfig) -> str:
    """The preset of a command: `preset=` on its command line (empty or null: none), else base.yaml's."""
    if "preset" in cli:
        return str(cli.preset or "")
    return str(_yaml_data(config_file("base.yaml")).get("preset", "") or "")


def resolve_config(overrides: list[str] | DictConfig) -> DictConfig:
    """The merged, checked configuration of one run."""
    # a copy: the merges below share the layers' nodes, and the caller's overrides stay its own
    cli = copy.deepcopy(overrides) if isinstance(overrides, DictConfig) else parse_overrides(overrides)
    if "preset" in cli:
        if cli.preset is None:  # `preset=` or `preset=null`: no preset at all
            cli.preset = ""
        elif is_preset_file(str(cli.preset)):  # a file of your own, recorded by its absolute path
            cli.preset = str(preset_file(str(cli.preset)))
    base = _yaml_data(config_file("base.yaml"))
    method = str(cli.get("method", base.get("method", HarnessConfig.method)))
    dataset = str(cli.get("dataset", base.get("dataset", HarnessConfig.dataset)))
    preset = preset_name(cli)
    config, method_yaml = _file_layers(method, dataset, preset)
    _merge_layer(config, own_sections(cli, method, dataset), "command line")
    if not config.variant:
        config.variant = derived_variant(config, method, method_yaml)
    if config.train.select not in SELECTION_RULES:
        raise ConfigError(f"train.select={config.train.select!r}: expected one of {', '.join(SELECTION_RULES)}")
    if config.tune.metric not in METRIC_NAMES:
        raise ConfigError(f"tune.metric={config.tune.metric!r}: expected one of {', '.join(METRIC_NAMES)}")
    check_path_names(config)
    check_values(config)
    for section in (method, dataset):  # the options' own checks (__post_init__) now, not when the run builds
        try:
            OmegaConf.to_object(config[section])
        except (ValueError, TypeError) as err:
            raise ConfigError(first_line(err)) from err
    root = OmegaConf.select(config, f"{dataset}.root")
    if isinstance(root, str) and not root.strip():
        raise ConfigError(f"{dataset}.root={root!r}: an empty root; give the dataset's folder, or null for the "
                          f"offline data")
    return config


def _merge_layer(config: DictConfig, layer: DictConfig, source: str) -> None:
    """Merge `layer` into `config` in place (both fresh copies: the merge may share the layer's nodes); an
    error names the layer's source and the key."""
    try:
        OmegaConf.unsafe_merge(config, layer)
    except OmegaConfBaseException as err:
        group = _value_over_group(config, layer)
        if group is not None:  # `output=runs2`: OmegaConf names no key for this one
            keys = ", ".join(f"{group}.{key}" for key in OmegaConf.select(config, group).keys())
            raise ConfigError(f"{source}: {group} is a group of settings, not a value; set one of {keys}") from err
        key = getattr(err, "full_key", None) or "?"
        raise ConfigError(f"{source}: key {key!r}: {first_line(err)}") from err


def _value_over_group(config: DictConfig, layer: DictConfig, prefix: str = "") -> str | None:
    """The first dotted key that `layer` sets to a plain value where `config` holds a group of settings."""
    for key in layer.keys():
        if key not in config or not OmegaConf.is_dict(config._get_node(key)):
            continue
        theirs = layer._get_node(key)
        if not OmegaConf.is_dict(theirs):
            return f"{prefix}{key}"
        found = _value_over_group(config._get_node(key), theirs, f"{prefix}{key}.")
        if found is not None:
            return found
    return None


def _file_layers(method: str, dataset: str, preset: str) -> tuple[DictConfig, DictConfig]:
    """The run's structured defaults merged with base.yaml, its dataset's and its method's yaml and its preset's
    layer, in that order, and the method's yaml: fresh copies of what `_merged_file_layers` built once for
    these registered classes and these versions of the files (a leaderboard resolves one config per run)."""
    files = (config_file("base.yaml"), config_file("datasets", f"{dataset}.yaml"),
             config_file("methods", f"{method}.yaml"))
    preset_path = preset_file(preset) if preset else None
    stamps = tuple(None if path is None else (stat.st_mtime_ns, stat.st_size)
                   for path in (*files, preset_path) for stat in [path.stat() if path else None])
    check_run_names(method, dataset)  # before anything is cached
    merged, method_yaml = _merged_file_layers(method, dataset, preset, METHODS.get(method), DATASETS.get(dataset),
                                              files, stamps)
    return copy.deepcopy(merged), copy.deepcopy(method_yaml)


@functools.lru_cache(maxsize=256)
def _merged_file_layers(method: str, dataset: str, preset: str, method_cls: type, dataset_cls: type,
                        files: tuple[Path | None, ...], stamps: tuple) -> tuple[DictConfig, DictConfig]:
    base_path, dataset_path, method_path = files
    method_yaml = _load_yaml(method_path)
    check_method_tune_section(method_yaml, method_path)
    config = run_schema(method, dataset)
    _merge_layer(config, _load_yaml(base_path), str(base_path))
    _merge_layer(config, _load_yaml(dataset_path), str(dataset_path))
    _merge_layer(config, copy.deepcopy(method_yaml), str(method_path))
    if preset:
        _merge_layer(config, preset_layer(preset, method, dataset), f"preset {preset!r}")
    return config, method_yaml


def check_method_tune_section(method_yaml: DictConfig, path: Path | None) -> None:
    """A method's yaml may declare its search space, never the budget (equal for all, set in base.yaml)."""
    tune = method_yaml.get("tune") or {}
    for key in HARNESS_ONLY_TUNE_KEYS:
        if key in tune:
            raise ConfigError(f"{path}: tune.{key}: the tuning budget is the same for every method; a method's "
                              f"yaml declares only tune.space (set tune.{key} in base.yaml or on the command line)")


def load_preset(name: str) -> DictConfig:
    """A preset: `methods`, `datasets`, `seeds` (a leaderboard's matrix when the command line names none),
    `defaults` for every run, and `rules` matched by method/dataset."""
    return OmegaConf.create(_preset_data(name))


PRESET_SUFFIXES = (".yaml", ".yml")


def is_preset_file(name: str) -> bool:
    """`preset=` names a YAML file of the user's own (its path) rather than a shipped preset."""
    return name.endswith(PRESET_SUFFIXES)


def preset_file(name: str) -> Path | None:
    """The file of preset `name`: a shipped one (`configs/presets/<name>.yaml`; None if there is none), or a
    YAML file of your own given by its path (`preset=my_rates.yaml`), which must exist."""
    if not is_preset_file(name):
        if not PLAIN_NAME.fullmatch(name):  # `preset=../methods/dgl` would read another folder's file
            raise ConfigError(f"preset={name!r}: a shipped preset's name is a plain name ({PLAIN_NAME_CHARS}); "
                              f"a file of your own is given by its path, ending in .yaml")
        return config_file("presets", f"{name}.yaml")
    path = Path(name).expanduser()
    if not path.is_file():
        raise ConfigError(f"preset={name}: no such file (a preset is a shipped name or the path of a YAML file)")
    return path.resolve()


def _preset_data(name: str, extended_by: tuple[Path, ...] = ()) -> dict:
    """A preset's data, checked; with `extends: <preset>`, on top of that preset's: its `defaults` merged over
    the other's, its `rules` after the other's (a later rule wins), its matrix keys in place of the other's."""
    path = preset_file(name)
    if path is None:
        folder = Path(str(resources.files("vtrbench").joinpath("configs", "presets")))
        known = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ConfigError(f"unknown preset {name!r}; known: {', '.join(known) or 'none'}, or the path of a "
                          f"YAML file of your own")
    preset = _yaml_data(path)
    unknown = sorted(set(preset) - set(PRESET_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(map(repr, unknown))}; a preset has "
                          f"{', '.join(PRESET_KEYS)}")
    for key, names in (("methods", METHODS.names()), ("datasets", DATASETS.names()), ("seeds", None)):
        if key in preset:
            _check_matrix_list(path, key, preset[key], names)
    if not isinstance(preset.get("defaults") or {}, dict):
        raise ConfigError(f"{path}: defaults: expected a mapping of settings (e.g. defaults: {{train: "
                          f"{{epochs: 2}}}}), got {preset['defaults']!r}")
    rules = preset.get("rules") or []
    if not isinstance(rules, list):
        raise ConfigError(f"{path}: rules: expected a list of rules (each `- method: ..`), got a "
                          f"{type(rules).__name__}")
    known = {"method": METHODS.names(), "dataset": DATASETS.names()}
    for i, rule in enumerate(rules):
        _check_rule(path, i, rule, known)
    if "extends" not in preset:
        return preset
    return _extended(path, preset, extended_by)


def _extended(path: Path, preset: dict, extended_by: tuple[Path, ...]) -> dict:
    base = preset["extends"]
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: extends: expected the name of a shipped preset (offline, paper) or the path of "
                          f"a YAML file, got {base!r}")
    if is_preset_file(base) and not Path(base).expanduser().is_absolute():
        base = str(path.parent / base)  # a file named beside this one
    if path in extended_by or len(extended_by) >= 8:
        chain = " -> ".join(str(p) for p in (*extended_by, path))
        raise ConfigError(f"{path}: extends: the presets extend each other in a loop ({chain})")
    try:
        parent = _preset_data(base, (*extended_by, path))
    except ConfigError as err:
        raise ConfigError(f"{path}: extends: {err}") from err
    merged = {**parent, **{k: v for k, v in preset.items() if k not in ("extends", "defaults", "rules")}}
    merged["defaults"] = OmegaConf.to_container(OmegaConf.merge(parent.get("defaults") or {},
                                                                preset.get("defaults") or {}))
    merged["rules"] = [*(parent.get("rules") or []), *(preset.get("rules") or [])]
    return merged


PRESET_KEYS = ("methods", "datasets", "seeds", "defaults", "rules", "extends")
RULE_KEYS = ("method", "dataset", "source", "set")


def _check_matrix_list(path: Path, key: str, value, names: list[str] | None) -> None:
    """A preset's `methods`/`datasets` (registered names) or `seeds` (VALUE_RULES' seed rule): a non-empty list."""
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{path}: {key}: expected a non-empty list (e.g. {key}: [{names[0] if names else 0}]), "
                          f"got {value!r}")
    seed_holds, seed_expected = next((holds, expected) for k, holds, expected in VALUE_RULES if k == "seed")
    for item in value:
        if names is None and (type(item) is not int or not seed_holds(item)):
            raise ConfigError(f"{path}: seeds: {item!r} is not {seed_expected}")
        if names is not None and item not in names:
            raise ConfigError(f"{path}: {key}: unknown name {item!r}; known: {', '.join(names)}")
    repeated = sorted({str(item) for item in value if value.count(item) > 1})
    if repeated:
        raise ConfigError(f"{path}: {key}: {', '.join(repeated)} repeated (each run would be planned twice)")


def _check_rule(path: Path, i: int, rule, known: dict[str, list[str]]) -> None:
    """A misspelt key, method or dataset would make a rule match nothing and drop its setting unseen."""
    where = f"{path}: rules[{i}]"
    if not isinstance(rule, dict):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(RULE_KEYS)}, got {rule!r}")
    unknown = sorted(set(rule) - set(RULE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a rule has "
                          f"{', '.join(RULE_KEYS)}")
    if not rule.get("source"):
        raise ConfigError(f"{where} has no source: every preset setting names where it comes from")
    for key, names in known.items():
        if key in rule and rule[key] not in names:
            raise ConfigError(f"{where}: unknown {key} {rule[key]!r}; known: {', '.join(names)}")
    if not isinstance(rule.get("set") or {}, dict):
        raise ConfigError(f"{where}: set: expected a mapping of settings, got {rule['set']!r}")
    for key, names in known.items():  # a section no run the rule matches reads: dropped unseen, so refused
        others = sorted(set(rule.get("set") or {}) & (set(names) - {rule[key]})) if key in rule else []
        if others:
            raise ConfigError(f"{where}: set: {', '.join(others)}: the options of another {key} than the rule's "
                              f"{key}: {rule[key]}; no run this rule matches reads them")


def preset_layer(name: str, method: str, dataset: str) -> DictConfig:
    """The preset's settings for one (method, dataset): its defaults, then every matching rule in order."""
    preset = _preset_data(name)
    layer = OmegaConf.create(preset.get("defaults") or {})
    for rule in preset.get("rules") or []:  # plain data: only the matching rules become configs
        if rule.get("method", method) == method and rule.get("dataset", dataset) == dataset:
            layer = OmegaConf.merge(layer, rule.get("set") or {})
    return _only_sections_of(layer, method, dataset)


def untuned_rate(config: DictConfig, overrides: list[str]) -> bool:
    """Whether a run trains at a learning rate that nobody chose for it: its method searches something (its
    tune.space is not empty, as it is for a method that trains nothing), yet neither the command line, its
    own yaml nor its preset (a rule or the defaults) sets `train.lr`, so it takes base.yaml's. Every shipped
    method has a rule in each shipped preset; a new method has none until a search chooses one."""
    if not config.tune.space:  # a method that trains nothing (zero-shot) searches nothing
        return False
    if OmegaConf.select(parse_overrides(overrides), "train.lr") is not None:
        return False
    for folder, name in (("datasets", config.dataset), ("methods", config.method)):
        train = _yaml_data(config_file(folder, f"{name}.yaml")).get("train")
        if isinstance(train, dict) and "lr" in train:  # a rate the dataset's or the method's own file sets
            return False
    layer = preset_layer(config.preset, config.method, config.dataset) if config.preset else OmegaConf.create()
    return OmegaConf.select(layer, "train.lr") is None


def untuned_rate_note(rates: dict[tuple[str, str], float]) -> str:
    """One note for the (method, dataset) pairs that `untuned_rate` finds, each with the rate it runs at."""
    names = ", ".join(f"{method} on {dataset} (train.lr={lr:g})" for (method, dataset), lr in rates.items())
    method, dataset = next(iter(rates))
    return (f"note: no learning rate was chosen on val for {names}: base.yaml's rate, where every shipped method "
            f"runs at a rate its preset chose on val. `vtrbench tune method={method} dataset={dataset}` chooses "
            f"one and prints its rule; put the rule in a preset of your own that starts with `extends: offline` "
            f"and run with preset=<that file> (or run `leaderboard tune=true`)")


def offline_rates_elsewhere(config: DictConfig) -> str | None:
    """A note when the offline preset's rates reach a run off the offline world: they were chosen on val for
    the offline backbone on the generated data, not for real data or another backbone (None: nothing to say)."""
    if config.preset != "offline" or not config.tune.space:  # a method that trains nothing has no rate
        return None
    root = config[config.dataset].get("root")
    other_backbone = (config.backbone.name, config.backbone.pretrained) != ("vtrbench-tiny", "offline")
    if root is None and not other_backbone:
        return None
    what = ", ".join(([f"data at {root}"] if root is not None else [])
                     + ([f"the backbone {config.backbone.name} ({config.backbone.pretrained})"]
                        if other_backbone else []))
    return (f"note: preset=offline (the default) sets rates, epochs and frames chosen for vtrbench-tiny on the "
            f"generated data; this run has {what}. preset=paper runs the published recipes; `vtrbench tune` "
            f"chooses rates for your own preset")


def other_sections(method: str, dataset: str) -> set[str]:
    """The registered methods and datasets other than this run's: names of sections that are not its own."""
    return (set(METHODS.names()) | set(DATASETS.names())) - {method, dataset} - HARNESS_KEYS


def own_sections(cli: DictConfig, method: str, dataset: str) -> DictConfig:
    """A run's command line: an option of another method or dataset would be dropped unseen (`vop.variant=P`
    on a dgl run), so it is an error naming the key. A matrix (leaderboard, tune) leaves out of each run's
    command line the sections of the matrix's other methods and datasets (`overrides_for_run`)."""
    for key in cli:
        if key in other_sections(method, dataset):
            inner = next(iter(cli[key]), "") if isinstance(cli[key], DictConfig) else ""
            raise ConfigError(f"{key}{'.' + str(inner) if inner else ''}: an option of {key}, which is not in this "
                              f"run (method={method}, dataset={dataset})")
    return cli


def overrides_for_run(overrides: list[str], method: str, dataset: str, matrix: list[str]) -> list[str]:
    """The overrides of a matrix command that belong to the run of (method, dataset): the sections of the
    matrix's other methods and datasets are left out (each is checked by the runs it belongs to); a section of
    a method or dataset outside the matrix is an error naming the key."""
    kept = []
    for item in overrides:
        key = item.split("=", 1)[0]
        top = key.split(".", 1)[0]
        if top in other_sections(method, dataset):
            if top not in matrix:
                raise ConfigError(f"{key}: an option of {top}, which is not among this command's methods and "
                                  f"datasets ({', '.join(matrix)})")
            continue
        kept.append(item)
    return kept


def _only_sections_of(cli: DictConfig, method: str, dataset: str) -> DictConfig:
    """Drop other methods' and datasets' sections, so one command line can serve a whole leaderboard."""
    others = (set(METHODS.names()) | set(DATASETS.names())) - {method, dataset} - HARNESS_KEYS
    return OmegaConf.create({k: v for k, v in cli.items() if k not in others})


def derived_variant(config: DictConfig, method: str, method_yaml: DictConfig) -> str:
    """The method options set beyond its own defaults (dataclass < method yaml), e.g. `latent-transformer`."""
    defaults = OmegaConf.to_container(
        OmegaConf.merge(OmegaConf.structured(METHODS.get(method).Config), method_yaml.get(method, {}))
    )
    chosen = OmegaConf.to_container(config[method])
    changed = [f"{k}-{_short(v)}" for k, v in chosen.items() if defaults.get(k) != v]
    return re.sub(r"[^A-Za-z0-9_.+=,@-]", "-", "_".join(changed))  # a plain name, whatever the values


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(_short(v) for v in value)
    return str(value).replace("/", "-")


def method_options(config: DictConfig) -> Any:
    """The method's own config dataclass instance."""
    return OmegaConf.to_object(config[config.method])


def dataset_options(config: DictConfig) -> Any:
    return OmegaConf.to_object(config[config.dataset])


def run_dir(config: DictConfig) -> Path:
    """`<runs_dir>/<dataset>/<backbone>/<method>[.<variant>]/seed<n>/`; a tuning trial's run goes to
    `.../<method>[.<variant>]/tuning/seed<n>/<trial>/`, beside the runs it tunes and never mistaken for one.
    Every part is a plain name (`check_path_names`), so no setting writes outside runs_dir."""
    check_path_names(config)
    name = method_label(config.method, config.variant)
    method_dir = Path(config.output.runs_dir) / config.dataset / backbone_folder(config.backbone.name) / name
    if config.tune.trial:
        return method_dir / "tuning" / f"seed{config.seed}" / config.tune.trial
    return method_dir / f"seed{config.seed}"


def config_differences(saved: dict, requested: DictConfig) -> list[str]:
    """`key: saved -> requested` for every setting (output-only keys aside) in which a saved run's resolved
    config differs from the requested one; empty when the saved run stands for the requested one.

    A setting absent from the saved config (added to the suite after that run) stands for its structured
    default: a new setting's default computes what the code did before it existed, so a run saved before
    `train.adam_eps` existed is the run requested with `train.adam_eps` at its default, and no other."""
    requested_flat = flatten_config(OmegaConf.to_container(requested, resolve=True))
    saved_flat = flatten_config(saved)
    defaults = computing_defaults(str(requested.method), str(requested.dataset))
    for key, value in defaults.items():
        if key not in saved_flat and key in requested_flat:
            saved_flat[key] = value

    keys = sorted(k for k in set(saved_flat) | set(requested_flat) if computes(k))
    missing = "(absent)"
    return [
        f"{key}: {saved_flat.get(key, missing)!r} -> {requested_flat.get(key, missing)!r}"
        for key in keys
        if saved_flat.get(key, missing) != requested_flat.get(key, missing)
    ]
