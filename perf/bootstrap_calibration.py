"""How often the report's paired test calls a method that is no better than zero-shot "significant", and how
often its 95% interval holds the true R@1: by simulation, with the few-seeds correction and without it.

Each repetition draws a fresh test set and fresh runs:
- query q's difficulty p_q ~ Beta(2, 8) (R@1 about 20%, as the offline tables), 1,000 queries;
- the reference (zero-shot) hits query q with probability p_q, once: the same ranks at every seed;
- the method is no better: each of its three seeds s moves every probability by d_s ~ N(0, sd) (training
  variance, `--seed-sd` in R@1 points) and hits independently per query, or with `--rho` > 0 its seeds agree
  query by query (each seed reuses the method's own draw for a query with probability rho), as runs of one
  method do.
The paired test is `paired_bootstrap` (three seeds, the report's B and rule), once as the report runs it and
once with `seed_correction=False`; coverage is `recall_intervals`' of the method's own mean R@1, against the
expected R@1 of the model. Binomial standard errors beside each rate. One thread, a few minutes.

    python perf/bootstrap_calibration.py
    python perf/bootstrap_calibration.py --reps 400 --seed-sd 0 3 --rho 0

`--widths 3 4 5 6 8` asks instead how wide one such method's 95% R@1 interval is for each number of seeds
(queries of mean difficulty `--r1`), against the README's 3.5-point target.

`--captions-per-clip 10 --clips 200` asks instead what drawing a clip's captions together changes, as on
VATEX: each clip's difficulty is shared by its captions, and a model that finds (or misses) a clip for one of
its captions mostly does for the others (`--within`: the share of a clip's captions that reuse its draw);
the same runs are tested with the report's rule (captions drawn by clip) and with captions drawn one by one,
as if independent (the rule before).
"""

from __future__ import annotations

import argparse
import functools
import os
import time

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread, as a report runs
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402  (after the thread settings)

QUERIES, SEEDS, BETA = 1000, 3, (2.0, 8.0)
TARGET_HALF_WIDTH = 3.5  # points: the default run's target for a 95% R@1 interval (README)


def method_runs(rng: np.random.Generator, p: np.ndarray, seed_sd: float, rho: float,
                seeds: int = SEEDS) -> list[np.ndarray]:
    shifted = np.clip(p[None, :] + rng.normal(0.0, seed_sd, size=(seeds, 1)), 0.0, 1.0)
    # with probability rho a seed reuses the method's own draw for the query, so its seeds agree query by query;
    # each draw is uniform either way
    shared = rng.random(p.size)
    uniform = np.where(rng.random(shifted.shape) < rho, shared[None, :], rng.random(shifted.shape))
    return [np.where(hit, 1, 2) for hit in uniform < shifted]


def expected_r1(rng: np.random.Generator, seed_sd: float) -> float:
    p = rng.beta(*BETA, size=4_000_000)
    return 100.0 * float(np.mean(np.clip(p + rng.normal(0.0, seed_sd, size=p.size), 0.0, 1.0)))


def rate(count: int, total: int) -> str:
    share = count / total
    return f"{share:.3f} ± {np.sqrt(share * (1 - share) / total):.3f}"


def cell(reps: int, resamples: int, seed_sd_points: float, rho: float) -> str:
    from vtrbench.reports import bootstrap

    seed_sd = seed_sd_points / 100.0
    rng = np.random.default_rng(int(1000 * seed_sd_points + 10 * rho) + 1)
    truth = expected_r1(rng, seed_sd)
    original = bootstrap._resampled_means
    uncorrected = functools.partial(original, seed_correction=False)
    counts = {"fpr": 0, "fpr_plain": 0, "cover": 0, "cover_plain": 0}
    for _ in range(reps):
        p = rng.beta(*BETA, size=QUERIES)
        reference = np.where(rng.random(QUERIES) < p, 1, 2)
        method = method_runs(rng, p, seed_sd, rho)
        for suffix, means in (("", original), ("_plain", uncorrected)):
            bootstrap._resampled_means = means
            try:
                test = bootstrap.paired_bootstrap(method, [reference] * SEEDS, 1, resamples)
                [interval] = bootstrap.recall_intervals(method, (1,), resamples)
            finally:
                bootstrap._resampled_means = original
            counts["fpr" + suffix] += test.significant
            counts["cover" + suffix] += interval.low <= truth <= interval.high
    return (f"| {seed_sd_points:g} | {rho:g} | {rate(counts['fpr'], reps)} | {rate(counts['fpr_plain'], reps)} | "
            f"{rate(counts['cover'], reps)} | {rate(counts['cover_plain'], reps)} |")


def widths(reps: int, resamples: int, seeds: int, seed_sd_points: float, rho: float, r1_points: float) -> str:
    """The 95% R@1 half-width a method gets from `seeds` seeds: queries of Beta(2, b) difficulty with mean
    `r1_points`, every seed shifted by N(0, seed sd) as in `method_runs`."""
    from vtrbench.reports import bootstrap

    rng = np.random.default_rng(seeds)
    mean = r1_points / 100.0
    halves = []
    for _ in range(reps):
        p = rng.beta(2.0, 2.0 * (1.0 - mean) / mean, size=QUERIES)
        [interval] = bootstrap.recall_intervals(method_runs(rng, p, seed_sd_points / 100.0, rho, seeds), (1,),
                                                resamples)
        halves.append((interval.high - interval.low) / 2)
    halves = np.asarray(halves)
    return (f"| {seeds} | {np.median(halves):.2f} | {np.quantile(halves, 0.9):.2f} | "
            f"{rate(int(np.sum(halves <= TARGET_HALF_WIDTH)), reps)} |")


def clip_hits(rng: np.random.Generator, p: np.ndarray, groups: np.ndarray, within: float) -> np.ndarray:
    """Ranks (1: hit, 2: miss) of one run whose captions of a clip reuse the clip's draw with probability
    `within`: each draw is uniform either way, so a caption still hits with probability p."""
    shared = rng.random(int(groups.max()) + 1)[groups]
    uniform = np.where(rng.random(p.size) < within, shared, rng.random(p.size))
    return np.where(uniform < p, 1, 2)


def clustered(reps: int, resamples: int, clips: int, per_clip: int, seed_sd_points: float, within: float) -> None:
    """False positives and coverage with the captions of a clip drawn together (the report's rule) and one by
    one, on `clips` clips of `per_clip` captions whose difficulty is the clip's."""
    from vtrbench.reports import bootstrap

    rng = np.random.default_rng(per_clip)
    seed_sd = seed_sd_points / 100.0
    truth = expected_r1(rng, seed_sd)
    groups = np.repeat(np.arange(clips), per_clip)
    counts = {rule: {"fpr": 0, "cover": 0} for rule in ("by clip", "by caption")}
    for _ in range(reps):
        p = rng.beta(*BETA, size=clips)[groups]
        reference = clip_hits(rng, p, groups, within)
        shifted = np.clip(p[None, :] + rng.normal(0.0, seed_sd, size=(SEEDS, 1)), 0.0, 1.0)
        method = [clip_hits(rng, shifted_p, groups, within) for shifted_p in shifted]
        for rule, rule_groups in (("by clip", groups), ("by caption", None)):
            test = bootstrap.paired_bootstrap(method, [reference] * SEEDS, 1, resamples, groups=rule_groups)
            [interval] = bootstrap.recall_intervals(method, (1,), resamples, groups=rule_groups)
            counts[rule]["fpr"] += test.significant
            counts[rule]["cover"] += interval.low <= truth <= interval.high
    print(f"{reps} repetitions, B = {resamples}, {clips} clips of {per_clip} captions, {SEEDS} seeds, seed sd "
          f"{seed_sd_points:g} points, within-clip share {within:g}\n")
    print("| captions drawn | false positives at 5% | coverage of 95% intervals |")
    print("|---|---:|---:|")
    for rule, count in counts.items():
        print(f"| {rule} | {rate(count['fpr'], reps)} | {rate(count['cover'], reps)} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=1000, help="repetitions per cell")
    parser.add_argument("--resamples", type=int, default=1000, help="B, as the report's default")
    parser.add_argument("--seed-sd", type=float, nargs="+", default=[0.0, 1.5, 3.0], help="R@1 points")
    parser.add_argument("--rho", type=float, nargs="+", default=[0.0, 0.9])
    parser.add_argument("--widths", nargs="+", type=int, metavar="SEEDS",
                        help="instead: the half-width of one method's interval at each of these seed counts, "
                             "for the first --seed-sd and --rho and the R@1 of --r1")
    parser.add_argument("--r1", type=float, default=10.0, help="R@1 points, with --widths")
    parser.add_argument("--captions-per-clip", type=int, default=1,
                        help="instead: several captions a clip (with --clips), drawn by clip and one by one")
    parser.add_argument("--clips", type=int, default=200, help="clips, with --captions-per-clip")
    parser.add_argument("--within", type=float, default=0.8,
                        help="with --captions-per-clip: the share of a clip's captions that reuse its draw")
    args = parser.parse_args()
    if args.captions_per_clip > 1:
        clustered(args.reps, args.resamples, args.clips, args.captions_per_clip, args.seed_sd[0], args.within)
        return 0
    if args.widths:
        print(f"{args.reps} repetitions per seed count, B = {args.resamples}, {QUERIES} queries, R@1 {args.r1:g}, "
              f"seed sd {args.seed_sd[0]:g} points, rho {args.rho[0]:g}\n")
        print(f"| seeds | median half-width | 90th percentile | share at or under {TARGET_HALF_WIDTH:g} |")
        print("|---:|---:|---:|---:|")
        for seeds in args.widths:
            print(widths(args.reps, args.resamples, seeds, args.seed_sd[0], args.rho[0], args.r1), flush=True)
        return 0
    print(f"{args.reps} repetitions per cell, B = {args.resamples}, {QUERIES} queries, {SEEDS} seeds; "
          f"rates at the 5% level and coverage of 95% intervals, each ± its binomial standard error\n")
    print("| seed sd (pts) | rho | false positives | without the correction | coverage | without the correction |")
    print("|---:|---:|---:|---:|---:|---:|")
    for rho in args.rho:
        for seed_sd in args.seed_sd:
            started = time.perf_counter()
            line = cell(args.reps, args.resamples, seed_sd, rho)
            print(f"{line}  ({time.perf_counter() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
