import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import vtrbench
from vtrbench.reports import ResultFileError, load_results


def test_one_row_per_run_with_flat_columns(write_run, write_failed_run, tmp_path):
    # four queries cannot rank better than chance at the report's level: a random backbone is exempt from it
    write_run("zero_shot", [1, 2, 3, 20], pretrained="random")
    write_run("dgl", [1, 1, 3, 20], variant="linear", tuned=830_000, seed=1, pretrained="random")
    write_failed_run("lora", "CUDA out of memory")

    results = load_results(tmp_path / "runs")

    assert len(results) == 3
    dgl = results[results["method"] == "dgl"].iloc[0]
    assert (dgl["variant"], dgl["seed"], dgl["t2v_R1"], dgl["tuned"]) == ("linear", 1, 50.0, 830_000)
    assert dgl["t2v_MdR"] == 2.0 and dgl["activation"] == "gelu"
    np.testing.assert_array_equal(dgl["t2v_ranks"], [1, 1, 3, 20])
    failed = results[results["status"] == "failed"].iloc[0]
    assert failed["error"] == "CUDA out of memory" and np.isnan(failed["t2v_R1"])


def test_fields_are_trusted_over_the_path(write_run, tmp_path):
    path = write_run("bitfit", [1, 2])
    moved = tmp_path / "runs" / "somewhere_else" / "result.json"
    moved.parent.mkdir(parents=True)
    path.rename(moved)

    assert load_results(tmp_path / "runs")["method"].tolist() == ["bitfit"]


def test_bad_json_names_the_file(tmp_path):
    path = tmp_path / "runs" / "msrvtt" / "result.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json", encoding="utf-8")

    with pytest.raises(ResultFileError, match=str(path)):
        load_results(tmp_path / "runs")


def test_missing_key_names_the_file_and_the_key(write_run, tmp_path):
    path = write_run("dgl", [1, 2])
    record = json.loads(path.read_text())
    del record["metrics"]["t2v"]["R5"]
    path.write_text(json.dumps(record))

    with pytest.raises(ResultFileError, match=rf"{path}.*metrics\.t2v\.R5"):
        load_results(tmp_path / "runs")


def test_two_files_for_the_same_run_are_refused(write_run, tmp_path):
    path = write_run("dgl", [1, 2])
    copy = tmp_path / "runs" / "copy" / "result.json"
    copy.parent.mkdir()
    copy.write_text(path.read_text())

    with pytest.raises(ResultFileError, match="same run"):
        load_results(tmp_path / "runs")


def test_empty_directory_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no result.json"):
        load_results(tmp_path)


def test_importing_reports_does_not_import_training_code():
    code = (
        "import sys, vtrbench.reports; "
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'vtrbench.benchmark', "
        "'vtrbench.methods', 'vtrbench.datasets'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    # The child finds vtrbench where this process found it, installed or not.
    source_root = str(Path(vtrbench.__file__).parents[1])
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([source_root, os.environ.get("PYTHONPATH", "")]),
    }
    completed = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, env=environment
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("seed", None, "'seed' must be an integer, got None"),
    ("seed", "abc", "'seed' must be an integer, got 'abc'"),
    ("variant", ["a"], r"'variant' must be a string \(or null\), got \['a'\]"),
    ("method", 3, "'method' must be a non-empty string, got 3"),
    ("val_curve", "rising", "'val_curve' must be a list of points, got str"),
    ("val_curve", [{"epoch": 0, "step": 0, "metrics": {"t2v": {}}}], r"'val_curve\[0\]': missing key 'metrics.t2v.R1'"),
    ("status", "done", "'status' must be one of finished, failed, diverged, degenerate, got 'done'"),
    ("metrics", "high", "'metrics' must be an object, got 'high'"),
    ("metrics", {"t2v": [31.0]}, r"'metrics.t2v' must be an object, got \[31.0\]"),
    ("ranks", {"t2v": [[1, 2], [3]], "v2t": [1, 2]}, r"'ranks.t2v' must be a non-empty list of ranks"),
])
def test_a_field_of_the_wrong_type_names_the_file_and_the_field(write_run, tmp_path, capsys, field, value, expected):
    path = write_run("dgl", [1, 2])
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, field: value}))
    with pytest.raises(ResultFileError, match=expected):
        load_results(tmp_path / "runs")
    from vtrbench.benchmark.cli import main

    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err


def test_a_finished_file_is_judged_again_from_its_own_ranks(write_run, make_ranks, tmp_path):
    """A file that says `finished` is ranked only if today's rules pass it, whatever wrote it: its metrics must
    be what its ranks give, its ties and its distance from chance must pass (vtrbench.ranking)."""
    good = make_ranks(1000, 150)
    write_run("zero_shot", good)
    # metrics edited or written half: NaN is averaged away by pandas, so it would move the row unseen
    nan_metric = write_run("bitfit", good)
    record = json.loads(nan_metric.read_text())
    record["metrics"]["t2v"]["R1"] = float("nan")
    nan_metric.write_text(json.dumps(record))
    # written before the tie rule counted every tied query: 900 of 1,000 tied, none with 10% of the candidates
    tied = write_run("lora", good)
    record = json.loads(tied.read_text())
    record["ties"] = {"t2v": {"tied_queries": 900, "collapsed_queries": 0, "queries": 1000},
                      "v2t": {"tied_queries": 0, "collapsed_queries": 0, "queries": 1000}, "degenerate": False}
    tied.write_text(json.dumps(record))
    # written before the chance rule (no chance_z): ranks uniform on 1..1,000
    write_run("vop", np.random.default_rng(0).integers(1, 1001, 1000).tolist())
    # found in review: without its ranks a hand-edited number stood as written, and without its tie counts a
    # collapse (every target tied, every rank 1) read R@1 100
    no_ranks = write_run("linear_probe", good)
    record = json.loads(no_ranks.read_text())
    del record["ranks"]
    record["metrics"]["t2v"]["R1"] = 55.0
    no_ranks.write_text(json.dumps(record))
    collapsed = write_run("dgl", [1] * 1000)
    record = json.loads(collapsed.read_text())
    del record["ties"]
    collapsed.write_text(json.dumps(record))

    results = load_results(tmp_path / "runs").set_index("method")

    assert results.loc["zero_shot", "status"] == "finished"
    assert results.loc["bitfit", "status"] == "excluded"
    assert "t2v.R1: stored nan, from its ranks 15" in results.loc["bitfit", "error"]
    assert results.loc["lora", "status"] == "degenerate"
    assert results.loc["lora", "error"].startswith("t2v: 900 of 1,000 queries have their target tied")
    assert results.loc["vop", "status"] == "degenerate" and "ranks at chance" in results.loc["vop", "error"]
    assert results.loc["linear_probe", "status"] == "excluded"
    assert "no per-query ranks for t2v, v2t, so its metrics cannot be checked" in results.loc["linear_probe", "error"]
    assert results.loc["dgl", "status"] == "excluded" and "no tie record" in results.loc["dgl", "error"]


def test_a_row_never_averages_seeds_of_different_settings(write_run, make_ranks, tmp_path):
    config = {"method": "dgl", "seed": 0, "train": {"lr": 0.01}, "backbone": {"pretrained": "offline"},
              "output": {"runs_dir": "runs"}}
    for seed, lr, folder in ((0, 0.01, "a"), (1, 0.01, "b"), (2, 0.5, "c")):
        path = write_run("dgl", make_ranks(1000, 100 + seed), seed=seed)
        record = json.loads(path.read_text())
        record["config"] = {**config, "seed": seed, "train": {"lr": lr}, "output": {"runs_dir": folder}}
        path.write_text(json.dumps(record))

    results = load_results(tmp_path / "runs").set_index("seed")

    assert list(results["status"]) == ["finished", "finished", "excluded"]  # the output folder does not count
    assert "other settings than seed(s) 0, 1 of its row (train.lr: 0.01 -> 0.5)" in results.loc[2, "error"]


def test_seeds_of_one_row_on_different_test_sets_name_their_files(write_run, make_ranks, tmp_path):
    from vtrbench.reports import write_report

    write_run("dgl", make_ranks(100, 20), seed=0)
    other = write_run("dgl", make_ranks(90, 20), seed=1)
    with pytest.raises(ResultFileError, match=rf"rank different numbers of test queries: .*seed0.* \(100\), "
                                              rf"{other} \(90\)"):
        write_report(tmp_path / "runs", tmp_path / "report", resamples=10)


def test_a_setting_added_to_the_suite_after_a_seed_ran_does_not_split_its_row(write_run, make_ranks, tmp_path):
    # seed 0 was saved before train.adam_eps existed: its file stands for the default, as a reused run's does
    for seed, train in ((0, {"lr": 0.01}), (1, {"lr": 0.01, "adam_eps": 1e-8}), (2, {"lr": 0.01, "adam_eps": 1e-8})):
        path = write_run("dgl", make_ranks(1000, 100 + seed), seed=seed)
        record = json.loads(path.read_text())
        record["config"] = {"method": "dgl", "seed": seed, "train": train}
        path.write_text(json.dumps(record))
    assert list(load_results(tmp_path / "runs")["status"]) == ["finished"] * 3


@pytest.mark.parametrize("order", [(None, 1e-6, 1e-8), (1e-6, None, 1e-8)])
def test_a_seed_joins_a_row_only_if_it_agrees_with_every_seed_there(write_run, make_ranks, tmp_path, order):
    # found in review: compared with the first seed of a row alone, an old file (no adam_eps) let 1e-6 and
    # 1e-8 seeds both in, or not, by seed order
    for seed, eps in enumerate(order):
        path = write_run("dgl", make_ranks(1000, 100 + seed), seed=seed)
        record = json.loads(path.read_text())
        record["config"] = {"method": "dgl", "train": {"lr": 0.01} | ({} if eps is None else {"adam_eps": eps})}
        path.write_text(json.dumps(record))
    assert list(load_results(tmp_path / "runs")["status"]) == ["finished", "finished", "excluded"]


def test_a_table_never_ranks_runs_of_another_test_set(write_run, make_ranks, tmp_path):
    # found in review: only seeds of one row were compared, so a method run on another MSR-VTT test file with
    # the same number of queries was ranked and paired query by query against the others
    for method, count in (("zero_shot", 100), ("bitfit", 110), ("lora", 300)):
        for seed in (0, 1):
            path = write_run(method, make_ranks(1000, count + seed), seed=seed)
            record = json.loads(path.read_text())
            test_csv = "MSRVTT_full_test.csv" if method == "lora" else "MSRVTT_JSFUSION_test.csv"
            record["config"] = {"method": method, "msrvtt": {"root": "/data/msrvtt", "test_csv": test_csv}}
            path.write_text(json.dumps(record))

    results = load_results(tmp_path / "runs").set_index(["method", "seed"])

    assert (results.loc["lora", "status"] == "excluded").all()
    assert "read another msrvtt test set than the 4 run(s) its table ranks (msrvtt.test_csv: " \
        "'MSRVTT_JSFUSION_test.csv' -> 'MSRVTT_full_test.csv')" in results.loc[("lora", 0), "error"]
    assert (results.loc[["zero_shot", "bitfit"], "status"] == "finished").all()


def test_runs_that_set_aside_other_test_clips_are_not_ranked_together(tmp_path):
    """Found in review: two runs that each set aside another clip ranked test sets of one size, and were paired
    query by query; seeds of one row that set aside different clips stopped the whole report."""
    from tests.reports.conftest import ranks_with_hits, result_record, write_record

    from vtrbench.reports.aggregate import paired_comparisons

    for seed in range(3):
        zero = result_record("zero_shot", ranks_with_hits(999, 150), seed=seed)
        zero["skipped"] = {"train": {}, "test": {"v1": "cannot decode at evaluation: broken"}}
        write_record(tmp_path, zero)
        lora = result_record("lora", ranks_with_hits(999 + (seed == 2), 180), seed=seed, tuned=10)
        lora["skipped"] = {"train": {}, "test": {"v2": "missing video file"} if seed < 2 else {}}
        write_record(tmp_path, lora)
    results = load_results(tmp_path)
    ranked = results[results["status"] == "finished"]
    assert set(ranked["method"]) == {"zero_shot"}  # three zero-shot runs against two and one lora: zero-shot's
    excluded = results[results["status"] == "excluded"]
    assert len(excluded) == 3 and all("test clips set aside" in e for e in excluded["error"])
    assert paired_comparisons(results).empty


def test_a_finished_run_without_its_config_is_not_ranked(tmp_path):
    from tests.reports.conftest import ranks_with_hits, result_record, write_record

    for seed in range(2):
        write_record(tmp_path, result_record("lora", ranks_with_hits(100, 30), seed=seed, tuned=10))
    unchecked = result_record("lora", ranks_with_hits(100, 90), seed=2, tuned=10, pretrained="random")
    del unchecked["config"]
    write_record(tmp_path, unchecked)
    results = load_results(tmp_path).set_index("seed")
    assert list(results["status"]) == ["finished", "finished", "excluded"]
    assert "records no config, so its settings cannot be checked" in results.loc[2, "error"]


def test_a_trained_reference_run_once_pairs_with_its_own_seed_only(tmp_path):
    """Found in review: a trained reference's one surviving run stood for all three seeds of the method."""
    from tests.reports.conftest import ranks_with_hits, result_record, write_record

    from vtrbench.reports.aggregate import paired_comparisons

    write_record(tmp_path, result_record("lora", ranks_with_hits(200, 60), seed=0, tuned=10))
    for seed in range(3):
        write_record(tmp_path, result_record("adaptformer", ranks_with_hits(200, 80), seed=seed, tuned=20))
        write_record(tmp_path, result_record("zero_shot", ranks_with_hits(200, 40), seed=seed))
    results = load_results(tmp_path)
    against_lora = paired_comparisons(results, "lora", resamples=100).set_index("method")
    assert against_lora.loc["adaptformer", "seed_list"] == "0"
    zero_shot_once = results[(results["method"] != "zero_shot") | (results["seed"] == 0)]
    against_zero_shot = paired_comparisons(zero_shot_once, "zero_shot", resamples=100).set_index("method")
    assert against_zero_shot.loc["adaptformer", "seed_list"] == "0 1 2"  # zero-shot trains nothing


def test_runs_of_other_offline_data_are_not_ranked_or_averaged_together(tmp_path):
    """The same config on other generated data (the world changed between them): not one test set."""
    from tests.reports.conftest import ranks_with_hits, result_record, write_record

    for seed in range(3):
        for method in ("zero_shot", "lora"):
            record = result_record(method, ranks_with_hits(100, 30), seed=seed, tuned=10 * (method == "lora"))
            record["inputs"] = {"data": "msrvtt-new" if (method, seed) != ("lora", 2) else "msrvtt-old"}
            write_record(tmp_path, record)
    results = load_results(tmp_path).set_index(["method", "seed"])
    assert results.loc[("lora", 2), "status"] == "excluded"
    assert "offline data: 'msrvtt-new' -> 'msrvtt-old'" in results.loc[("lora", 2), "error"]
    assert (results.drop(index=[("lora", 2)])["status"] == "finished").all()
