import re
import shutil

import pandas as pd
import pytest

from vtrbench.reports import write_report
from vtrbench.reports.aggregate import load_published
from vtrbench.reports.tables import format_params


@pytest.fixture(scope="module")
def runs_dir(run_writers, make_ranks, tmp_path_factory):
    """msrvtt: zero_shot, dgl.linear (2 seeds), full_finetune, a failed lora; vatex: zero_shot and dgl."""
    runs_dir = tmp_path_factory.mktemp("shared") / "runs"
    write_run, write_failed_run = run_writers
    write_run(runs_dir, "full_finetune", make_ranks(200, 120), tuned=1_000_000)
    write_run(runs_dir, "zero_shot", make_ranks(200, 40), tuned=0)
    write_run(runs_dir, "dgl", make_ranks(200, 100), variant="linear", tuned=5_500, seed=0)
    write_run(runs_dir, "dgl", make_ranks(200, 110), variant="linear", tuned=5_500, seed=1)
    write_run(runs_dir, "dgl", make_ranks(200, 100), variant="linear", tuned=5_500, seed=2, dataset="vatex")
    write_run(runs_dir, "zero_shot", make_ranks(200, 40), dataset="vatex", seed=2)
    write_failed_run(runs_dir, "lora", "CUDA out of memory", seed=0)
    return runs_dir


@pytest.fixture(scope="module")
def report(runs_dir):
    """The report of ``runs_dir``, written once for the module (plots are the slow part)."""
    return write_report(runs_dir, runs_dir.parent / "report", resamples=400)


def _measured_lines(markdown: str, table: str) -> list[str]:
    """The rows of the measured block of one dataset table in the Markdown report."""
    section = markdown.split(f"## {table}\n", 1)[1]
    block = section.split("*Measured (this benchmark)*", 1)[1].split("<sub>", 1)[0]
    return [
        line
        for line in block.splitlines()
        if line.startswith("| ")
        and "**" not in line
        and not line.startswith("| ---")
        and "Text→Video" not in line
    ]


def test_writes_every_output(report):
    expected = {
        "markdown",
        "latex",
        "html",
        "csv:summary",
        "csv:paired",
        "csv:runs",
        "csv:msrvtt",
        "csv:vatex",
        "png:msrvtt",
        "svg:msrvtt",
        "png:vatex",
        "svg:vatex",
    }
    assert expected <= set(report)
    for path in report.values():
        assert path.is_file() and path.stat().st_size > 0
    assert report["png:msrvtt"].read_bytes().startswith(b"\x89PNG")
    assert "<svg" in report["svg:msrvtt"].read_text()


def test_write_report_prints_nothing(runs_dir, tmp_path, capsys):
    write_report(runs_dir, tmp_path / "quiet", resamples=50)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_dataset_table_rows_order_and_formats(report):
    markdown = report["markdown"].read_text()
    rows = _measured_lines(markdown, "msrvtt")

    assert [row.split(" | ")[0].strip("| ") for row in rows] == ["zero_shot", "dgl", "full_finetune"]
    dgl = rows[1].split(" | ")
    assert dgl[1] == "linear" and dgl[3] == "2"
    assert dgl[4] == "0.0055M (0.55%)"
    # R@1 over the two seeds: 50.0 and 55.0 -> mean 52.5, sample std 3.5; MdR keeps one decimal.
    assert dgl[5] == "52.5 ± 3.5"
    assert re.fullmatch(r"\d+\.\d ± \d+\.\d", dgl[8])  # MdR
    zero_shot = rows[0].split(" | ")
    assert zero_shot[4] == "0M (0.00%)" and zero_shot[5] == "20.0"
    for group in ("Text→Video", "Video→Text"):
        assert group in markdown
    assert "**R@1** | **R@5** | **R@10** | **MdR** | **MnR**" in markdown


def test_mean_and_std_over_seeds_in_csv(report):
    table = pd.read_csv(report["csv:msrvtt"], keep_default_na=False, na_values=[""])
    dgl = table[(table["kind"] == "measured") & (table["method"] == "dgl")].iloc[0]
    assert dgl["seeds"] == 2 and dgl["t2v_R1"] == pytest.approx(52.5)
    assert dgl["t2v_R1_std"] == pytest.approx(pd.Series([50.0, 55.0]).std())
    assert dgl["t2v_R1_ci_low"] < dgl["t2v_R1"] < dgl["t2v_R1_ci_high"]


def test_failed_runs_are_listed_and_never_averaged(report):
    markdown = report["markdown"].read_text()
    failed_section = markdown.split("## Runs not ranked", 1)[1]
    assert "lora" in failed_section and "CUDA out of memory" in failed_section
    assert all("lora" not in row for row in _measured_lines(markdown, "msrvtt"))
    table = pd.read_csv(report["csv:msrvtt"])
    assert "lora" not in set(table["method"])


def test_published_rows_are_marked_separate_and_unranked(report):
    markdown = report["markdown"].read_text()
    section = markdown.split("## msrvtt\n", 1)[1].split("## ", 1)[0]
    published_block, measured_block = section.split("*Measured (this benchmark)*", 1)
    measured_block = measured_block.split("![", 1)[0]  # the table, not the figure's caption that names them
    assert "*Published (reference numbers copied from papers, not measured here)*" in published_block
    assert "cross_modal_adapter" in published_block and "45.4" in published_block
    assert "cross_modal_adapter" not in measured_block
    assert "Cross-Modal Adapter Table 4" in section  # sources are cited

    summary = pd.read_csv(report["csv:summary"])
    assert set(summary["method"]) == {"zero_shot", "dgl", "full_finetune"}
    table = pd.read_csv(report["csv:msrvtt"])
    assert table["kind"].iloc[0] == "published"
    assert table.loc[table["kind"] == "published", "source"].notna().all()
    # lsmdc and activitynet have no runs, so their published rows are not shown.
    assert "lsmdc" not in markdown and "activitynet" not in markdown


def test_published_rows_can_be_excluded(runs_dir, tmp_path):
    paths = write_report(runs_dir, tmp_path / "no_published", resamples=50, published=False)
    markdown = paths["markdown"].read_text()
    assert "Published (reference" not in markdown and "cross_modal_adapter" not in markdown


def test_summary_mean_rank(report):
    summary = pd.read_csv(report["csv:summary"]).set_index("method")
    # msrvtt: full_finetune 60.0 > dgl 52.5 > zero_shot 20.0; vatex: dgl 50.0 > zero_shot 20.0.
    assert summary.loc["full_finetune", "mean_rank"] == 1.0
    assert summary.loc["dgl", "mean_rank"] == 1.5 and summary.loc["dgl", "tables"] == 2
    assert summary.loc["zero_shot", "mean_rank"] == 2.5
    assert "Summary: Text→Video R@1" in report["markdown"].read_text()


def test_paired_comparison_against_the_reference(report):
    paired = pd.read_csv(report["csv:paired"], keep_default_na=False, na_values=[""])
    msrvtt = paired[paired["dataset"] == "msrvtt"].set_index("method")
    # zero_shot ran seed 0 only: each of dgl's two seeds pairs with it, (50.0 + 55.0) / 2 - 20.0; before,
    # only seed 0 was kept and dgl's seed 1 silently left out of the test
    assert (
        msrvtt.loc["dgl", "difference"] == pytest.approx(32.5) and str(msrvtt.loc["dgl", "seed_list"]) == "0 1"
    )
    assert msrvtt.loc["dgl", "significant"] in (True, "True")
    assert (paired["resamples"] == 400).all()
    markdown = report["markdown"].read_text()
    assert "B = 400 paired resamples" in markdown
    # the verdict says its direction: a method significantly worse than the reference is not a plain "yes"
    assert re.search(r"\| dgl \| linear \| vtrbench-tiny \| 2 \| \+32\.5 \| [^|]+ \| [^|]+ \| yes, above \|", markdown)


def test_another_reference_and_a_refused_pairing(run_writers, make_ranks, runs_dir, tmp_path):
    own_runs = tmp_path / "runs"
    shutil.copytree(runs_dir, own_runs)
    run_writers[0](own_runs, "bitfit", make_ranks(150, 60), tuned=900)
    paths = write_report(own_runs, tmp_path / "vs_dgl", reference_method="dgl.linear", resamples=100)
    paired = pd.read_csv(paths["csv:paired"], keep_default_na=False, na_values=[""])
    msrvtt = paired[paired["dataset"] == "msrvtt"].set_index("method")
    assert "zero_shot" in msrvtt.index and "dgl" not in msrvtt.index
    assert "different query counts (150 vs 200)" in msrvtt.loc["bitfit", "note"]
    assert "not paired: cannot pair runs with different query counts" in paths["markdown"].read_text()


@pytest.mark.parametrize("reference", ["dlg", "dgl.transformer"])
def test_a_reference_named_but_not_among_the_runs_is_an_error(runs_dir, tmp_path, reference):
    # before, a typo gave a whole report of "not paired: no finished run of reference 'dlg'"
    with pytest.raises(ValueError, match=rf"reference method '{re.escape(reference)}': no result under .* "
                                         r"\(there: dgl.linear, full_finetune, lora, zero_shot\)"):
        write_report(runs_dir, tmp_path / "report", reference_method=reference, resamples=10)
    assert not (tmp_path / "report").exists()


def test_without_zero_shot_the_default_reference_is_noted_not_an_error(run_writers, make_ranks, tmp_path):
    run_writers[0](tmp_path / "runs", "bitfit", make_ranks(50, 20), tuned=900)
    paths = write_report(tmp_path / "runs", tmp_path / "report", resamples=10)
    assert "no finished run of reference 'zero_shot'" in paths["markdown"].read_text()


def test_an_output_path_that_is_a_file_is_named(runs_dir, tmp_path):
    (tmp_path / "report").write_text("notes")
    with pytest.raises(ValueError, match=r"report: is a file; the report is written into a folder"):
        write_report(runs_dir, tmp_path / "report", resamples=10)
    assert (tmp_path / "report").read_text() == "notes"


def test_latex_uses_booktabs_and_escapes(report):
    latex = report["latex"].read_text()
    for rule in (r"\toprule", r"\midrule", r"\bottomrule", r"\usepackage{booktabs}"):
        assert rule in latex
    assert r"zero\_shot" in latex and r"full\_finetune" in latex
    assert r"(0.55\%)" in latex
    assert not re.search(r"(?<!\\)_", latex.replace(r"\_", "").replace("plot_", ""))
    assert r"Text$\rightarrow$Video" in latex and r"$\pm$" in latex


def test_html_is_self_contained(report):
    page = report["html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    assert 'src="http' not in page and 'href="http' not in page
    assert "<script" not in page and "<link" not in page
    assert page.count('src="data:image/png;base64,') == 2
    assert "Published (reference" in page and "lora" in page


def test_report_is_deterministic(runs_dir, report, tmp_path):
    first = report
    second = write_report(runs_dir, tmp_path / "again", resamples=400)
    assert first["markdown"].read_text() == second["markdown"].read_text()
    assert first["csv:paired"].read_text() == second["csv:paired"].read_text()


def test_only_failed_runs_still_give_a_report(write_failed_run, tmp_path):
    write_failed_run("dgl", "diverged")
    paths = write_report(tmp_path / "runs", tmp_path / "report", resamples=10)
    assert "diverged" in paths["markdown"].read_text()


def test_packaged_published_rows_keep_their_source():
    published = load_published(["msrvtt"])
    assert set(published["dataset"]) == {"msrvtt"} and published["source"].notna().all()
    assert published["method"].iloc[0] == "zero_shot"
    dgl = published[(published["method"] == "dgl") & (published["variant"] == "linear")].iloc[0]
    assert format_params(dgl["tuned"], dgl["tuned_pct"]) == "0.83M (0.67%)"


def test_the_report_shows_where_runs_of_a_table_differ_in_how_they_ran(write_run, tmp_path):
    from tests.reports.conftest import result_record, write_record

    shared = {"processes": 1, "batch_per_process": 32, "global_batch": 32, "gpu_model": "NVIDIA H100",
              "gpu_count": 1, "precision": "bf16 autocast", "torch": "2.4.0", "cuda": "12.1", "open_clip": "2.24.0",
              "post_processing": "none"}
    runs = tmp_path / "runs"
    random = {"pretrained": "random"}  # four queries cannot rank better than chance; a random backbone is exempt
    write_record(runs, {**result_record("zero_shot", [1, 2, 3, 20], **random), "reproducibility": shared})
    write_record(runs, {**result_record("dgl", [1, 1, 3, 20], **random), "reproducibility": {
        **shared, "processes": 8, "batch_per_process": 16, "global_batch": 128, "gpu_count": 8}})
    write_run("lora", [1, 2, 2, 20], **random)  # written before the record existed
    markdown = write_report(tmp_path / "runs", tmp_path / "report", resamples=10)["markdown"].read_text()
    section = markdown.split("## Reproducibility", 1)[1].split("\n## ", 1)[0]
    assert "processes DIFFERS (8: dgl seed0; unrecorded: lora seed0; 1: zero_shot seed0)" in section
    assert "global_batch DIFFERS (128: dgl seed0; unrecorded: lora seed0; 32: zero_shot seed0)" in section
    assert "post_processing DIFFERS (none: dgl seed0, zero_shot seed0; unrecorded: lora seed0)" in section
    assert "shared:" not in section  # nothing is shared with a run that recorded nothing


def test_a_significantly_worse_method_reads_below(tmp_path, write_run, make_ranks):
    write_run("zero_shot", make_ranks(1000, 300))
    write_run("dgl", make_ranks(1000, 200), tuned=5_000)
    markdown = write_report(tmp_path / "runs", tmp_path / "report", resamples=200)["markdown"].read_text()
    assert re.search(r"\| dgl \|  \| vtrbench-tiny \| 1 \| -10\.0 \| [^|]+ \| [^|]+ \| yes, below \|", markdown)


def test_the_summary_says_when_a_cell_stands_on_fewer_seeds(write_run, write_failed_run, make_ranks, tmp_path):
    for seed in range(3):
        write_run("zero_shot", make_ranks(200, 30), seed=seed)
        write_run("lora", make_ranks(200, 60 + seed), seed=seed, tuned=100)
    write_run("dgl", make_ranks(200, 90), tuned=10)
    for seed in (1, 2):
        write_failed_run("dgl", "diverged at step 3", seed=seed)
    markdown = write_report(tmp_path / "runs", tmp_path / "report", resamples=10)["markdown"].read_text()
    summary = markdown.split("**Summary: Text→Video R@1", 1)[1].split("\n\n<sub>", 1)[0]
    assert "| dgl |  | vtrbench-tiny | 45.0 (1), 1 of 3 seeds |" in summary
    assert "| lora |  | vtrbench-tiny | 30.5 (2) |" in summary  # a cell of every seed says nothing more


def test_datasets_come_in_the_fields_order_then_by_name(write_run, make_ranks, tmp_path):
    for dataset in ("activitynet", "aaa_custom", "msrvtt", "lsmdc", "vatex"):
        write_run("zero_shot", make_ranks(200, 40), dataset=dataset)
    markdown = write_report(tmp_path / "runs", tmp_path / "report", resamples=10)["markdown"].read_text()
    sections = re.findall(r"^## (\w+)$", markdown, flags=re.MULTILINE)
    assert [s for s in sections if s in {"activitynet", "aaa_custom", "msrvtt", "lsmdc", "vatex"}] == [
        "msrvtt", "vatex", "lsmdc", "activitynet", "aaa_custom"]
    summary = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert [c for c in summary.columns if c.startswith("R1 ")] == [
        "R1 msrvtt", "R1 vatex", "R1 lsmdc", "R1 activitynet", "R1 aaa_custom"]


def test_the_report_shows_runs_of_one_table_computed_with_another_peft(write_run, tmp_path):
    """peft 0.21 and 0.22 compute LoRA differently (docs/methods.md, "lora"); result.json keeps the version in
    its `versions` record, which the report had not read."""
    from tests.reports.conftest import result_record, write_record

    runs = tmp_path / "runs"
    random = {"pretrained": "random"}
    for seed, peft in enumerate(("0.21.0", "0.22.0", "0.22.0")):
        write_record(runs, {**result_record("lora", [1, 2, 3, 20], seed=seed, **random),
                            "versions": {"vtrbench": "0.1.0", "peft": peft, "numpy": "2.4.6"}})
    markdown = write_report(runs, tmp_path / "report", resamples=10)["markdown"].read_text()
    section = markdown.split("## Reproducibility", 1)[1].split("\n## ", 1)[0]
    assert "peft DIFFERS (0.21.0: lora seed0; 0.22.0: lora seed1, lora seed2)" in section
    assert "numpy 2.4.6" in section and "decord" not in section  # recorded by none of them


def test_a_report_of_runs_that_all_failed_has_no_empty_summary_table(tmp_path, write_failed_run):
    # found in review: the summary's dataset group spanned 0 columns, so Markdown rows differed in length and
    # the LaTeX table had more cells than columns
    write_failed_run("zero_shot", "boom")
    write_failed_run("lora", "out of memory")
    paths = write_report(tmp_path / "runs", tmp_path / "report", resamples=10)
    assert "No run finished, so there is nothing to summarise" in paths["markdown"].read_text()
    assert "multicolumn{0}" not in paths["latex"].read_text() and 'colspan="0"' not in paths["html"].read_text()


def test_a_bootstrap_of_very_few_resamples_still_draws_its_figure(tmp_path, write_run, make_ranks):
    # found in review: with B below 5 the percentile interval need not hold the mean, and a negative error bar
    # stopped the whole report
    for seed, hits in enumerate((8, 14, 20)):
        write_run("zero_shot", make_ranks(40, hits), seed=seed)
        write_run("lora", make_ranks(40, hits + 6), seed=seed, tuned=10)
    for resamples in (1, 2):
        paths = write_report(tmp_path / "runs", tmp_path / f"report{resamples}", resamples=resamples)
        assert paths["png:msrvtt"].stat().st_size > 0
