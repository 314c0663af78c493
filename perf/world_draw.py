"""Judge a design of the offline world at the test pool size without the test split: a second draw of it.

The targets of the default run (docs/offline-world.md) are read at the test splits' size: zero-shot T2V R@1
of at least 10% over 1,000 queries, and a zero-shot to full fine-tuning ratio between 0.5 and 0.85. R@1
depends on the pool size, and the val splits are small (150 to 250 clips), so val alone cannot say where a
design lands; the default data's test split must never say it. This script draws the world again with
another seed (`--draw`, never 0, the default data's): the same generator, the same sizes, other clips and
captions. It writes that draw's four datasets under `OUT/data/`, caches their frames, and runs the
leaderboard on them (by default zero-shot and full fine-tuning, the preset's seeds and rates) with its runs
and report under `OUT/`. The draw's held-out split is a pool of the test split's size that no reported
result comes from, which is what a design may be judged on. The report's "How far to trust the offline
ranking" holds the ratios; this script prints them.

    python perf/world_draw.py --out /tmp/draw1                                  # zero-shot and full FT
    python perf/world_draw.py --out /tmp/draw1 --datasets activitynet --methods zero_shot full_finetune dgl
    python perf/world_draw.py --out /tmp/draw1 -- workers=1                     # leaderboard options after --

The backbone is the package's (pretrained on first use into the cache, as for the leaderboard). To compare two
versions of the world's code (a pretraining length, say), run each on the same `--out` with its own `--runs`
name: the data is generated once and reused, each version's runs and report stay apart.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from vtrbench.benchmark.matrix import DEFAULT_DATASETS


def generate(dataset: str, root: Path, seed: int) -> Path:
    """The dataset of world draw `seed`, written to `root` (kept when it holds this draw already)."""
    from vtrbench.offline import activitynet, lsmdc, msrvtt, vatex

    writers = {"msrvtt": msrvtt.generate_msrvtt, "vatex": vatex.generate_vatex, "lsmdc": lsmdc.generate_lsmdc,
               "activitynet": activitynet.generate_activitynet}
    return writers[dataset](root, seed=seed)


def cache_frames(dataset: str, root: Path) -> None:
    """The frame cache a leaderboard builds for the default data, built here for the draw's."""
    from vtrbench.benchmark.config import dataset_options, resolve_config
    from vtrbench.benchmark.matrix import cache_offline_frames
    from vtrbench.registry import DATASETS as REGISTERED

    config = resolve_config([f"dataset={dataset}", f"{dataset}.root={root}", "quiet=true"])
    cache_offline_frames(config, REGISTERED.get(dataset)(dataset_options(config)), quiet=False)


def cell(value: str, spec: str) -> str:
    """A number of trust.csv as printed, or a dash where the cell is empty."""
    return format(float(value), spec) if value else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder of the draw's data, runs and reports")
    parser.add_argument("--draw", type=int, default=1, help="the world's seed; 0 is the default data's")
    parser.add_argument("--datasets", nargs="+", default=DEFAULT_DATASETS, choices=DEFAULT_DATASETS)
    parser.add_argument("--methods", nargs="+", default=["zero_shot", "full_finetune"])
    parser.add_argument("--runs", default="runs", help="name of the runs and reports folders under --out")
    parser.add_argument("overrides", nargs="*", help="leaderboard options (key=value), after --")
    args = parser.parse_args()
    if args.draw == 0:
        parser.error("--draw 0 is the default data, whose test split no design may be judged on")

    from vtrbench.benchmark.leaderboard import run_leaderboard

    out = args.out.resolve()
    roots = {dataset: generate(dataset, out / "data" / dataset, args.draw) for dataset in args.datasets}
    for dataset, root in roots.items():
        cache_frames(dataset, root)
    runs_dir, reports_dir = out / args.runs, out / f"{args.runs}_reports"
    overrides = [f"methods=[{','.join(args.methods)}]", f"datasets=[{','.join(args.datasets)}]",
                 *(f"{dataset}.root={root}" for dataset, root in roots.items()),
                 f"output.runs_dir={runs_dir}", f"output.reports_dir={reports_dir}", *args.overrides]
    status = run_leaderboard(overrides)
    trust = reports_dir / "trust.csv"
    if trust.exists():
        print(f"\nworld draw {args.draw}, held-out pools (T2V R@1, mean over seeds):")
        with trust.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):  # a method the draw did not run has an empty cell
                print(f"{row['table']:24s} zero-shot {cell(row['zero_shot_r1'], '5.1f')}  "
                      f"full fine-tuning {cell(row['full_finetune_r1'], '5.1f')}  ratio {cell(row['ratio'], '.2f')}  "
                      f"significantly above zero-shot {row['significant_above']} of {row['trained']}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
