"""``write_report``: every result file under a runs directory -> Markdown, LaTeX, HTML, CSV and plots."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from vtrbench.reports.aggregate import (
    FIRST_METHOD,
    METRIC_COLUMNS,
    aggregate_runs,
    assign_tables,
    failed_runs,
    load_published,
    paired_comparisons,
    paper_order,
    published_for_tables,
    reference_mask,
    summarize_r1,
)
from vtrbench.reports.bootstrap import DEFAULT_RESAMPLES, DEFAULT_RNG_SEED
from vtrbench.reports.freshness import current_report, record_report, report_fingerprint
from vtrbench.reports.plots import plot_r1_against_params, plot_val_curves
from vtrbench.reports.render import (
    ReportFigure,
    Section,
    markdown_table,
    render_html,
    render_latex,
    render_markdown,
)
from vtrbench.reports.result_table import REPRODUCIBILITY_KEYS, load_results
from vtrbench.reports.tables import (
    confidence_table,
    dataset_table,
    failed_table,
    paired_table,
    summary_table,
)
from vtrbench.reports.trust import (
    ZERO_SHOT,
    training_gain_frame,
    training_gain_table,
    trust_frame,
    trust_table,
)
from vtrbench.reports.tuning_section import curve_frame, load_tuning_records, tuning_frame, tuning_tables
from vtrbench.schema import method_label

REPORT_TITLE = "vtrbench: parameter-efficient text-video retrieval"
TABLE_CSV_COLUMNS = [
    "kind",
    "dataset",
    "split",
    "backbone",
    "method",
    "variant",
    "seeds",
    "seed_list",
    "tuned",
    "tuned_pct",
    "backbone_params",
    "checkpoint_bytes",
    *(c for m in METRIC_COLUMNS for c in (m, f"{m}_std")),
    *(f"t2v_R{k}_ci_{end}" for k in (1, 5, 10) for end in ("low", "high")),
    "train_s",
    "train_s_std",
    "peak_memory_mb",
    "peak_memory_mb_std",
    "skipped_test",
    "model_selection",
    "source",
]


def _file_stem(table: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", table).strip("_") or "table"


def write_report(
    runs_dir: str | Path,
    out_dir: str | Path,
    reference_method: str | None = None,
    resamples: int = DEFAULT_RESAMPLES,
    published: bool = True,
    defaults: Callable[[str, str], dict[str, Any]] | None = None,
) -> dict[str, Path]:
    """Read every result.json under ``runs_dir`` and write the report files into ``out_dir``.

    ``reference_method`` (``method`` or ``method.variant``) is what every row is paired against: zero-shot
    when None (a table without it says so in its paired rows); a name given must be a method of the runs;
    ``resamples`` is the bootstrap B; ``published`` adds the packaged published reference rows for the
    datasets present in the runs; ``defaults`` as in ``load_results``. Prints nothing. Returns the written
    paths by kind: ``markdown``, ``latex``, ``html``, ``markdown:measured`` (the measured rows alone, as the
    leaderboard prints them),
    ``csv:<table>``, ``csv:summary``, ``csv:trust``, ``csv:training_gain`` (where a run has a learning curve),
    ``csv:paired``, ``csv:runs``, ``png:<table>``,
    ``svg:<table>``, and where there are any: ``csv:tuning`` (every trial of every search),
    ``csv:curves`` (every learning-curve point), ``png:curves <table>``, ``svg:curves <table>``.
    """
    reference = reference_method or FIRST_METHOD
    return _write_report(runs_dir, out_dir, reference, resamples, published,
                         report_fingerprint(runs_dir, reference, resamples, published),
                         require_reference=reference_method is not None, defaults=defaults)


def _write_report(runs_dir: str | Path, out_dir: str | Path, reference_method: str, resamples: int,
                  published: bool, fingerprint: str, require_reference: bool = False,
                  defaults: Callable[[str, str], dict[str, Any]] | None = None) -> dict[str, Path]:
    """`write_report`, recording `fingerprint` (computed before anything is read)."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: is a file; the report is written into a folder (--out DIR)")
    results = assign_tables(load_results(runs_dir, defaults))
    if require_reference and not reference_mask(results, reference_method).any():
        there = sorted({method_label(m, v) for m, v in zip(results["method"], results["variant"], strict=True)})
        raise ValueError(f"reference method '{reference_method}': no result under {runs_dir} is of it "
                         f"(there: {', '.join(there)})")
    out_dir.mkdir(parents=True, exist_ok=True)
    aggregated = aggregate_runs(results, resamples, DEFAULT_RNG_SEED)
    comparisons = paired_comparisons(results, reference_method, resamples, DEFAULT_RNG_SEED)
    reference_rows = (
        published_for_tables(results, load_published(results["dataset"].unique()))
        if published
        else pd.DataFrame(columns=["table", "tuned", "t2v_R1", "source"])
    )
    tables = list(dict.fromkeys(results["table"]))
    paths: dict[str, Path] = {}

    finished_count = int((results["status"] == "finished").sum())
    failed = failed_runs(results)
    sections = [
        Section(
            "About this report",
            [
                f"{len(results)} result files under {runs_dir}: {finished_count} finished, {len(failed)} failed, "
                f"diverged, degenerate or excluded (listed at the end, never averaged nor ranked). Confidence "
                f"intervals and paired tests: percentile bootstrap over seeds and queries (a clip's captions "
                f"drawn together where it has several) with B = {resamples} "
                f"resamples, RNG seed {DEFAULT_RNG_SEED}. Paired reference method: {reference_method}. "
                + (
                    "Published rows are copied from papers (their own backbones, training and parameter "
                    "denominators), shown in separate blocks and never ranked."
                    if published
                    else "Published reference rows are excluded."
                ),
            ],
        )
    ]

    summary = summarize_r1(aggregated)
    measured_tables = [t for t in tables if t in set(aggregated.get("table", []))]
    sections.append(Section("Summary across datasets", [
        summary_table(summary, reference_rows, measured_tables) if measured_tables
        else "No run finished, so there is nothing to summarise: every run is listed under \"Runs not ranked\"."]))
    paths["csv:summary"] = out_dir / "summary.csv"
    summary.to_csv(paths["csv:summary"], index=False)
    curves = curve_frame(results)
    if not aggregated.empty:
        published_all = load_published()
        # the section counts methods above zero-shot, whatever the tables are paired against
        against_zero_shot = (comparisons if reference_method == ZERO_SHOT
                             else paired_comparisons(results, ZERO_SHOT, resamples, DEFAULT_RNG_SEED))
        trust = trust_frame(aggregated, against_zero_shot, published_all, resamples)
        trust_items: list = [trust_table(trust, published_all)]
        paths["csv:trust"] = out_dir / "trust.csv"
        trust.to_csv(paths["csv:trust"], index=False)
        gains = training_gain_frame(curves)
        if not gains.empty:
            trust_items.append(training_gain_table(gains))
            paths["csv:training_gain"] = out_dir / "training_gain.csv"
            gains.to_csv(paths["csv:training_gain"], index=False)
        sections.append(Section("How far to trust the offline ranking", trust_items))

    source_numbers: dict[str, int] = {}
    for table in tables:
        measured = aggregated[aggregated["table"] == table] if not aggregated.empty else aggregated
        table_published = reference_rows[reference_rows["table"] == table]
        section = Section(table, [dataset_table(table, measured, table_published, source_numbers)])
        stem = _file_stem(table)
        if not measured.empty:
            png_path, svg_path = out_dir / f"plot_{stem}.png", out_dir / f"plot_{stem}.svg"
            caption = plot_r1_against_params(table, measured, table_published, png_path, svg_path)
            paths[f"png:{table}"], paths[f"svg:{table}"] = png_path, svg_path
            section.items += [
                ReportFigure(png_path, svg_path, caption),
                confidence_table(table, measured, resamples),
                paired_table(table, comparisons[comparisons["table"] == table], reference_method, resamples),
            ]
            if (measured["ci_unit"] == "captions").any():
                section.items.append(
                    "These runs do not record which clip each test caption belongs to (result files written "
                    "before vtrbench recorded it), and their clips have several captions: the intervals and "
                    "paired tests above draw the captions one by one, as if independent, so they are narrower "
                    "than the test set warrants. Run them again (a fresh output.runs_dir) to draw them by clip.")
        sections.append(section)
        paths[f"csv:{table}"] = out_dir / f"table_{stem}.csv"
        table_csv = paper_order(pd.concat([table_published, measured], ignore_index=True))
        table_csv.sort_values("kind", ascending=False, kind="stable").reindex(
            columns=TABLE_CSV_COLUMNS
        ).to_csv(paths[f"csv:{table}"], index=False)

    sections.append(reproducibility_section(results))
    sections.append(tuning_section(runs_dir, out_dir, paths, results))
    sections.append(curves_section(curves, out_dir, paths))
    sections.append(Section("Runs not ranked", [failed_table(failed) if not failed.empty else "None."]))

    paths["csv:paired"] = out_dir / "paired.csv"
    comparisons.to_csv(paths["csv:paired"], index=False)
    paths["csv:runs"] = out_dir / "runs.csv"
    results.drop(columns=["t2v_ranks", "v2t_ranks", "t2v_query_clips", "skipped_test_ids", "val_curve"],
                 errors="ignore").to_csv(paths["csv:runs"], index=False)

    paths["markdown"] = out_dir / "report.md"
    paths["markdown"].write_text(render_markdown(REPORT_TITLE, sections, out_dir), encoding="utf-8")
    paths["latex"] = out_dir / "report.tex"
    paths["latex"].write_text(render_latex(REPORT_TITLE, sections, out_dir), encoding="utf-8")
    paths["html"] = out_dir / "report.html"
    paths["html"].write_text(render_html(REPORT_TITLE, sections), encoding="utf-8")
    paths["markdown:measured"] = out_dir / "measured.md"
    paths["markdown:measured"].write_text(measured_tables_markdown(aggregated) + "\n", encoding="utf-8")
    record_report(out_dir, fingerprint, paths)
    return paths


def refresh_report(runs_dir: str | Path, out_dir: str | Path, reference_method: str = "zero_shot",
                   resamples: int = DEFAULT_RESAMPLES, published: bool = True,
                   defaults: Callable[[str, str], dict[str, Any]] | None = None) -> tuple[dict[str, Path], bool]:
    """``write_report`` unless ``out_dir`` already holds this very report (same inputs, options, code and
    libraries, every file as written: reports/freshness.py); returns its paths and whether it was written."""
    fingerprint = report_fingerprint(runs_dir, reference_method, resamples, published)
    existing = current_report(out_dir, fingerprint)
    if existing is not None:
        return existing, False
    return _write_report(runs_dir, out_dir, reference_method, resamples, published, fingerprint,
                         defaults=defaults), True


def reproducibility_section(results: pd.DataFrame) -> Section:
    """Per table, what its finished runs share (processes, batch, GPUs, precision, versions, post-processing)
    and where they differ, run by run: the usual reasons a number does not reproduce."""
    finished = results[results["status"] == "finished"]
    items: list = ["Recorded by every run (reproducibility and versions, in result.json). A difference in "
                   "processes, batch or precision changes what was trained, not only how fast; one in a library's "
                   "version can change what it computes."]
    for table in dict.fromkeys(finished["table"]):
        rows = finished[finished["table"] == table]
        shared, differing = [], []
        for key in REPRODUCIBILITY_KEYS:
            values = rows[f"repro_{key}"]
            if (values == "unrecorded").all():  # written before vtrbench recorded it: nothing to say
                continue
            if values.nunique() == 1:
                shared.append(f"{key} {values.iloc[0]}")
                continue
            groups = [f"{value}: " + ", ".join(
                f"{r.method}{'.' + r.variant if r.variant else ''} seed{r.seed}" for r in rows[values == value]
                .itertuples(index=False)) for value in dict.fromkeys(values)]
            differing.append(f"{key} DIFFERS ({'; '.join(groups)})")
        parts = (["; ".join(differing)] if differing else []) + \
            ([("shared: " if differing else "every run shares ") + ", ".join(shared)] if shared else [])
        if parts:  # files written before the record existed have nothing to say
            items.append(f"{table}: " + ". ".join(parts) + ".")
    return Section("Reproducibility", items)


def tuning_section(runs_dir: Path, out_dir: Path, paths: dict[str, Path], results: pd.DataFrame) -> Section:
    """Every `vtrbench tune` search under the runs directory: space, trials, scores, choice and budget; the
    tested methods without a search are named."""
    records = load_tuning_records(runs_dir)
    if not records:
        return Section("Tuning", [
            f"No tuning record under {runs_dir}: the settings of these runs come from their configs, a rule of "
            "the run's preset where one matches (the shipped presets name the search or paper behind each rule), "
            "else the method's yaml and base.yaml; each run's resolved config is saved beside its result "
            "(config.yaml). vtrbench tune, or vtrbench leaderboard tune=true, chooses them on the val split and "
            "records the search here."
        ])
    paths["csv:tuning"] = out_dir / "tuning.csv"
    tuning_frame(records).to_csv(paths["csv:tuning"], index=False)
    intro = (
        "Each method's settings were searched on the val split with the same budget: the same number of "
        "trials over the space its yaml declares, the same epochs, the same selection metric. The winner "
        "became the run's setting. No trial reads the test split."
    )
    searched = {(r["dataset"], r["method"], r.get("variant", "")) for r in records}
    tested = results[["dataset", "method", "variant"]].drop_duplicates().itertuples(index=False)
    unsearched = sorted(f"{method_label(m, v)} on {d}" for d, m, v in tested if (d, m, v) not in searched)
    items: list = [intro, *tuning_tables(records)]
    if unsearched:
        items.append("Tested without a search here (their settings come from their configs; a method that "
                     "trains nothing has nothing to tune): " + ", ".join(unsearched) + ".")
    return Section("Tuning", items)


def curves_section(curves: pd.DataFrame, out_dir: Path, paths: dict[str, Path]) -> Section:
    """Val R@1 against training steps for every method (`curve_frame`), one figure per dataset table."""
    if curves.empty:
        return Section("Learning curves (val split)", ["No result file holds a learning curve (train.val_curve)."])
    paths["csv:curves"] = out_dir / "curves.csv"
    curves.to_csv(paths["csv:curves"], index=False)
    items: list = []
    for table in dict.fromkeys(curves["table"]):
        stem = _file_stem(table)
        png_path, svg_path = out_dir / f"curves_{stem}.png", out_dir / f"curves_{stem}.svg"
        caption = plot_val_curves(table, curves[curves["table"] == table], png_path, svg_path)
        paths[f"png:curves {table}"], paths[f"svg:curves {table}"] = png_path, svg_path
        items.append(ReportFigure(png_path, svg_path, caption))
    return Section("Learning curves (val split)", items)


def measured_tables_markdown(aggregated: pd.DataFrame) -> str:
    """The measured rows of every dataset's table as Markdown, for a terminal (no published rows)."""
    if aggregated.empty:
        return "no finished run"
    no_published = pd.DataFrame(columns=["table", "tuned", "t2v_R1", "source"])
    blocks = []
    for table in dict.fromkeys(aggregated["table"]):
        measured = aggregated[aggregated["table"] == table]
        blocks.append(markdown_table(dataset_table(table, measured, no_published, {})))
    return "\n\n".join(blocks)
