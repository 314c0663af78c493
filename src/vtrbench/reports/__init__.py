"""Reports: read ``result.json`` files and write the comparison tables, plots and significance tests.

Imports nothing of training (no torch, no runner, methods or datasets): a report can be built on any machine
that has the result files.
"""

from vtrbench.reports.aggregate import (
    aggregate_runs,
    failed_runs,
    load_published,
    paired_comparisons,
    summarize_r1,
)
from vtrbench.reports.bootstrap import (
    PairedComparison,
    RecallInterval,
    bootstrap_recalls,
    paired_bootstrap,
    recall_intervals,
)
from vtrbench.reports.report import measured_tables_markdown, refresh_report, write_report
from vtrbench.reports.result_table import ResultFileError, load_results

__all__ = [
    "PairedComparison",
    "RecallInterval",
    "ResultFileError",
    "aggregate_runs",
    "bootstrap_recalls",
    "failed_runs",
    "load_published",
    "load_results",
    "measured_tables_markdown",
    "paired_bootstrap",
    "paired_comparisons",
    "recall_intervals",
    "refresh_report",
    "summarize_r1",
    "write_report",
]
