"""A run measured on fewer test clips says so wherever its numbers appear."""

import pandas as pd

from vtrbench.benchmark.launchers import summary_line
from vtrbench.reports import write_report
from vtrbench.reports.result_table import load_results


def test_skipped_test_clips_are_counted_and_shown(write_run, make_ranks, tmp_path):
    from tests.reports.conftest import result_record, write_record

    write_run("zero_shot", make_ranks(40, 8))
    record = result_record("dgl", make_ranks(38, 12), tuned=10)
    record["skipped"] = {"train": {"t1": "missing video file"},
                         "test": {"v1": "missing video file", "v2": "cannot decode at evaluation: broken"},
                         "train_decode_failures": 0}
    write_record(tmp_path / "runs", record)

    results = load_results(tmp_path / "runs")
    assert dict(zip(results["method"], results["skipped_test"], strict=True)) == {"dgl": 2, "zero_shot": 0}
    paths = write_report(tmp_path / "runs", tmp_path / "report", resamples=20, published=False)
    runs_csv = pd.read_csv(paths["csv:runs"])
    assert runs_csv.set_index("method").loc["dgl", "skipped_test"] == 2
    assert "smaller test set than the others: dgl: 2." in paths["markdown"].read_text()
    assert "smaller test set" in paths["html"].read_text()
    assert summary_line(record).endswith("on a smaller test set: 2 test clip(s) skipped")
