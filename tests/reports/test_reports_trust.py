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
