"""The paired table counts the paired seeds; runs.csv names how each run's peak memory was measured."""

import pandas as pd

from vtrbench.reports import write_report


def test_paired_seeds_is_a_count_and_memory_names_its_measure(write_run, make_ranks, tmp_path):
    for seed in (3, 5):
        write_run("zero_shot", make_ranks(60, 10), seed=seed)
        write_run("dgl", make_ranks(60, 30), seed=seed, tuned=10)
    paths = write_report(tmp_path / "runs", tmp_path / "report", resamples=20, published=False)
    markdown = paths["markdown"].read_text()
    paired = markdown.split("paired bootstrap against zero_shot", 1)[1]
    row = next(line for line in paired.splitlines() if line.startswith("| dgl"))
    assert row.split(" | ")[3] == "2"  # two paired seeds, not the list "3 5"
    runs = pd.read_csv(paths["csv:runs"])
    assert set(runs["peak_memory_measure"]) == {"process_peak_rss"}  # files without `memory` say so
    assert "Peak mem. = the run's own peak" in markdown
