"""Bootstrap confidence over seeds and queries for recall, per method and paired between two methods.

Two sources of variance decide whether a number would come out again: which queries the test set holds,
and the training run itself (seed, machine, library versions). The bootstrap resamples both, as the
literature on benchmark variance does (a two-level, "hierarchical" bootstrap): a resample draws S seeds
with replacement from the S runs, and ``n`` query indices with replacement (one index set shared by the
drawn seeds, since every seed evaluates the same queries in the same order), and recomputes the seed-mean
R@K on them. With one seed this is the plain bootstrap over queries. Numpy count matrices per chunk, never a
Python loop over queries or resamples; the generator is seeded, so a report is reproducible to the digit.

Several captions of one clip (VATEX's ten) are not independent queries: they share their clip, how hard it is
and how a model sees it. So where a test set has them, the queries are drawn by clip (`groups`: the clip of
each query): a resample draws clips with replacement and takes every caption of each, and a recall is the
mean over the captions drawn (a cluster bootstrap). On VATEX's 1,000 test clips of ten captions this is what
the interval's width rests on: 1,000 clips, not 10,000 independent queries. With one query per clip it is the
plain draw above, to the bit.

Few seeds. Drawing S seeds with replacement from S runs shrinks their spread by (S - 1) / S (a third at the
default three), so before the seeds are drawn each resample's per-seed means are moved away from their mean
by sqrt(S / (S - 1)), the small-sample correction of a bootstrap variance. `perf/bootstrap_calibration.py`
simulates a method no better than a deterministic zero-shot (1,000 queries, three seeds whose R@1 differ by
a standard deviation of 3 points): without the correction the paired test called 8.2% of them significant at
the 5% level and the 95% interval held the true R@1 87.7% of the time; with it, 5.8% and 91.4%. With seeds
that differ by 1.5 points or less both rules keep the test at or under 5% (docs/protocol.md, "Few seeds").

The paired test's p-value is two-sided, (1 + resamples that do not keep the observed sign) / (B + 1), doubled:
never 0, and a resample that lands on zero counts against significance. A p-value near the 5% level
(0.03 to 0.07) is computed again with ten times the resamples, so that the verdict does not hang on the
bootstrap's own noise (about 0.009 on p near 0.05 at B = 1,000).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_RNG_SEED = 0
CONFIDENCE = 0.95
SIGNIFICANCE_LEVEL = 0.05
BORDERLINE = 0.02  # a p-value within this of the level is computed again with REFINE times the resamples
REFINE = 10
# Bound the size of one index matrix (elements) so that 15k-query VATEX with 10k resamples stays small.
_MAX_CHUNK_ELEMENTS = 4_000_000


def query_groups(groups: Sequence[int] | np.ndarray | None, query_count: int) -> np.ndarray | None:
    """The clip of each of `query_count` queries as indices 0..G-1, checked; None when every query is a clip of
    its own (or nothing is known of their clips), where the plain draw over queries applies."""
    if groups is None:
        return None
    groups = np.asarray(groups)
    if groups.shape != (query_count,) or groups.dtype.kind not in "iu" or (groups.size and groups.min() < 0):
        raise ValueError(f"query groups must be one clip index >= 0 per query ({query_count}), got shape "
                         f"{groups.shape} of {groups.dtype}")
    _, dense = np.unique(groups, return_inverse=True)
    return None if dense.max(initial=-1) + 1 == query_count else dense.astype(np.int64)


def _resampled_means(values: np.ndarray, resamples: int, rng_seed: int, seed_correction: bool = True,
                     groups: np.ndarray | None = None) -> np.ndarray:
    """Seed-mean of the query-mean of ``values`` [S seeds, n queries, m] over ``resamples`` two-level bootstrap
    draws (seeds, then queries, or clips where `groups` (from `query_groups`) gives each query's clip; see the
    module docstring): an array [resamples, m]. `seed_correction=False` leaves out the few-seeds correction
    (perf/bootstrap_calibration.py compares the two)."""
    rng = np.random.default_rng(rng_seed)
    seed_count, query_count = values.shape[0], values.shape[1]
    unit_count = query_count if groups is None else int(groups.max()) + 1
    chunk = max(1, _MAX_CHUNK_ELEMENTS // (query_count * seed_count))
    means = []
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        indices = rng.integers(0, unit_count, size=(size, unit_count))
        # How often each query (or clip) is drawn in each resample, then counts @ values: the same sums as
        # gathering the drawn values (exact, since recall hits and their differences are whole numbers), without
        # the gather.
        rows = np.arange(size)[:, None] * unit_count
        counts = np.bincount((indices + rows).ravel(), minlength=size * unit_count).reshape(size, unit_count)
        if groups is None:
            drawn = query_count
        else:  # every caption of a drawn clip, as often as its clip was drawn
            counts = counts[:, groups]
            drawn = counts.sum(axis=1, keepdims=True)
        per_seed = np.stack([counts.astype(np.float64) @ seed_values for seed_values in values]) / drawn
        if seed_count == 1:
            means.append(per_seed[0])
            continue
        if seed_correction:  # the few-seeds correction (module docstring)
            centre = per_seed.mean(axis=0, keepdims=True)
            per_seed = centre + np.sqrt(seed_count / (seed_count - 1)) * (per_seed - centre)
        seeds = rng.integers(0, seed_count, size=(size, seed_count))  # S seeds drawn with replacement
        means.append(per_seed[seeds, np.arange(size)[:, None]].mean(axis=1))
    return np.concatenate(means)


def _percentile_interval(draws: np.ndarray) -> tuple[float, float]:
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_recalls(
    ranks: np.ndarray,
    ks: Sequence[int] = (1, 5, 10),
    resamples: int = DEFAULT_RESAMPLES,
    rng_seed: int = DEFAULT_RNG_SEED,
    groups: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Bootstrap distribution of R@K (percent) over queries, by clip where `groups` gives each query's clip: an
    array [resamples, len(ks)]."""
    ranks = np.asarray(ranks)
    hits = ranks[:, None] <= np.asarray(ks)[None, :]
    return 100.0 * _resampled_means(hits[None].astype(np.float64), resamples, rng_seed,
                                    groups=query_groups(groups, hits.shape[0]))


@dataclass(frozen=True)
class RecallInterval:
    """Point estimate and 95% percentile-bootstrap interval of one R@K, in percent."""

    k: int
    estimate: float
    low: float
    high: float


def recall_intervals(
    ranks_per_seed: Sequence[np.ndarray],
    ks: Sequence[int] = (1, 5, 10),
    resamples: int = DEFAULT_RESAMPLES,
    rng_seed: int = DEFAULT_RNG_SEED,
    groups: Sequence[int] | np.ndarray | None = None,
) -> list[RecallInterval]:
    """95% CIs of the seed-mean R@K over seeds and queries, the queries drawn by clip where `groups` gives each
    one's clip (see the module docstring); one seed: the interval over queries."""
    if not ranks_per_seed:
        raise ValueError("recall_intervals needs the ranks of at least one run")
    if len({np.asarray(r).shape for r in ranks_per_seed}) > 1:
        raise ValueError("recall_intervals: the seeds of one method must rank the same queries")
    hits = np.stack([np.asarray(r)[:, None] <= np.asarray(ks)[None, :] for r in ranks_per_seed])
    clips = query_groups(groups, hits.shape[1])
    draws = 100.0 * _resampled_means(hits.astype(np.float64), resamples, rng_seed, groups=clips)
    estimates = np.mean([[100.0 * np.mean(np.asarray(r) <= k) for k in ks] for r in ranks_per_seed], axis=0)
    # The few-seeds correction can stretch a resample past what a recall can be: an interval stays in [0, 100].
    return [
        RecallInterval(k, float(estimates[i]), *np.clip(_percentile_interval(draws[:, i]), 0.0, 100.0).tolist())
        for i, k in enumerate(ks)
    ]


@dataclass(frozen=True)
class PairedComparison:
    """R@K(method) - R@K(reference) in percentage points, over the same queries."""

    k: int
    difference: float
    low: float
    high: float
    p_value: float
    resamples: int

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANCE_LEVEL


def paired_bootstrap(
    method_ranks_per_seed: Sequence[np.ndarray],
    reference_ranks_per_seed: Sequence[np.ndarray],
    k: int = 1,
    resamples: int = DEFAULT_RESAMPLES,
    rng_seed: int = DEFAULT_RNG_SEED,
    groups: Sequence[int] | np.ndarray | None = None,
) -> PairedComparison:
    """Paired bootstrap of the R@K difference over seeds and queries; seeds are matched by position (same
    seed in both lists), and a resample draws seed pairs and queries, by clip where `groups` gives each
    query's clip (see the module docstring).

    Each resample draws the same queries for both runs, so per-query agreement cancels out. The two-sided
    p-value is 2 (1 + flips) / (B + 1), capped at 1, where flips counts the resamples whose difference does not
    keep the observed sign (a zero difference counts as a flip, which errs on the side of "not significant");
    a p-value within ``BORDERLINE`` of the level is computed again with ``REFINE`` times the resamples (the
    result's ``resamples`` says how many). Raises ``ValueError`` when a pair does not have the same number of
    queries.
    """
    if len(method_ranks_per_seed) != len(reference_ranks_per_seed) or not method_ranks_per_seed:
        raise ValueError("paired_bootstrap needs one reference run per method run (matched seeds)")
    per_query_differences = []
    for method_ranks, reference_ranks in zip(method_ranks_per_seed, reference_ranks_per_seed, strict=True):
        method_ranks, reference_ranks = np.asarray(method_ranks), np.asarray(reference_ranks)
        if method_ranks.shape != reference_ranks.shape:
            raise ValueError(
                f"cannot pair runs with different query counts ({method_ranks.size} vs "
                f"{reference_ranks.size}): the paired bootstrap needs the same queries in the same order"
            )
        hits_difference = (method_ranks <= k).astype(np.float64) - (reference_ranks <= k)
        per_query_differences.append(100.0 * hits_difference)
    if len({d.shape for d in per_query_differences}) > 1:
        raise ValueError("paired_bootstrap: every seed pair must rank the same queries")
    values = np.stack(per_query_differences)[:, :, None]
    clips = query_groups(groups, values.shape[1])
    difference = float(np.mean([d.mean() for d in per_query_differences]))
    draws = _resampled_means(values, resamples, rng_seed, groups=clips)[:, 0]
    p_value = _two_sided_p(draws, difference)
    if abs(p_value - SIGNIFICANCE_LEVEL) < BORDERLINE:
        resamples *= REFINE
        draws = _resampled_means(values, resamples, rng_seed, groups=clips)[:, 0]
        p_value = _two_sided_p(draws, difference)
    return PairedComparison(k, difference, *_percentile_interval(draws), p_value, resamples)


def _two_sided_p(draws: np.ndarray, difference: float) -> float:
    """2 (1 + resamples not keeping the observed sign) / (B + 1), capped at 1; 1 for no difference."""
    if difference == 0:
        return 1.0
    flips = int(np.sum(draws <= 0) if difference > 0 else np.sum(draws >= 0))
    return float(min(1.0, 2 * (1 + flips) / (draws.size + 1)))
