"""Bootstrap confidence over queries for recall, per run and paired between two runs.

Resampling unit: the query. A resample draws ``n`` query indices with replacement (numpy, one
``[resamples, n]`` index matrix per chunk, never a Python loop over queries or resamples) and recomputes
R@K on them. The generator is seeded, so a report is reproducible to the digit.

Several seeds of one method evaluate the same queries in the same order, so every seed is resampled with
the *same* index matrix (same RNG seed, same query count) and the per-resample values are averaged over
seeds: the interval is then the query-sampling uncertainty of the seed-mean that the table prints, while
the seed-to-seed spread is reported separately as the ± standard deviation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_RNG_SEED = 0
CONFIDENCE = 0.95
SIGNIFICANCE_LEVEL = 0.05
# Bound the size of one index matrix (elements) so that 15k-query VATEX with 10k resamples stays small.
_MAX_CHUNK_ELEMENTS = 4_000_000


def _resampled_means(values: np.ndarray, resamples: int, rng_seed: int) -> np.ndarray:
    """Mean of ``values`` [n, m] over ``resamples`` bootstrap draws of its rows: [resamples, m]."""
    rng = np.random.default_rng(rng_seed)
    query_count = values.shape[0]
    chunk = max(1, _MAX_CHUNK_ELEMENTS // query_count)
    means = []
    for start in range(0, resamples, chunk):
        indices = rng.integers(0, query_count, size=(min(chunk, resamples - start), query_count))
        means.append(values[indices].mean(axis=1))
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
) -> np.ndarray:
    """Bootstrap distribution of R@K (percent) over queries: an array [resamples, len(ks)]."""
    ranks = np.asarray(ranks)
    hits = ranks[:, None] <= np.asarray(ks)[None, :]
    return 100.0 * _resampled_means(hits.astype(np.float64), resamples, rng_seed)


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
) -> list[RecallInterval]:
    """95% CIs of the seed-mean R@K; one seed is the per-run interval (see the module docstring)."""
    if not ranks_per_seed:
        raise ValueError("recall_intervals needs the ranks of at least one run")
    draws = np.mean([bootstrap_recalls(ranks, ks, resamples, rng_seed) for ranks in ranks_per_seed], axis=0)
    estimates = np.mean([[100.0 * np.mean(np.asarray(r) <= k) for k in ks] for r in ranks_per_seed], axis=0)
    return [
        RecallInterval(k, float(estimates[i]), *_percentile_interval(draws[:, i])) for i, k in enumerate(ks)
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
) -> PairedComparison:
    """Paired bootstrap of the R@K difference; seeds are matched by position (same seed in both lists).

    Each resample draws the same queries for both runs, so per-query agreement cancels out. The two-sided
    p-value is twice the fraction of resamples whose difference does not keep the observed sign (a zero
    difference counts as a flip, which errs on the side of "not significant"), capped at 1.
    Raises ``ValueError`` when a pair does not have the same number of queries.
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
    draws = np.mean(
        [_resampled_means(d[:, None], resamples, rng_seed)[:, 0] for d in per_query_differences], axis=0
    )
    difference = float(np.mean([d.mean() for d in per_query_differences]))
    if difference == 0:
        p_value = 1.0
    else:
        flipped = np.mean(draws <= 0) if difference > 0 else np.mean(draws >= 0)
        p_value = float(min(1.0, 2 * flipped))
    return PairedComparison(k, difference, *_percentile_interval(draws), p_value, resamples)
