import numpy as np
import pytest

from vtrbench.reports import bootstrap_recalls, paired_bootstrap, recall_intervals


def test_interval_contains_the_estimate_and_is_deterministic(make_ranks):
    ranks = np.asarray(make_ranks(300, 120, miss_rank=4))

    first = recall_intervals([ranks], resamples=500, rng_seed=3)
    again = recall_intervals([ranks], resamples=500, rng_seed=3)

    assert first == again
    r1 = first[0]
    assert r1.k == 1 and r1.estimate == pytest.approx(40.0)
    assert r1.low < r1.estimate < r1.high
    # A 95% interval of a proportion over 300 queries is roughly ±5.5 points.
    assert 3 < r1.high - r1.estimate < 8
    assert first[1].estimate == 100.0 and first[1].low == first[1].high == 100.0


def test_resample_matrix_shape_and_chunking_agree(make_ranks):
    ranks = np.asarray(make_ranks(50, 10))
    draws = bootstrap_recalls(ranks, ks=(1, 5), resamples=123)
    assert draws.shape == (123, 2)
    assert np.all((draws >= 0) & (draws <= 100))


def test_clearly_better_method_is_significant(make_ranks):
    better = make_ranks(400, 240)
    reference = make_ranks(400, 80)

    comparison = paired_bootstrap([better], [reference], resamples=1000)

    assert comparison.difference == pytest.approx(40.0)
    assert comparison.low <= comparison.difference <= comparison.high
    # no resample flips the sign: p = 2 (1 + 0) / (B + 1), the smallest p of B resamples, never 0
    assert comparison.low > 0 and comparison.significant and comparison.p_value == pytest.approx(2 / 1001)


def test_identical_methods_are_not_significant(make_ranks):
    ranks = make_ranks(400, 100)

    comparison = paired_bootstrap([ranks], [list(ranks)], resamples=1000)

    assert comparison.difference == 0 and comparison.p_value == 1.0 and not comparison.significant


def test_small_noisy_difference_is_not_significant():
    rng = np.random.default_rng(0)
    reference = rng.integers(1, 4, size=200)
    method = reference.copy()
    method[:3] = np.where(method[:3] == 1, 2, 1)  # three queries change, a one-point difference at most

    assert not paired_bootstrap([method], [reference], resamples=1000).significant


def test_different_query_counts_are_refused(make_ranks):
    with pytest.raises(ValueError, match="different query counts"):
        paired_bootstrap([make_ranks(100, 50)], [make_ranks(99, 50)])


def test_seed_to_seed_variance_widens_the_interval(make_ranks):
    # Two seeds of one method on the same 2,000 queries: R@1 20% and 40%. Over queries alone the seed-mean
    # (30%) would look known to about ±1.4 points; resampling seeds as well shows how far apart runs land.
    seeds = [np.asarray(make_ranks(2000, 400)), np.asarray(make_ranks(2000, 800))]

    [r1] = recall_intervals(seeds, ks=(1,), resamples=1000)
    [single] = recall_intervals(seeds[:1], ks=(1,), resamples=1000)

    assert r1.estimate == pytest.approx(30.0)
    assert r1.low < 24 and r1.high > 36  # draws of (20%, 20%) and (40%, 40%) reach both ends
    assert single.high - single.low < 5  # one seed: the interval over queries


def test_a_gain_in_one_seed_and_a_loss_in_another_is_not_significant(make_ranks):
    # Per seed the method is 10 points off the reference, in opposite directions; paired over queries
    # alone each seed would be "significant". With seeds resampled the mean +0.25 is not.
    reference = [np.asarray(make_ranks(2000, 600)), np.asarray(make_ranks(2000, 600))]
    method = [np.asarray(make_ranks(2000, 810)), np.asarray(make_ranks(2000, 400))]

    comparison = paired_bootstrap(method, reference, resamples=1000)

    assert comparison.difference == pytest.approx(0.25)
    assert not comparison.significant and comparison.low < -5 and comparison.high > 5


def borderline_pair(flipped_to_hits: int) -> tuple[np.ndarray, np.ndarray]:
    """One run each on 1,000 queries: the method gains `flipped_to_hits` queries and loses two thirds as many."""
    reference = np.full(1000, 2)
    reference[:200] = 1
    method = reference.copy()
    method[200:200 + flipped_to_hits] = 1
    method[:flipped_to_hits * 2 // 3] = 2
    return method, reference


def test_a_p_value_near_the_level_is_computed_again_with_ten_times_the_resamples():
    near = paired_bootstrap(*map(lambda r: [r], borderline_pair(58)), resamples=1000)
    assert near.resamples == 10_000 and 0.03 < near.p_value < 0.07  # p at B = 1,000 was within 0.02 of 0.05
    clear = paired_bootstrap(*map(lambda r: [r], borderline_pair(20)), resamples=1000)
    assert clear.resamples == 1000 and clear.p_value > 0.2


def test_few_seeds_have_their_spread_corrected():
    # Two seeds at R@1 20% and 40% on 2,000 queries: a resample of (20%, 20%) is the mean moved 10 points
    # away; drawing 2 of 2 seeds halves their variance, which the correction restores: sqrt(2) * 10 points.
    from vtrbench.reports.bootstrap import _resampled_means

    hits = np.zeros((2, 2000, 1))
    hits[0, :400], hits[1, :800] = 1, 1
    corrected = 100 * _resampled_means(hits, 2000, 0)[:, 0]
    plain = 100 * _resampled_means(hits, 2000, 0, seed_correction=False)[:, 0]
    assert plain.std() == pytest.approx(10 / np.sqrt(2), rel=0.05)  # the spread of two runs drawn as two of two
    assert corrected.std() == pytest.approx(10, rel=0.05)  # their own: 10 points either side of 30
    assert np.median(corrected) == pytest.approx(30, abs=0.5) and np.median(plain) == pytest.approx(30, abs=0.5)


def test_an_interval_never_leaves_what_a_recall_can_be(make_ranks):
    # seeds at R@1 0.0, 0.0 and 2.0: the few-seeds correction stretches resamples below 0 (the report showed
    # [-0.0, 0.3] and [-3.1, 18.8] before)
    seeds = [np.full(100, 50), np.full(100, 50), np.array(make_ranks(100, 2, miss_rank=50))]
    (r1,) = recall_intervals(seeds, ks=(1,))
    assert r1.low == 0.0 and 0.0 <= r1.estimate <= r1.high <= 100.0
    (r1,) = recall_intervals([np.ones(100, int), np.ones(100, int), np.array(make_ranks(100, 98))], ks=(1,))
    assert r1.high == 100.0


def test_captions_of_one_clip_are_drawn_together():
    """Found in review: VATEX's ten captions of a clip were resampled as ten independent queries, so 200 clips
    counted as 2,000 and the intervals and paired tests were too narrow. Clips whose captions all hit or all miss
    (here: 50 clips of 10 captions, 20 hit) carry the information of 50 queries, not 500."""
    clips = np.repeat(np.arange(50), 10)
    ranks = np.where(clips < 20, 1, 9)
    by_caption = recall_intervals([ranks], ks=(1,), resamples=2000, rng_seed=0)[0]
    by_clip = recall_intervals([ranks], ks=(1,), resamples=2000, rng_seed=0, groups=clips)[0]
    alone = recall_intervals([np.where(np.arange(50) < 20, 1, 9)], ks=(1,), resamples=2000, rng_seed=0)[0]
    assert by_clip.estimate == by_caption.estimate == pytest.approx(40.0)
    assert by_clip.high - by_clip.low == pytest.approx(alone.high - alone.low, rel=0.1)  # 50 clips' worth
    assert by_clip.high - by_clip.low > 2.5 * (by_caption.high - by_caption.low)
    # paired: 5 clips gained and 2 lost (of 50) is no significant gain by clip, though it is by caption
    better = np.where((clips >= 2) & (clips < 25), 1, 9)
    assert paired_bootstrap([better], [ranks], resamples=2000).significant
    assert not paired_bootstrap([better], [ranks], resamples=2000, groups=clips).significant
    # one caption per clip, in any order: the plain draw over queries, to the bit
    order = np.random.default_rng(1).permutation(50)
    assert recall_intervals([ranks[:50]], resamples=300, groups=order) == recall_intervals([ranks[:50]], resamples=300)
    with pytest.raises(ValueError, match="one clip index >= 0 per query"):
        recall_intervals([ranks], groups=clips[:-1])


def test_a_row_draws_by_clip_where_its_runs_place_their_captions():
    import pandas as pd

    from vtrbench.reports.aggregate import clips_of_queries
    from vtrbench.reports.result_table import ResultFileError

    clips = np.repeat(np.arange(3), 2)
    t2v, v2t = np.ones(6, dtype=np.int64), np.ones(3, dtype=np.int64)
    runs = pd.DataFrame({"path": ["a", "b"], "t2v_query_clips": [clips, np.nan], "t2v_ranks": [t2v, t2v],
                         "v2t_ranks": [v2t, v2t]})
    found, unit = clips_of_queries(runs)
    assert unit == "clips" and np.array_equal(found, clips)
    unrecorded = runs.assign(t2v_query_clips=[None, None])
    assert clips_of_queries(unrecorded)[1] == "captions"  # several captions a clip, not placed: flagged in the report
    assert clips_of_queries(unrecorded.assign(t2v_ranks=[v2t, v2t]))[1] == "clips"  # one caption a clip
    with pytest.raises(ResultFileError, match=r"other clips \(a, b\)"):
        clips_of_queries(runs.assign(t2v_query_clips=[clips, clips[::-1].copy()]))
