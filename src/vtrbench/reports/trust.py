"""How far to trust a ranking on the offline data: for the reader, not a target.

Per measured table:
- the zero-shot to full fine-tuning ratio of T2V R@1 (the published MSR-VTT ViT-B/32 rows give about 0.7):
  near 1, adaptation has nothing to gain; near 0, the backbone knows nothing of the data;
- how many methods that train are significantly above zero-shot (the paired tests of the report);
- Spearman's rank correlation between the table's T2V R@1 and the published MSR-VTT ViT-B/32 one, over
  the methods that have a published row of their suite-default configuration (`suite_default` in
  published.csv), with a 95% percentile-bootstrap interval over those methods. With a handful of methods the
  interval is wide: that width is the information.

And per method that trains: its val T2V R@1 before training (the learning curve's step 0) and after its
last epoch, mean over seeds. A method whose tuned tensors never move shows no change anywhere, whatever its
test rank against zero-shot: this is what tells a method that learns from a broken one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vtrbench.reports.bootstrap import CONFIDENCE, DEFAULT_RESAMPLES, DEFAULT_RNG_SEED
from vtrbench.reports.tables import MISSING, DisplayTable, format_number

PUBLISHED_DATASET, PUBLISHED_BACKBONE = "msrvtt", "ViT-B/32"
ZERO_SHOT, FULL_FINETUNE = "zero_shot", "full_finetune"
COLUMNS = ["table", "backbone", "zero_shot_r1", "full_finetune_r1", "ratio", "trained", "significant_above",
           "spearman", "spearman_low", "spearman_high", "matched_methods"]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho (ties share their average rank); NaN when either side is constant."""
    rx, ry = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    if np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def spearman_interval(x: np.ndarray, y: np.ndarray, resamples: int = DEFAULT_RESAMPLES,
                      rng_seed: int = DEFAULT_RNG_SEED) -> tuple[float, float]:
    """95% percentile-bootstrap interval of Spearman's rho, resampling the (x, y) pairs (the methods);
    resamples where one side is constant are dropped."""
    rng = np.random.default_rng(rng_seed)
    draws = [spearman(x[i], y[i]) for i in rng.integers(0, len(x), size=(resamples, len(x)))]
    draws = np.asarray([d for d in draws if np.isfinite(d)])
    if draws.size == 0:
        return float("nan"), float("nan")
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def trust_frame(aggregated: pd.DataFrame, comparisons: pd.DataFrame, published: pd.DataFrame,
                resamples: int = DEFAULT_RESAMPLES) -> pd.DataFrame:
    """One row per measured table (see the module docstring). `aggregated` and `comparisons` are the
    report's frames; `published` is `load_published()` (every dataset)."""
    reference = published[(published["dataset"] == PUBLISHED_DATASET) & (published["backbone"] == PUBLISHED_BACKBONE)
                          & (published["suite_default"] == "yes")].set_index("method")["t2v_R1"]
    rows = []
    for (table, backbone), measured in aggregated.groupby(["table", "backbone"], sort=False):
        plain = measured[measured["variant"] == ""].set_index("method")["t2v_R1"]
        zero_shot, full = plain.get(ZERO_SHOT, np.nan), plain.get(FULL_FINETUNE, np.nan)
        paired = comparisons[(comparisons["table"] == table) & (comparisons["backbone"] == backbone)
                             & (comparisons["method"] != ZERO_SHOT)]
        paired = paired[paired["p_value"].notna()]  # tested: a row that could not be paired says why instead
        above = int(((paired["significant"] == True) & (paired["difference"] > 0)).sum())  # noqa: E712
        matched = plain[plain.index.isin(reference.index)]
        x, y = matched.to_numpy(dtype=float), reference[matched.index].to_numpy(dtype=float)
        rho = spearman(x, y) if len(x) >= 3 else float("nan")
        low, high = spearman_interval(x, y, resamples) if len(x) >= 3 else (float("nan"), float("nan"))
        rows.append({
            "table": table, "backbone": backbone, "zero_shot_r1": zero_shot, "full_finetune_r1": full,
            "ratio": zero_shot / full if full else np.nan, "trained": len(paired), "significant_above": above,
            "spearman": rho, "spearman_low": low, "spearman_high": high,
            "matched_methods": " ".join(sorted(matched.index)),
        })
    return pd.DataFrame(rows, columns=COLUMNS)


GAIN_COLUMNS = ["table", "backbone", "method", "variant", "seeds", "steps", "before", "after", "gain", "gain_min",
                "seeds_up"]


def training_gain_frame(curves: pd.DataFrame) -> pd.DataFrame:
    """One row per (table, backbone, method, variant) that trains: val T2V R@1 at step 0 and at the last point
    of each run's learning curve (`curve_frame`'s rows), mean over seeds; the change, its smallest value over
    seeds, and how many seeds rose."""
    rows = []
    keys = ["table", "backbone", "method", "variant"]
    for key, group in curves.sort_values("step", kind="stable").groupby(keys, sort=False):
        per_seed = group.groupby("seed", sort=True)
        first, last = per_seed.first(), per_seed.last()
        measured = (first["step"] == 0) & (last["step"] > 0)  # a curve from step 0 to after training
        if not measured.any():  # trains nothing (zero-shot), or no curve begins before training
            continue
        first, last = first[measured], last[measured]
        gain = last["t2v_R1"] - first["t2v_R1"]
        rows.append({**dict(zip(keys, key, strict=True)), "seeds": len(first), "steps": int(last["step"].max()),
                     "before": first["t2v_R1"].mean(), "after": last["t2v_R1"].mean(), "gain": gain.mean(),
                     "gain_min": gain.min(), "seeds_up": int((gain > 0).sum())})
    return pd.DataFrame(rows, columns=GAIN_COLUMNS)


def training_gain_table(frame: pd.DataFrame) -> DisplayTable:
    """Methods as rows, one column per table: `before → after (change)`."""
    tables = list(dict.fromkeys(frame["table"]))
    rows = []
    for (method, variant, backbone), group in frame.groupby(["method", "variant", "backbone"], sort=True):
        by_table = {row["table"]: row for _, row in group.iterrows()}
        rows.append([method, variant, backbone, *(
            f"{by_table[t]['before']:.1f} → {by_table[t]['after']:.1f} ({by_table[t]['gain']:+.1f})"
            if t in by_table else MISSING for t in tables)])
    return DisplayTable(
        title="Per method: val Text→Video R@1 before training and after it",
        columns=["Method", "Variant", "Backbone", *tables],
        groups=[("", 3), ("val T2V R@1: step 0 → last epoch (change)", len(tables))],
        blocks=[("", rows)],
        notes=[
            "Mean over seeds of each test run's learning curve (train.val_curve): val T2V R@1 before the first "
            "step and after the last epoch. A method whose tuned tensors never moved would read +0.0 on every "
            "dataset, whatever its test rank against zero-shot: a method can start below zero-shot (a random "
            "prompt as its video vector, say) and learn much without passing it. Each seed's change and how "
            "many seeds rose: training_gain.csv. Val, never test: this is what the budget bought."
        ],
        name="training_gain",
    )


def published_ratio(published: pd.DataFrame) -> str:
    """`31.2 / 43.1 = 0.72`: the published zero-shot over full fine-tuning T2V R@1 on MSR-VTT ViT-B/32."""
    rows = published[(published["dataset"] == PUBLISHED_DATASET) & (published["backbone"] == PUBLISHED_BACKBONE)
                     & (published["suite_default"] == "yes")].set_index("method")["t2v_R1"]
    if ZERO_SHOT not in rows or FULL_FINETUNE not in rows:
        return "not in published.csv"
    return f"{rows[ZERO_SHOT]:.1f} / {rows[FULL_FINETUNE]:.1f} = {rows[ZERO_SHOT] / rows[FULL_FINETUNE]:.2f}"


def trust_table(frame: pd.DataFrame, published: pd.DataFrame) -> DisplayTable:
    rows = []
    for _, row in frame.iterrows():
        rho = MISSING if not np.isfinite(row["spearman"]) else (
            f"{row['spearman']:+.2f} [{row['spearman_low']:+.2f}, {row['spearman_high']:+.2f}]")
        rows.append([row["table"], row["backbone"], format_number(row["zero_shot_r1"]),
                     format_number(row["full_finetune_r1"]), format_number(row["ratio"], 2),
                     f"{row['significant_above']} of {row['trained']}" if row["trained"] else MISSING, rho,
                     str(len(row["matched_methods"].split())) if row["matched_methods"] else MISSING])
    return DisplayTable(
        title="Per dataset: zero-shot against full fine-tuning, and rank correlation with the published rows",
        columns=["Table", "Backbone", "Zero-shot R@1", "Full fine-tuning R@1", "Ratio",
                 "Significantly above zero-shot", "Spearman vs published [95% CI]", "Methods correlated"],
        blocks=[("", rows)],
        label_columns=2,
        notes=[
            f"Ratio: zero-shot T2V R@1 over full fine-tuning's; published MSR-VTT ViT-B/32: "
            f"{published_ratio(published)}. "
            "Significantly above zero-shot: methods whose paired test (T2V R@1, p < 0.05) puts them above "
            "zero-shot, of those that train. Spearman: rank correlation of this table's T2V R@1 with the "
            "published MSR-VTT ViT-B/32 T2V R@1 of each method's suite-default configuration, 95% bootstrap "
            "interval over the methods (which ones: trust.csv, matched_methods). Information for the reader, "
            "not a target: a world designed to rank "
            "methods as the papers do would be shaped toward the answer."
        ],
    )
