"""A leaderboard rerun with nothing new keeps its report (`refresh_report`); any change to what the report is
computed from, or to a file it wrote, writes it again."""

from __future__ import annotations

import hashlib
import json
import shutil

from tests.reports.conftest import result_record, write_record

from vtrbench.reports import refresh_report, write_report
from vtrbench.reports.freshness import REPORT_RECORD


def _runs(tmp_path, make_ranks):
    runs = tmp_path / "runs"
    write_record(runs, result_record("zero_shot", make_ranks(60, 20)))
    write_record(runs, result_record("lora", make_ranks(60, 30), tuned=10))
    return runs


def test_an_unchanged_report_is_kept_and_any_change_writes_it_again(tmp_path, make_ranks):
    runs, out = _runs(tmp_path, make_ranks), tmp_path / "report"
    paths, written = refresh_report(runs, out, resamples=20)
    assert written and "| lora |" in paths["markdown:measured"].read_text()
    markdown = paths["markdown"].read_text()
    again, written = refresh_report(runs, out, resamples=20)
    assert not written and again == paths and paths["markdown"].read_text() == markdown

    assert refresh_report(runs, out, resamples=21)[1]  # another option
    assert not refresh_report(runs, out, resamples=21)[1]
    write_record(runs, result_record("lora", make_ranks(60, 31), tuned=10))  # a result changed
    assert refresh_report(runs, out, resamples=21)[1]
    paths["png:msrvtt"].unlink()  # a file it wrote is gone
    assert refresh_report(runs, out, resamples=21)[1] and paths["png:msrvtt"].is_file()
    paths["markdown"].write_text("edited by hand")  # or changed
    assert refresh_report(runs, out, resamples=21)[1] and paths["markdown"].read_text() != "edited by hand"
    (out / REPORT_RECORD).write_text("{not json")  # an unreadable record is no record
    assert refresh_report(runs, out, resamples=21)[1]
    record = json.loads((out / REPORT_RECORD).read_text())
    for shape in (list(record["files"]), [1], "x"):  # nor is one of another shape (`files` a list crashed)
        (out / REPORT_RECORD).write_text(json.dumps({**record, "files": shape}))
        assert refresh_report(runs, out, resamples=21)[1]


def test_the_record_names_files_inside_the_report_folder_only(tmp_path, make_ranks):
    runs, out = _runs(tmp_path, make_ranks), tmp_path / "report"
    write_report(runs, out, resamples=20)
    record = json.loads((out / REPORT_RECORD).read_text())
    outside = tmp_path / "outside.md"
    outside.write_text("x")
    # a planted entry naming a file outside the folder, with that file's own hash: followed, it would pass
    # the hash check and the report would be "kept", pointing outside; read as a bare name, it is missing
    record["files"]["markdown"] = {"file": "../outside.md", "sha256": hashlib.sha256(b"x").hexdigest()}
    (out / REPORT_RECORD).write_text(json.dumps(record))
    paths, written = refresh_report(runs, out, resamples=20)
    assert written and paths["markdown"] == out / "report.md"


def test_a_rewritten_report_leaves_no_part_of_the_previous_one(tmp_path, make_ranks):
    # found in review: with a dataset's runs gone, its table and plots stayed beside the new report
    runs, out = _runs(tmp_path, make_ranks), tmp_path / "report"
    for method in ("zero_shot", "lora"):
        write_record(runs, result_record(method, make_ranks(60, 25), dataset="vatex"))
    paths, _ = refresh_report(runs, out, resamples=20)
    vatex = [path for kind, path in paths.items() if kind.endswith("vatex")]
    assert len(vatex) >= 3 and all(path.is_file() for path in vatex)
    (out / "notes.txt").write_text("the user's own")
    shutil.rmtree(runs / "vatex")

    paths, written = refresh_report(runs, out, resamples=20)

    assert written and not any(path.exists() for path in vatex)
    assert all(path.is_file() for path in paths.values()) and (out / "notes.txt").read_text() == "the user's own"
