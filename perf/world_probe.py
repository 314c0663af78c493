"""Zero-shot retrieval on the offline world's non-test splits: the measurement the world is designed by.

The offline world (docs/offline-world.md) must put zero-shot in the regime of the real benchmarks: far above
chance, at least 10% T2V R@1 on every dataset's 1,000-query test split. A design step must be judged without
the test split, so this script scores the zero-shot backbone on `train` (or `val`) instead and reports T2V R@1
on random subsets of the test split's size (1,000 clips; all clips where the split holds fewer): the pool
size sets R@1, so that is the number to hold against the target. It never loads a test split.

`--pretrain-steps` tries another pretraining length of the offline backbone (cached under its own recipe
hash, so it pretrains once, minutes on 2 cores); the default is the package's. The ratio to full fine-tuning
needs a model trained on clips other than those scored, at the test pool size: `perf/world_draw.py` reads it
on a second draw of the world (val is too small a pool to predict it).

    python perf/world_probe.py                          # all four datasets, train split
    python perf/world_probe.py --datasets activitynet --pretrain-steps 600
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from vtrbench.benchmark.matrix import DEFAULT_DATASETS


def subset_recall(similarity: np.ndarray, caption_video: np.ndarray, clips: int, draws: int, seed: int) -> float:
    """Mean T2V R@1 (%) over `draws` random subsets of `clips` clips with all their captions."""
    from vtrbench.benchmark.metrics import metrics_and_ties

    total = similarity.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(draws if clips < total else 1):
        keep = np.sort(rng.choice(total, size=min(clips, total), replace=False))
        rows = np.isin(caption_video, keep)
        position = np.full(total, -1)
        position[keep] = np.arange(len(keep))
        metrics, _, _ = metrics_and_ties(similarity[rows][:, keep], position[caption_video[rows]])
        values.append(metrics["t2v"]["R1"])
    return float(np.mean(values))


def probe(dataset: str, split_name: str, clips: int, draws: int) -> dict:
    from vtrbench.benchmark.config import resolve_config
    from vtrbench.benchmark.data import tokenize
    from vtrbench.benchmark.runner import Run, score_matrix

    run = Run(resolve_config(["method=zero_shot", f"dataset={dataset}", "quiet=true"]))
    split = run.split(split_name)
    with torch.no_grad():
        video, mask = run.encode_clips(split)
        tokens = tokenize(run.tokenizer, split.captions)
        text = torch.cat([run.method.encode_text(chunk).float() for chunk in tokens.split(256)])
        similarity = score_matrix(run.method, text, video, mask, run.device).numpy()
    return {"dataset": dataset, "split": split_name, "clips": len(split.clips), "captions": len(split.captions),
            "r1_subsets": subset_recall(similarity, split.caption_video, clips, draws, seed=0)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=DEFAULT_DATASETS, choices=DEFAULT_DATASETS)
    parser.add_argument("--split", default="train", choices=("train", "val"), help="never test")
    parser.add_argument("--clips", type=int, default=1000, help="subset size: the test split's (default 1000)")
    parser.add_argument("--draws", type=int, default=20, help="random subsets averaged")
    parser.add_argument("--pretrain-steps", type=int, default=None,
                        help="pretraining length of the offline backbone to probe (default: the package's)")
    args = parser.parse_args()

    from vtrbench.offline import tiny_clip

    if args.pretrain_steps is not None:
        tiny_clip.PRETRAIN_STEPS = args.pretrain_steps
    print(f"vtrbench-tiny, {tiny_clip.PRETRAIN_STEPS} pretraining steps; zero-shot T2V R@1 on {args.split}, "
          f"mean over random subsets of {args.clips} clips")
    for dataset in args.datasets:
        row = probe(dataset, args.split, args.clips, args.draws)
        print(f"{row['dataset']:12s} {row['split']}: {row['clips']} clips, {row['captions']} captions; "
              f"R@1 {row['r1_subsets']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
