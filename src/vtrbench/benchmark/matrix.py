"""What the runs of one command cover and what they share: the methods x datasets x seeds of `vtrbench
leaderboard` and `vtrbench tune`, and the offline assets their runs use, built once before any run starts.

Both commands expand their matrix here, with the same checks: `methods=[..]`, `datasets=[..]` and `seeds=[..]`
must be non-empty lists of names (integers for seeds) without repeats. Without them a command takes
`method=`/`dataset=`/`seed=`, else the preset's lists (`methods`, `datasets`, `seeds`), else every registered
method, `DEFAULT_DATASETS` and seed 0. A search (`vtrbench tune`) takes one seed: `seed=`, else the first of
the preset's seeds, else 0. An option of a method or dataset outside the matrix is an error
(`Matrix.overrides_for`), and the dataset roots given must have splits that share no clip
(`check_disjoint_splits`).
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, ListConfig

from vtrbench.benchmark.config import (
    ConfigError,
    dataset_options,
    load_preset,
    overrides_for_run,
    parse_overrides,
    preset_name,
)
from vtrbench.datasets.base import SPLITS
from vtrbench.datasets.frame_cache import CacheSettings, FrameCache, frame_cache_dir, prepare_frame_cache
from vtrbench.methods.backbone import load_backbone
from vtrbench.progress import phase
from vtrbench.registry import BACKBONES, DATASETS, METHODS

DEFAULT_DATASETS = ["msrvtt", "vatex", "lsmdc", "activitynet"]
MATRIX_KEYS = ("methods", "datasets", "seeds")
RUN_KEYS = ("method", "dataset", "seed")  # one run's own; a matrix sets them for each of its runs
EXAMPLES = {"methods": "methods=[zero_shot,dgl]", "datasets": "datasets=[msrvtt]", "seeds": "seeds=[0,1,2]"}


@dataclass
class Matrix:
    methods: list[str]
    datasets: list[str]
    seeds: list[int]
    passthrough: list[str]  # the command's overrides for every run: what is left once the matrix is taken out

    def overrides_for(self, method: str, dataset: str) -> list[str]:
        """The passthrough overrides that belong to the run of (method, dataset): other methods' and datasets'
        sections are left out; an option of a method or dataset outside the matrix is an error."""
        return overrides_for_run(self.passthrough, method, dataset, [*self.methods, *self.datasets])


def expand(overrides: list[str], keep: tuple[str, ...] = ()) -> Matrix:
    """The matrix of a command's overrides; `keep` names run keys left in `passthrough` as given (a search
    passes its one `seed=` on to its trials)."""
    cli = parse_overrides(overrides)
    name = preset_name(cli)
    preset = load_preset(name) if name else {}
    methods = matrix_list(cli, "methods", str) or single(cli, "method") \
        or list(preset.get("methods") or METHODS.names())
    datasets = matrix_list(cli, "datasets", str) or single(cli, "dataset") \
        or list(preset.get("datasets") or DEFAULT_DATASETS)
    preset_seeds = [int(seed) for seed in preset.get("seeds") or [0]]
    seeds = matrix_list(cli, "seeds", int) or ([cli.seed] if "seed" in cli else None) \
        or (preset_seeds[:1] if "seed" in keep else preset_seeds)
    dropped = set(MATRIX_KEYS + RUN_KEYS) - set(keep)
    return Matrix(methods, datasets, seeds, [o for o in overrides if o.split("=", 1)[0] not in dropped])


def single(cli: DictConfig, key: str) -> list[str] | None:
    return [cli[key]] if cli.get(key) else None


def matrix_list(cli: DictConfig, key: str, kind: type) -> list | None:
    """`methods=[..]`, `datasets=[..]` or `seeds=[..]` from the command line, checked; None when not given."""
    if key not in cli:
        return None
    value = cli[key]
    if not isinstance(value, ListConfig) or not value:
        raise ConfigError(f"{key}={value!r}: expected a non-empty list, e.g. {EXAMPLES[key]}")
    items = list(value)
    for item in items:
        if type(item) is not kind:  # bool is an int to isinstance; `seeds=[true]` is no seed
            raise ConfigError(f"{key}: {item!r} is not {'an integer' if kind is int else 'a name'} ({EXAMPLES[key]})")
    repeated = sorted({str(item) for item in items if items.count(item) > 1})
    if repeated:
        raise ConfigError(f"{key}: {', '.join(repeated)} repeated (each run would be planned twice)")
    return items


def check_disjoint_splits(configs: list[DictConfig]) -> None:
    """Before anything runs: every dataset root given must have splits that share no clip (each run checks
    again; the offline data is disjoint by construction and is not generated here)."""
    checked = set()
    for config in configs:
        options = dataset_options(config)
        key = (config.dataset, repr(options))
        if options.root is not None and key not in checked:
            checked.add(key)
            DATASETS.get(config.dataset)(options).check_disjoint_splits()


def prepare_offline_assets(configs: list[DictConfig], quiet: bool = False) -> None:
    """Build what the runs share once, in this process, before they start: registered backbones that make
    their weights on first use (the offline one), generated datasets and their frame caches."""
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


def frame_cache_settings(config: DictConfig) -> CacheSettings:
    """The frame cache a run of `config` opens (`Run.frame_cache`): the backbone's input size, the config's
    `data.frame_cache_fps` and at least `data.num_frames` frames a clip."""
    image_size = load_backbone(config.backbone.name, "random").image_size  # only its input size is needed
    return CacheSettings(image_size, float(config.data.frame_cache_fps), min_frames=int(config.data.num_frames))


def cache_offline_frames(config: DictConfig, dataset, quiet: bool) -> None:
    """The offline data's frame cache: decoding once here spares every method's every epoch the decoding."""
    settings = frame_cache_settings(config)
    for split in SPLITS:
        clips = dataset.load(split).clips
        directory = frame_cache_dir(config.dataset, dataset.root)
        cache = FrameCache.open(directory, split, settings)
        if cache is not None and cache.is_current(clips):
            continue
        with phase(f"caching the frames of the offline {config.dataset} {split} split ({len(clips):,} clips)",
                   not quiet):
            prepare_frame_cache(clips, directory, split, settings, progress=not quiet)
