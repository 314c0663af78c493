"""Every user error is one line on stderr that names the key or the file, and exit status 2."""

import pytest

from tests.benchmark.conftest import tiny_run_overrides
from vtrbench.benchmark.cli import main


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("pretrained", ["/nope.pt", "offline-typo"])
def test_a_missing_checkpoint_of_the_default_backbone(tiny_msrvtt, tmp_path, capsys, pretrained):
    overrides = tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot")
    assert main(["run", *overrides, f"backbone.pretrained={pretrained}"]) == 2
    err = one_error_line(capsys)
    assert f"backbone.pretrained: '{pretrained}' is not a checkpoint file" in err


def test_a_file_that_is_no_checkpoint(tiny_msrvtt, tmp_path, capsys):
    junk = tmp_path / "weights.pt"
    junk.write_bytes(b"not a checkpoint at all" * 10)
    overrides = tiny_run_overrides(tiny_msrvtt, tmp_path / "runs", method="zero_shot")
    assert main(["run", *overrides, f"backbone.pretrained={junk}"]) == 2
    assert f"backbone.pretrained: {junk}: cannot load it as vtrbench-tiny weights" in one_error_line(capsys)


def test_a_batch_size_of_zero(tiny_msrvtt, tmp_path, capsys):
    assert main(["run", *tiny_run_overrides(tiny_msrvtt, tmp_path / "runs"), "data.batch_size=0"]) == 2
    assert "data.batch_size=0: expected an integer >= 2" in one_error_line(capsys)


def test_a_result_file_that_is_not_utf8(tmp_path, capsys):
    bad = tmp_path / "runs" / "msrvtt" / "vtrbench-tiny" / "zero_shot" / "seed0" / "result.json"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b'{"schema": 1, "method": "caf\xe9"}')
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "report")]) == 2
    err = one_error_line(capsys)
    assert f"{bad}: not UTF-8 text" in err
