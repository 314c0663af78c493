"""Numbers behind the report: seed aggregation, published reference rows, mean rank, paired comparisons.

Everything here returns plain DataFrames of numbers (no formatting), which is also what the CSV files hold.

Row order (``paper_order``) follows the field's tables: zero_shot first, then methods by tuned parameters
ascending, full_finetune last; ties by method and variant name. Published rows use the same order in their
own block and never enter the mean rank.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources

import numpy as np
import pandas as pd

from vtrbench.reports.bootstrap import (
    DEFAULT_RESAMPLES,
    DEFAULT_RNG_SEED,
    paired_bootstrap,
    recall_intervals,
)
from vtrbench.reports.result_table import DIRECTIONS, RANK_METRICS, ResultFileError
from vtrbench.schema import method_label

TABLE_KEYS = ("table", "dataset", "split", "backbone")
ROW_KEYS = (*TABLE_KEYS, "method", "variant")
METRIC_COLUMNS = (*(f"{d}_{m}" for d in DIRECTIONS for m in RANK_METRICS), "rsum")
COST_COLUMNS = ("train_s", "peak_memory_mb")
PARAM_COLUMNS = ("tuned", "tuned_pct", "backbone_params", "checkpoint_bytes")
CI_KS = (1, 5, 10)
FIRST_METHOD = "zero_shot"
LAST_METHOD = "full_finetune"


def assign_tables(results: pd.DataFrame) -> pd.DataFrame:
    """Add the ``table`` column: the dataset name, or ``dataset (split)`` where a dataset has several splits."""
    split_counts = results.groupby("dataset")["split"].transform("nunique")
    with_split = results["dataset"] + " (" + results["split"] + ")"
    return results.assign(table=results["dataset"].where(split_counts == 1, with_split))


def _with_tables(results: pd.DataFrame) -> pd.DataFrame:
    """The finished runs, with the ``table`` column added when ``results`` comes straight from loading."""
    tabled = results if "table" in results else assign_tables(results)
    return tabled[tabled["status"] == "finished"]


def paper_order(frame: pd.DataFrame) -> pd.DataFrame:
    """zero_shot first, full_finetune last, everything else by tuned parameters ascending."""
    pin = np.select([frame["method"] == FIRST_METHOD, frame["method"] == LAST_METHOD], [0, 2], default=1)
    order = frame.assign(
        _pin=pin, _tuned=pd.to_numeric(frame["tuned"], errors="coerce").fillna(np.inf)
    ).sort_values(["_pin", "_tuned", "method", "variant", "backbone"], kind="stable")
    return order.drop(columns=["_pin", "_tuned"]).reset_index(drop=True)


def aggregate_runs(
    results: pd.DataFrame, resamples: int = DEFAULT_RESAMPLES, rng_seed: int = DEFAULT_RNG_SEED
) -> pd.DataFrame:
    """One row per (table, backbone, method, variant) over its finished seeds: mean, ``_std`` and T2V CIs.

    ``_std`` is the sample standard deviation (NaN for a single seed). ``t2v_R{k}_ci_low/high`` are the 95%
    bootstrap intervals of the seed-mean (see ``bootstrap``); NaN when a run has no per-query ranks.
    """
    finished = _with_tables(results)
    rows = []
    for keys, group in finished.groupby(list(ROW_KEYS), sort=False):
        row = dict(zip(ROW_KEYS, keys, strict=True))
        row.update(kind="measured", seeds=len(group), seed_list=" ".join(map(str, sorted(group["seed"]))))
        for column in (*METRIC_COLUMNS, *COST_COLUMNS):
            values = pd.to_numeric(group[column], errors="coerce")
            row[column], row[f"{column}_std"] = values.mean(), values.std(ddof=1)
        for column in PARAM_COLUMNS:
            row[column] = pd.to_numeric(group[column], errors="coerce").mean()
        row["skipped_test"] = int(group["skipped_test"].max())
        row["model_selection"] = " ".join(sorted(set(group["model_selection"])))
        ranks = list(group["t2v_ranks"])
        if all(r is not None for r in ranks) and len({len(r) for r in ranks}) > 1:
            sizes = ", ".join(f"{path} ({len(r):,})" for path, r in zip(group["path"], ranks, strict=True))
            raise ResultFileError(f"the seeds of one row rank different numbers of test queries: {sizes}; they "
                                  f"were not run on the same test split")
        clips, row["ci_unit"] = clips_of_queries(group)
        intervals = (
            recall_intervals(ranks, CI_KS, resamples, rng_seed, clips) if all(r is not None for r in ranks) else []
        )
        for k in CI_KS:
            interval = next((i for i in intervals if i.k == k), None)
            row[f"t2v_R{k}_ci_low"] = interval.low if interval else np.nan
            row[f"t2v_R{k}_ci_high"] = interval.high if interval else np.nan
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=[*ROW_KEYS, "kind", "seeds", *METRIC_COLUMNS, *PARAM_COLUMNS])
    return paper_order(pd.DataFrame(rows))


def clips_of_queries(runs: pd.DataFrame) -> tuple[np.ndarray | None, str]:
    """The clip of each T2V query of these runs (one test set: the same for all of them, else an error naming
    the files) for the bootstrap's `groups` (None: one query per clip, or unrecorded), and what the bootstrap
    draws (`ci_unit`): `clips` where every query is its clip's only caption or the runs place their captions,
    `captions` where a clip has several captions that the runs do not place (files written before they did),
    which then count as independent queries and give too narrow an interval."""
    recorded = [(path, clips) for path, clips in zip(runs["path"], runs["t2v_query_clips"], strict=True)
                if isinstance(clips, np.ndarray)]  # None, or NaN in a frame with failed runs: not recorded
    other = next((path for path, clips in recorded if not np.array_equal(clips, recorded[0][1])), None)
    if other is not None:
        raise ResultFileError(f"runs paired or averaged together place their test captions in other clips "
                              f"({recorded[0][0]}, {other}); they were not run on the same test split")
    if recorded:
        return recorded[0][1], "clips"
    several = any(isinstance(t, np.ndarray) and isinstance(v, np.ndarray) and len(t) != len(v)
                  for t, v in zip(runs["t2v_ranks"], runs["v2t_ranks"], strict=True))
    return None, "captions" if several else "clips"


def load_published(datasets: Iterable[str] | None = None) -> pd.DataFrame:
    """The packaged published reference rows (optionally only ``datasets``), in the measured column names.

    ``tuned`` is a count of parameters and ``tuned_pct`` is the paper's own percentage (its denominator, not
    ours); ``rsum`` is filled only where a paper gives all six recalls; ``source`` says where each came from.
    """
    with resources.files("vtrbench.reports").joinpath("published.csv").open(encoding="utf-8") as file:
        published = pd.read_csv(file, keep_default_na=False, na_values=[""])
    renames = {f"{d}_{m.lower()}": f"{d}_{m}" for d in DIRECTIONS for m in RANK_METRICS}
    published = published.rename(columns=renames | {"tuned_pct_published": "tuned_pct"})
    published["variant"] = published["variant"].fillna("").astype(str)
    published["tuned"] = published.pop("tuned_params_M") * 1e6
    recalls = [f"{d}_R{k}" for d in DIRECTIONS for k in CI_KS]
    published["rsum"] = published[recalls].sum(axis=1, min_count=len(recalls))
    published["kind"] = "published"
    if datasets is not None:
        published = published[published["dataset"].isin(list(datasets))]
    return paper_order(published)


def published_for_tables(results: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Published rows repeated for every table of their dataset in ``results`` (``table`` column set)."""
    tables = results[["table", "dataset"]].drop_duplicates()
    return paper_order(published.merge(tables, on="dataset", how="inner"))


def summarize_r1(aggregated: pd.DataFrame) -> pd.DataFrame:
    """T2V R@1 per table for each (backbone, method, variant), its rank per table and the mean rank.

    Rank 1 is the best R@1 among measured rows of a table (ties share the average rank). The mean rank is
    over the tables where the row has a result; ``tables`` counts them, so that a row measured on fewer
    datasets can be told apart; ``seeds <table>`` counts the finished runs behind each cell. Sorted by mean rank.
    """
    identity = ["backbone", "method", "variant"]
    if aggregated.empty:
        return pd.DataFrame(columns=[*identity, "mean_rank", "tables"])
    ranked = aggregated.assign(
        rank=aggregated.groupby("table")["t2v_R1"].rank(ascending=False, method="average")
    )
    table_names = list(dict.fromkeys(ranked["table"]))
    r1 = ranked.pivot_table(index=identity, columns="table", values="t2v_R1", aggfunc="first")
    ranks = ranked.pivot_table(index=identity, columns="table", values="rank", aggfunc="first")
    seeds = ranked.pivot_table(index=identity, columns="table", values="seeds", aggfunc="first")
    summary = (
        r1.reindex(columns=table_names)
        .add_prefix("R1 ")
        .join(ranks.reindex(columns=table_names).add_prefix("rank "))
        .join(seeds.reindex(columns=table_names).add_prefix("seeds "))
    )
    summary["mean_rank"] = ranks.mean(axis=1)
    summary["tables"] = ranks.notna().sum(axis=1)
    summary = summary.reset_index()
    return summary.sort_values(["mean_rank", "method", "variant"], kind="stable").reset_index(drop=True)


def reference_mask(frame: pd.DataFrame, reference_method: str) -> pd.Series:
    """The rows a reference names: ``method`` (any variant) or ``method.variant``."""
    method, _, variant = reference_method.partition(".")
    named = frame["method"] == method
    return named & (frame["variant"] == variant) if variant else named


def _reference_rows(frame: pd.DataFrame, reference_method: str) -> tuple[pd.DataFrame, str]:
    """Rows of the reference in one table; ``reference_method`` is ``method`` or ``method.variant``."""
    method = reference_method.partition(".")[0]
    rows = frame[reference_mask(frame, reference_method)]
    variants = sorted(set(rows["variant"]))
    if len(variants) > 1:
        names = ", ".join(method_label(method, v) for v in variants)
        return rows.iloc[0:0], f"reference '{reference_method}' is ambiguous here ({names}); name one"
    if rows.empty:
        return rows, f"no finished run of reference '{reference_method}'"
    return rows, ""


def paired_comparisons(
    results: pd.DataFrame,
    reference_method: str = FIRST_METHOD,
    resamples: int = DEFAULT_RESAMPLES,
    rng_seed: int = DEFAULT_RNG_SEED,
) -> pd.DataFrame:
    """Paired bootstrap of T2V R@1 of every measured row against the reference, per table and backbone.

    Runs are paired by seed (same dataset, split, backbone, seed, hence the same queries); several common
    seeds are combined as in ``paired_bootstrap``. A reference that trains nothing (zero-shot) and was run
    once is paired with every seed of the method, so that none of the method's runs is left out of the test;
    any other reference pairs on the seeds both have. A pair that cannot be made
    is kept as a row whose ``note`` says why, with NaN numbers.
    """
    finished = _with_tables(results)
    rows = []
    for table_keys, table_runs in finished.groupby(list(TABLE_KEYS), sort=False):
        reference, problem = _reference_rows(table_runs, reference_method)
        reference_variant = reference["variant"].iloc[0] if not reference.empty else None
        candidates = table_runs[
            ~(
                (table_runs["method"] == reference_method.partition(".")[0])
                & (table_runs["variant"] == reference_variant)
            )
        ]
        for (method, variant), runs in candidates.groupby(["method", "variant"], sort=False):
            row = dict(zip(TABLE_KEYS, table_keys, strict=True))
            row.update(method=method, variant=variant, reference=reference_method, tuned=runs["tuned"].mean())
            row.update(
                seeds=0,
                seed_list="",
                difference=np.nan,
                ci_low=np.nan,
                ci_high=np.nan,
                p_value=np.nan,
                significant=None,
                resamples=resamples,
                note=problem,
            )
            reference_of = dict(zip(reference["seed"], reference["t2v_ranks"], strict=True))
            if len(reference_of) == 1 and (reference["tuned"] == 0).all():
                # a reference that trains nothing (zero-shot) computes the same at every seed: its one run pairs
                # with every seed; one that trains pairs on the seeds both have (found in review: a trained
                # reference's one surviving seed stood for all three, its own seed variance left out)
                reference_of = dict.fromkeys(runs["seed"], *reference_of.values())
            common = sorted(set(runs["seed"]) & set(reference_of))
            if not problem and not common:
                row["note"] = f"no seed in common with reference '{reference_method}'"
            elif not problem:
                method_ranks = [runs.loc[runs["seed"] == s, "t2v_ranks"].iloc[0] for s in common]
                reference_ranks = [reference_of[s] for s in common]
                if any(r is None for r in method_ranks + reference_ranks):
                    row["note"] = "per-query ranks missing from a result file"
                else:
                    try:
                        clips, _ = clips_of_queries(pd.concat([runs, reference]))
                        comparison = paired_bootstrap(method_ranks, reference_ranks, 1, resamples, rng_seed,
                                                      clips)
                    except ValueError as error:
                        row["note"] = str(error)
                    else:
                        row.update(
                            seeds=len(common),
                            seed_list=" ".join(map(str, common)),
                            difference=comparison.difference,
                            ci_low=comparison.low,
                            ci_high=comparison.high,
                            p_value=comparison.p_value,
                            significant=comparison.significant,
                            resamples=comparison.resamples,
                        )
            rows.append(row)
    columns = [
        *TABLE_KEYS,
        "method",
        "variant",
        "reference",
        "tuned",
        "seeds",
        "seed_list",
        "difference",
        "ci_low",
        "ci_high",
        "p_value",
        "significant",
        "resamples",
        "note",
    ]
    if not rows:
        return pd.DataFrame(columns=columns)
    return paper_order(pd.DataFrame(rows, columns=columns))


def failed_runs(results: pd.DataFrame) -> pd.DataFrame:
    """The runs that are not ranked: failed, diverged or degenerate (listed in the report, never averaged)."""
    failed = results[results["status"] != "finished"]
    return failed[["dataset", "split", "backbone", "method", "variant", "seed", "status", "error", "path"]].reset_index(
        drop=True
    )
