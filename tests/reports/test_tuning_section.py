"""The report's Tuning section and learning curves, from tuning.json records and result files' val_curve."""

import json
import re

import pandas as pd
import pytest
from tests.reports.conftest import result_record, write_record

from vtrbench.reports import load_results, write_report


def curve(r1_values, steps_per_epoch=10):
    return [{"epoch": epoch, "step": epoch * steps_per_epoch,
             "metrics": {"t2v": {"R1": r1}, "v2t": {"R1": r1 / 2}, "rsum": 3 * r1}}
            for epoch, r1 in enumerate(r1_values)]


def tuning_record(method, scores, chosen, at_edge=()):
    values = [0.001, 0.01, 0.1][: len(scores)]
    return {
        "schema": 1, "kind": "tuning", "method": method, "variant": "", "dataset": "msrvtt",
        "backbone": "vtrbench-tiny", "seed": 0, "command": f"vtrbench tune method={method} dataset=msrvtt",
        "split": "val", "val": {"source": "MSRVTT_val.full.csv (official val file, val_csv)", "clips": 250},
        "metric": "rsum", "trials_budget": 3, "epochs": 1,
        "space": [{"key": "train.lr", "log_range": [0.001, 0.1]}],
        "trials": [{"trial": k, "settings": {"train.lr": v}, "status": "finished", "score": s}
                   for k, (v, s) in enumerate(zip(values, scores, strict=True), 1)],
        "chosen": {"trial": chosen, "settings": {"train.lr": values[chosen - 1]}, "score": scores[chosen - 1]},
        "at_edge": list(at_edge),
    }


@pytest.fixture(scope="module")
def report(make_ranks, tmp_path_factory):
    runs = tmp_path_factory.mktemp("tuned") / "runs"
    for seed, rises in ((0, [5.0, 9.0, 12.0]), (1, [5.0, 8.0, 10.0])):
        record = result_record("dgl", make_ranks(100, 30), seed=seed, tuned=5_000)
        write_record(runs, {**record, "val_curve": curve(rises)})
    write_record(runs, {**result_record("zero_shot", make_ranks(100, 10)), "val_curve": curve([6.0])})
    write_record(runs, {**result_record("lora", make_ranks(100, 20), tuned=9_000), "val_curve": curve([6.0, 7.0])})
    for method, scores, chosen, edge in (("dgl", [100.0, 140.0, 120.0], 2, ()),
                                         ("lora", [90.0, 95.0, 99.0], 3, ["train.lr=0.1 is the top of its range"])):
        path = runs / "msrvtt/vtrbench-tiny" / method / "tuning/seed0/tuning.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(tuning_record(method, scores, chosen, edge)))
        # a trial's own result: scored on val, it must never reach the test tables
        trial = {**result_record(method, make_ranks(100, 90)), "split": "val", "trial": "train.lr-0.001"}
        (path.parent / "train.lr-0.001").mkdir()
        (path.parent / "train.lr-0.001" / "result.json").write_text(json.dumps(trial))
    return write_report(runs, runs.parent / "report", resamples=50)


def test_trials_never_enter_the_test_tables(report):
    results = load_results(report["markdown"].parent.parent / "runs")
    assert set(results["split"]) == {"test"} and len(results) == 4
    markdown = report["markdown"].read_text()
    assert "msrvtt (val)" not in markdown and "90.0" not in markdown.split("## Tuning")[0]


def test_the_tuning_section_shows_space_trials_choice_and_budget(report):
    markdown = report["markdown"].read_text()
    section = markdown.split("## Tuning", 1)[1].split("## Learning curves", 1)[0]
    dgl = next(line for line in section.splitlines() if line.startswith("| dgl |"))
    assert "train.lr 0.001–0.1 (log)" in dgl
    # the chosen trial's mark is a literal asterisk: escaped, so Markdown shows it instead of emphasis
    assert r"| 0.001: 100.0 | 0.01: 140.0 \* | 0.1: 120.0 | 0.01 | no | 3/3 | 1 |" in dgl
    lora = next(line for line in section.splitlines() if line.startswith("| lora |"))
    assert r"0.1: 99.0 \*" in lora and "| yes |" in lora
    assert "Budget: the same for every method here: 3 trials, metric rsum, 1 epoch(s) each." in section
    assert "Chosen at the edge of the range" in section and "lora: train.lr=0.1 is the top" in section
    assert "zero_shot on msrvtt" in section  # tested, never searched
    trials = pd.read_csv(report["csv:tuning"])
    assert len(trials) == 6 and trials["chosen"].sum() == 2
    assert set(trials.loc[trials["chosen"], "score"]) == {140.0, 99.0}


def test_unequal_budgets_are_called_out(tmp_path, make_ranks):
    runs = tmp_path / "runs"
    write_record(runs, result_record("dgl", make_ranks(100, 30)))
    for method, budget in (("dgl", 3), ("lora", 2)):
        record = tuning_record(method, [1.0, 2.0, 3.0][:budget], 1)
        path = runs / "msrvtt/vtrbench-tiny" / method / "tuning/seed0/tuning.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({**record, "trials_budget": budget}))
    markdown = write_report(runs, tmp_path / "report", resamples=20)["markdown"].read_text()
    assert "UNEQUAL BUDGETS: 2 trials, metric rsum, 1 epoch(s) each; 3 trials" in markdown


def test_learning_curves_are_plotted_per_dataset_with_their_points(report):
    curves = pd.read_csv(report["csv:curves"])
    dgl = curves[curves["method"] == "dgl"]
    assert sorted(dgl["seed"].unique()) == [0, 1] and list(dgl[dgl["seed"] == 0]["step"]) == [0, 10, 20]
    assert list(dgl[dgl["seed"] == 0]["t2v_R1"]) == [5.0, 9.0, 12.0]
    assert report["png:curves msrvtt"].read_bytes().startswith(b"\x89PNG")
    assert "<svg" in report["svg:curves msrvtt"].read_text()
    markdown = report["markdown"].read_text()
    assert "## Learning curves (val split)" in markdown and "![msrvtt: Text→Video R@1 on the val split" in markdown
    html = report["html"].read_text()
    assert re.search(r'<h2 id="s\d+">Tuning</h2>', html) and re.search(r'<h2 id="s\d+">Learning curves', html)
    assert re.search(r'<li><a href="#s\d+">Tuning</a></li>', html)  # the page's list of sections links to it
    assert html.count("data:image/png;base64,") == 2  # the parameter plot and the curves
    latex = report["latex"].read_text()
    assert r"\subsection*{Tuning}" in latex and "curves_msrvtt.png" in latex


def test_without_records_the_section_says_where_settings_come_from(tmp_path, make_ranks):
    runs = tmp_path / "runs"
    write_record(runs, result_record("dgl", make_ranks(100, 30)))
    paths = write_report(runs, tmp_path / "report", resamples=20)
    markdown = paths["markdown"].read_text()
    assert "No tuning record under" in markdown and "a rule of the run's preset where one matches" in markdown
    assert "\\`" not in markdown  # plain prose: no escaped code marks
    assert "No result file holds a learning curve" in markdown and "csv:curves" not in paths


@pytest.mark.parametrize(("damage", "expected"), [
    (b"\xff\xfe not text", "not UTF-8 text"),
    (b"[1, 2]", "expected a JSON object at the top level"),
    (b'{"method": "dgl"', "not valid JSON"),
])
def test_a_tuning_record_that_cannot_be_read_names_the_file(tmp_path, make_ranks, capsys, damage, expected):
    from vtrbench.benchmark.cli import main

    runs = tmp_path / "runs"
    write_record(runs, result_record("dgl", make_ranks(100, 30)))
    path = runs / "msrvtt/vtrbench-tiny/dgl/tuning/seed0/tuning.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(damage)
    assert main(["report", str(runs), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: {expected}" in err


@pytest.mark.parametrize(("change", "expected"), [
    (lambda r: r["trials"][0].pop("settings"), r"'trials\[0\]' must be an object with 'trial' and 'settings'"),
    (lambda r: r.update(trials_budget="3"), "'trials_budget' must be int, got '3'"),
    (lambda r: r["trials"][1].update(score=None), r"'trials\[1\].score' must be a number, got None"),
    (lambda r: r["chosen"].pop("settings"), "'chosen' must hold 'trial' and 'settings'"),
    # found by an audit: each gave a bare TypeError, ValueError, StopIteration or AttributeError
    (lambda r: r["space"][0].update(log_range=5), r"'space\[0\].log_range' must be two numbers, got 5"),
    (lambda r: r["space"][0].update(log_range=[1]), r"'space\[0\].log_range' must be two numbers, got \[1\]"),
    (lambda r: r["trials"][0].update(settings={}), r"'trials\[0\].settings' must name at least one setting"),
    (lambda r: r.update(val="x"), "'val' must be an object, got 'x'"),
    (lambda r: r.update(variant=3), "'variant' must be a string or null, got 3"),
    (lambda r: r.update(seed="0"), "'seed' must be an integer, got '0'"),
])
def test_a_tuning_record_with_a_bad_field_names_the_file_and_the_field(tmp_path, make_ranks, change, expected):
    from vtrbench.reports.result_table import ResultFileError

    runs = tmp_path / "runs"
    write_record(runs, result_record("dgl", make_ranks(100, 30)))
    record = tuning_record("dgl", [1.0, 2.0, 3.0], 3)
    change(record)
    path = runs / "msrvtt/vtrbench-tiny/dgl/tuning/seed0/tuning.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(record))
    with pytest.raises(ResultFileError, match=f"{path}: {expected}"):
        write_report(runs, tmp_path / "report", resamples=10)


def test_tuning_records_come_in_the_reports_dataset_order(tmp_path, make_ranks):
    from vtrbench.reports.tuning_section import load_tuning_records

    runs = tmp_path / "runs"
    for dataset in ("activitynet", "vatex", "msrvtt"):
        path = runs / dataset / "vtrbench-tiny/dgl/tuning/seed0/tuning.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({**tuning_record("dgl", [1.0, 2.0, 3.0], 3), "dataset": dataset}))
    assert [r["dataset"] for r in load_tuning_records(runs)] == ["msrvtt", "vatex", "activitynet"]


def test_a_record_without_a_variant_sorts_beside_one_with_a_variant(tmp_path):
    # found in review: a null variant beside a named one raised a bare TypeError in the sort
    from vtrbench.reports.tuning_section import load_tuning_records

    runs = tmp_path / "runs"
    for folder, variant in (("dgl", None), ("dgl.b", "b")):
        path = runs / "msrvtt/vtrbench-tiny" / folder / "tuning/seed0/tuning.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({**tuning_record("dgl", [1.0, 2.0, 3.0], 3), "variant": variant}))
    assert [r["variant"] for r in load_tuning_records(runs)] == ["", "b"]
