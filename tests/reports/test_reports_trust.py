"""The report's "How far to trust the offline ranking": zero-shot / full fine-tuning ratio, how many methods
are significantly above zero-shot, and Spearman's rho against the published MSR-VTT ViT-B/32 R@1."""

import numpy as np
import pandas as pd
import pytest

from vtrbench.reports import write_report
from vtrbench.reports.trust import spearman, spearman_interval


def test_spearman_matches_a_hand_computed_value():
    assert spearman(np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 20.0, 30.0, 40.0])) == pytest.approx(1.0)
    assert spearman(np.array([1.0, 2.0, 3.0, 4.0]), np.array([40.0, 30.0, 20.0, 10.0])) == pytest.approx(-1.0)
    # ranks (1, 2, 3, 4) against (2, 1, 4, 3): 1 - 6 * 4 / (4 * 15) = 0.6
    assert spearman(np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 1.0, 4.0, 3.0])) == pytest.approx(0.6)
    assert np.isnan(spearman(np.array([1.0, 1.0, 1.0]), np.array([1.0, 2.0, 3.0])))
    low, high = spearman_interval(np.arange(8.0), np.arange(8.0) + np.array([0, 3, -1, 2, 0, 1, -2, 1]))
    assert -1 <= low <= high <= 1


def test_report_has_the_trust_section(tmp_path, write_run, make_ranks):
    # Same ordering as the published MSR-VTT ViT-B/32 rows of these methods (31.2 < 39.7 < 43.1 < 44.7).
    hits = {"zero_shot": 200, "bitfit": 260, "full_finetune": 330, "dgl": 340}
    for method, count in hits.items():
        write_run(method, make_ranks(1000, count))

    paths = write_report(tmp_path / "runs", tmp_path / "report")

    trust = pd.read_csv(paths["csv:trust"])
    [row] = trust.to_dict("records")
    assert row["zero_shot_r1"] == pytest.approx(20.0) and row["full_finetune_r1"] == pytest.approx(33.0)
    assert row["ratio"] == pytest.approx(20.0 / 33.0)
    assert row["trained"] == 3 and row["significant_above"] == 3
    assert row["spearman"] == pytest.approx(1.0)
    assert row["matched_methods"] == "bitfit dgl full_finetune zero_shot"
    markdown = paths["markdown"].read_text()
    assert "How far to trust the offline ranking" in markdown and "31.2 / 43.1 = 0.72" in markdown
    # Its numbers are aligned as numbers: only the dataset and backbone columns are text.
    html = paths["html"].read_text()
    trust_html = html[html.index("zero-shot against full fine-tuning"):]
    header = trust_html[:trust_html.index("</tr>")]
    assert '<th class="label">Table</th>' in header and '<th class="label">Backbone</th>' in header
    assert "<th>Zero-shot R@1</th>" in header
    latex = paths["latex"].read_text()
    assert r"\begin{tabular}{llrrrrrr}" in latex[latex.index("zero-shot against full fine-tuning"):]


def test_the_trust_section_counts_against_zero_shot_whatever_the_reference(tmp_path, write_run, make_ranks):
    # found in review: with --reference full_finetune it counted the methods above full fine-tuning
    for method, count in {"zero_shot": 200, "bitfit": 260, "full_finetune": 330, "dgl": 340}.items():
        write_run(method, make_ranks(1000, count))

    paths = write_report(tmp_path / "runs", tmp_path / "report", reference_method="full_finetune")

    [row] = pd.read_csv(paths["csv:trust"]).to_dict("records")
    assert row["trained"] == 3 and row["significant_above"] == 3
    assert set(pd.read_csv(paths["csv:paired"])["reference"]) == {"full_finetune"}


def test_the_trust_section_shows_what_training_changed_on_val(tmp_path, make_ranks):
    """Before and after training, on val: a method whose tensors never moved reads +0.0 even where it
    ranks like the others on test; one that starts low and learns shows its rise."""
    from tests.reports.conftest import result_record, write_record

    def curve(r1_values):
        return [{"epoch": epoch, "step": 10 * epoch, "metrics": {"t2v": {"R1": r1}, "v2t": {"R1": r1}, "rsum": r1}}
                for epoch, r1 in enumerate(r1_values)]

    runs = tmp_path / "runs"
    write_record(runs, {**result_record("zero_shot", make_ranks(1000, 200)), "val_curve": curve([30.0])})
    for seed, rise in ((0, [2.0, 12.0, 20.0]), (1, [4.0, 9.0, 16.0])):  # a random start, then learns
        write_record(runs, {**result_record("dgl", make_ranks(1000, 190), seed=seed, tuned=5_000),
                            "val_curve": curve(rise)})
    write_record(runs, {**result_record("lora", make_ranks(1000, 200), tuned=9_000),  # never moved
                        "val_curve": curve([30.0, 30.0, 30.0])})

    paths = write_report(runs, tmp_path / "report", resamples=50)

    gains = pd.read_csv(paths["csv:training_gain"], keep_default_na=False).set_index("method")
    assert set(gains.index) == {"dgl", "lora"}  # zero-shot trains nothing
    assert gains.loc["dgl", ["before", "after", "gain", "gain_min", "seeds_up", "seeds", "steps"]].tolist() == [
        3.0, 18.0, 15.0, 12.0, 2, 2, 20]
    assert gains.loc["lora", ["gain", "seeds_up"]].tolist() == [0.0, 0]
    markdown = paths["markdown"].read_text()
    section = markdown.split("## How far to trust the offline ranking", 1)[1].split("\n## ", 1)[0]
    assert "| dgl |  | vtrbench-tiny | 3.0 → 18.0 (+15.0) |" in section
    assert "| lora |  | vtrbench-tiny | 30.0 → 30.0 (+0.0) |" in section


def test_nothing_tested_is_not_counted_as_none_above_zero_shot(tmp_path, write_run, make_ranks):
    # found in review: with no zero-shot run the section read "0 of 1", a finding that was never measured
    write_run("lora", make_ranks(1000, 300), tuned=10)
    paths = write_report(tmp_path / "runs", tmp_path / "report")
    [row] = pd.read_csv(paths["csv:trust"]).to_dict("records")
    assert row["trained"] == 0 and row["significant_above"] == 0
    assert "0 of 1" not in paths["markdown"].read_text()
