"""Turn the numeric leaderboard frames into display tables with the field's number formats.

A ``DisplayTable`` is renderer-neutral (Markdown, LaTeX and HTML all draw it): a title, column groups
(``Text→Video`` over ``R@1 R@5 R@10 MdR MnR``), and blocks of rows. Published and measured rows are two
separate blocks, so no renderer can mix them.

Formats: recalls, MnR and rsum with one decimal, MdR also with one (``1.0``), mean ± sample std over seeds
(the ± is omitted for one seed); tuned parameters in millions with the percentage beside, ``0.83M (0.55%)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from vtrbench.reports.aggregate import CI_KS
from vtrbench.reports.bootstrap import CONFIDENCE
from vtrbench.reports.result_table import DIRECTIONS, RANK_METRICS

MISSING = "–"
DIRECTION_LABELS = {"t2v": "Text→Video", "v2t": "Video→Text"}
METRIC_LABELS = {"R1": "R@1", "R5": "R@5", "R10": "R@10", "MdR": "MdR", "MnR": "MnR"}
PUBLISHED_LABEL = "Published (reference numbers copied from papers, not measured here)"
MEASURED_LABEL = "Measured (this benchmark)"


@dataclass
class DisplayTable:
    """A formatted table; ``groups`` are (label, span) pairs over ``columns`` ("" for no group). The first
    ``label_columns`` columns are text (left-aligned in HTML and LaTeX), the rest numbers (right-aligned)."""

    title: str
    columns: list[str]
    blocks: list[tuple[str, list[list[str]]]]
    groups: list[tuple[str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    name: str = ""
    label_columns: int = 3


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_number(value: object, decimals: int = 1) -> str:
    return MISSING if _is_missing(value) else f"{float(value):.{decimals}f}"


def format_mean_std(mean: object, std: object, decimals: int = 1) -> str:
    if _is_missing(mean):
        return MISSING
    if _is_missing(std):
        return format_number(mean, decimals)
    return f"{float(mean):.{decimals}f} ± {float(std):.{decimals}f}"


def format_params(tuned: object, tuned_pct: object) -> str:
    """``0.83M (0.55%)``; small counts keep two significant digits so that 0.0042M does not read as 0."""
    if _is_missing(tuned):
        return MISSING
    millions = float(tuned) / 1e6
    if millions == 0:
        count = "0M"
    elif millions >= 0.01:
        count = f"{millions:.2f}M"
    else:
        count = f"{millions:.2g}M"
    if _is_missing(tuned_pct):
        return count
    pct = float(tuned_pct)
    percent = f"{pct:.2f}%" if pct == 0 or pct >= 0.01 else f"{pct:.2g}%"
    return f"{count} ({percent})"


def format_duration(seconds: object) -> str:
    if _is_missing(seconds):
        return MISSING
    seconds = float(seconds)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def format_memory(megabytes: object) -> str:
    if _is_missing(megabytes):
        return MISSING
    megabytes = float(megabytes)
    return f"{megabytes:.0f} MB" if megabytes < 1024 else f"{megabytes / 1024:.1f} GB"


def format_p_value(p_value: object) -> str:
    return MISSING if _is_missing(p_value) else f"{float(p_value):.3f}"


def _metric_columns() -> tuple[list[str], list[tuple[str, int]]]:
    columns = [METRIC_LABELS[m] for _ in DIRECTIONS for m in RANK_METRICS]
    groups = [(DIRECTION_LABELS[d], len(RANK_METRICS)) for d in DIRECTIONS]
    return columns, groups


def _metric_cells(row: pd.Series) -> list[str]:
    return [
        format_mean_std(row[f"{d}_{m}"], row.get(f"{d}_{m}_std")) for d in DIRECTIONS for m in RANK_METRICS
    ]


def dataset_table(
    table: str, measured: pd.DataFrame, published: pd.DataFrame, source_numbers: dict[str, int]
) -> DisplayTable:
    """The per-dataset leaderboard: a published block (if any rows) above the measured block.

    ``source_numbers`` maps a published source text to its footnote number, shared over the whole report.
    """
    metric_columns, metric_groups = _metric_columns()
    columns = [
        "Method",
        "Variant",
        "Backbone",
        "Seeds",
        "Tuned params",
        *metric_columns,
        "rsum",
        "Train",
        "Peak mem.",
    ]
    groups = [("", 5), *metric_groups, ("", 3)]
    blocks = []
    notes = []
    if not published.empty:
        rows = []
        for _, row in published.iterrows():
            number = source_numbers.setdefault(row["source"], len(source_numbers) + 1)
            rows.append(
                [
                    f"{row['method']} [{number}]",
                    row["variant"],
                    row["backbone"],
                    MISSING,
                    format_params(row["tuned"], row["tuned_pct"]),
                    *_metric_cells(row),
                    format_number(row["rsum"]),
                    MISSING,
                    MISSING,
                ]
            )
        blocks.append((PUBLISHED_LABEL, rows))
        cited = dict.fromkeys(published["source"])
        notes.append("Published sources: " + "; ".join(f"[{source_numbers[s]}] {s}" for s in cited) + ".")
        notes.append("Published tuned % use each paper's own denominator (e.g. DGL: 0.83M of 123.54M).")
    if measured.empty:
        return DisplayTable(
            title=f"{table}: retrieval results",
            columns=columns,
            blocks=blocks,
            groups=groups,
            notes=["No finished run on this dataset (see the failed runs).", *notes],
            name=table,
        )
    rows = [
        [
            row["method"],
            row["variant"],
            row["backbone"],
            str(row["seeds"]),
            format_params(row["tuned"], row["tuned_pct"]),
            *_metric_cells(row),
            format_mean_std(row["rsum"], row["rsum_std"]),
            format_duration(row["train_s"]),
            format_memory(row["peak_memory_mb"]),
        ]
        for _, row in measured.iterrows()
    ]
    blocks.append((MEASURED_LABEL if blocks else "", rows))
    denominators = measured.drop_duplicates("backbone")[["backbone", "backbone_params"]]
    backbone_sizes = ", ".join(
        f"{b} = {format_params(p, None)}" for b, p in denominators.itertuples(index=False)
    )
    notes.insert(
        0,
        "Measured rows: mean ± sample std over seeds (Seeds = finished runs); sorted by tuned "
        "parameters ascending (zero_shot first, full_finetune last). Tuned params = elements "
        f"with requires_grad; % of the backbone's own parameter count ({backbone_sizes}). Peak mem. = the "
        "run's own peak: on a GPU torch.cuda.max_memory_allocated, reset per run; on CPU the resident memory "
        "above the process's at the run's start, peak reset per run (runs.csv: peak_memory_measure).",
    )
    if (measured["skipped_test"] > 0).any():
        skipped = measured[measured["skipped_test"] > 0]
        notes.append(
            "Test clips skipped (missing, invalid id or not decodable), so these rows were measured on a "
            "smaller test set than the others: "
            + ", ".join(
                f"{m} {v}".strip() + f": {n}"
                for m, v, n in skipped[["method", "variant", "skipped_test"]].values
            )
            + "."
        )
    return DisplayTable(
        title=f"{table}: retrieval results",
        columns=columns,
        blocks=blocks,
        groups=groups,
        notes=notes,
        name=table,
    )


def confidence_table(table: str, measured: pd.DataFrame, resamples: int) -> DisplayTable:
    """T2V R@1/5/10 with their 95% bootstrap intervals over seeds and queries."""
    rows = []
    for _, row in measured.iterrows():
        cells = [
            MISSING
            if _is_missing(row[f"t2v_R{k}_ci_low"])
            else f"{row[f't2v_R{k}']:.1f} [{row[f't2v_R{k}_ci_low']:.1f}, {row[f't2v_R{k}_ci_high']:.1f}]"
            for k in CI_KS
        ]
        rows.append([row["method"], row["variant"], row["backbone"], str(row["seeds"]), *cells])
    level = f"{100 * CONFIDENCE:.0f}%"
    return DisplayTable(
        title=f"{table}: Text→Video recall with {level} bootstrap confidence intervals",
        columns=["Method", "Variant", "Backbone", "Seeds", *(f"R@{k}" for k in CI_KS)],
        groups=[("", 4), (f"Text→Video, mean [{level} CI]", len(CI_KS))],
        blocks=[("", rows)],
        notes=[
            (
                f"Percentile bootstrap over seeds and queries, B = {resamples} resamples, seeded "
                "(deterministic): a resample draws the seeds with replacement, their spread corrected for their "
                "small number, and one set of queries for them (a clip's captions drawn together), so the "
                "interval of the seed-mean holds training variance as well as the test set's; with one seed it "
                "is over queries alone. Seed-to-seed "
                "spread is also the ± in the main table."
            )
        ],
        name=table,
    )


def paired_table(
    table: str, comparisons: pd.DataFrame, reference_method: str, resamples: int
) -> DisplayTable:
    rows = []
    for _, row in comparisons.iterrows():
        if row["note"]:
            rows.append(
                [
                    row["method"],
                    row["variant"],
                    row["backbone"],
                    MISSING,
                    MISSING,
                    MISSING,
                    MISSING,
                    f"not paired: {row['note']}",
                ]
            )
            continue
        rows.append(
            [
                row["method"],
                row["variant"],
                row["backbone"],
                str(int(row["seeds"])),
                f"{row['difference']:+.1f}",
                f"[{row['ci_low']:+.1f}, {row['ci_high']:+.1f}]",
                format_p_value(row["p_value"])
                + ("" if row["resamples"] == resamples else f" (B = {int(row['resamples']):,})"),
                ("yes, above" if row["difference"] > 0 else "yes, below") if row["significant"] else "no",
            ]
        )
    return DisplayTable(
        title=f"{table}: paired bootstrap against {reference_method} (Text→Video R@1)",
        columns=["Method", "Variant", "Backbone", "Paired seeds", "ΔR@1 (pp)", "95% CI", "p", "Significant"],
        blocks=[("", rows)],
        notes=[
            (
                f"Same dataset, backbone, seed and queries; B = {resamples} paired resamples. "
                "p = 2 (1 + resamples whose difference does not keep the observed sign) / (B + 1), two-sided; "
                "significant when p < 0.05; a p between 0.03 and 0.07 is computed again with ten times the "
                "resamples (its B is given). Several seeds: each resample draws the common seeds with "
                "replacement, their spread corrected for their small number, and one set of queries for both "
                "methods (a clip's captions drawn together), so the test holds training variance as well as the "
                "test set's."
            )
        ],
        name=table,
    )


def summary_table(summary: pd.DataFrame, published: pd.DataFrame, tables: list[str]) -> DisplayTable:
    """T2V R@1 per dataset with the per-dataset rank, and the mean rank (measured rows only)."""
    rows = []
    most_seeds = {t: summary[f"seeds {t}"].max() for t in tables if f"seeds {t}" in summary}

    def cell(row, table: str) -> str:
        if _is_missing(row[f"R1 {table}"]):
            return MISSING
        text = f"{row[f'R1 {table}']:.1f} ({row[f'rank {table}']:g})"
        seeds = row.get(f"seeds {table}")
        if not _is_missing(seeds) and seeds < most_seeds[table]:  # a cell of fewer runs than its table's others
            text += f", {seeds:g} of {most_seeds[table]:g} seeds"
        return text

    for _, row in summary.iterrows():
        cells = [cell(row, t) for t in tables]
        rows.append(
            [
                row["method"],
                row["variant"],
                row["backbone"],
                *cells,
                format_number(row["mean_rank"], 2),
                str(row["tables"]),
            ]
        )
    blocks = []
    if not published.empty:
        published_rows = []
        for (method, variant, backbone), group in published.groupby(
            ["method", "variant", "backbone"], sort=False
        ):
            by_table = dict(zip(group["table"], group["t2v_R1"], strict=True))
            published_rows.append(
                [
                    method,
                    variant,
                    backbone,
                    *(format_number(by_table.get(t)) for t in tables),
                    MISSING,
                    MISSING,
                ]
            )
        blocks.append((PUBLISHED_LABEL, published_rows))
    blocks.append((MEASURED_LABEL if blocks else "", rows))
    return DisplayTable(
        title="Summary: Text→Video R@1 per dataset (rank) and mean rank",
        columns=["Method", "Variant", "Backbone", *tables, "Mean rank", "Datasets"],
        groups=[("", 3), ("Text→Video R@1 (rank)", len(tables)), ("", 2)],
        blocks=blocks,
        notes=[
            (
                "Rank 1 = best measured R@1 on that dataset (ties share the average rank); the mean rank is "
                "over the datasets a row was measured on (Datasets). A cell whose row has fewer finished seeds "
                "than the dataset's other rows says how many (the others failed, diverged or were set aside: "
                "Runs not ranked). Published rows are never ranked."
            )
        ],
        name="summary",
    )


def failed_table(failed: pd.DataFrame) -> DisplayTable:
    rows = [
        [r.dataset, r.split, r.backbone, r.method, r.variant, str(r.seed), r.status, r.error, r.path]
        for r in failed.itertuples(index=False)
    ]
    return DisplayTable(
        title="Failed, diverged, degenerate and excluded runs (listed, never averaged nor ranked)",
        columns=["Dataset", "Split", "Backbone", "Method", "Variant", "Seed", "Status", "Reason", "File"],
        label_columns=9,
        blocks=[("", rows)],
        name="failed",
    )
