"""Names from result files reach the report as text: no HTML, links or formulas of their own."""

from __future__ import annotations

import html

from vtrbench.reports import write_report

SCRIPT = "<script>alert(1)</script>"
IMAGE = "<img src=x onerror=alert(1)>"
LINK = "![pixel](http://tracker.example/p.png)"
FORMULA = "x$\\frac$"  # mathtext would fail to parse it


def test_hostile_names_are_escaped_in_every_format(write_run, make_ranks, tmp_path):
    from vtrbench.reports.render import markdown_text

    write_run("zero_shot", make_ranks(40, 8), dataset="msrvtt<b>")
    write_run(SCRIPT, make_ranks(40, 12), variant=IMAGE, tuned=10, dataset="msrvtt<b>")
    write_run("lora", make_ranks(40, 14), variant=FORMULA, tuned=20, dataset="msrvtt<b>")
    write_run("dgl", make_ranks(40, 16), variant=LINK, tuned=30, dataset="msrvtt<b>")
    paths = write_report(tmp_path / "runs", tmp_path / "report", resamples=20, published=False)
    markdown = paths["markdown"].read_text()
    page = paths["html"].read_text()
    for hostile in (SCRIPT, IMAGE, LINK, "msrvtt<b>"):
        assert hostile not in markdown, hostile
        assert markdown_text(hostile) in markdown, hostile
        assert html.escape(hostile) in page and (hostile not in page or "<" not in hostile), hostile
    assert "<sub>" in markdown  # the report's own markup stays
    assert paths["png:msrvtt<b>"].stat().st_size > 0  # drawn, with the formula-like variant as plain text


def test_markdown_text_is_literal_and_one_line():
    from vtrbench.reports.render import markdown_text

    assert markdown_text("a|b") == "a\\|b"
    assert markdown_text("line one\nline two") == "line one line two"
    assert markdown_text("*bold* `code` [x](y) <i> &amp;") == "\\*bold\\* \\`code\\` \\[x](y) \\<i\\> \\&amp;"
    assert markdown_text("zero_shot 52.5 ± 3.5") == "zero_shot 52.5 ± 3.5"


def test_emphasis_strikethrough_and_latex_specials_are_literal():
    # found in review: `__r8__` rendered bold and `~~x~~` struck through; in LaTeX's default encoding `|` printed
    # as a dash and `>` as an inverted question mark
    from vtrbench.reports.render import latex_escape, markdown_text

    assert markdown_text("__r8__ _x_ ~~old~~") == "\\_\\_r8\\_\\_ \\_x\\_ \\~\\~old\\~\\~"
    assert markdown_text("zero_shot full_finetune") == "zero_shot full_finetune"  # inside a word: no emphasis
    assert latex_escape("a|b>c<d") == "a\\textbar{}b$>$c$<$d"


def test_a_very_long_name_is_cut_on_the_figures_only(write_run, make_ranks, tmp_path):
    long = "very_long_method_name_" * 4
    write_run("zero_shot", make_ranks(40, 8))
    write_run(long, make_ranks(40, 12), variant="another_long_variant_name_" * 3, tuned=10)
    paths = write_report(tmp_path / "runs", tmp_path / "report", resamples=20, published=False)
    assert long in paths["csv:runs"].read_text()  # the tables keep it whole
    from vtrbench.reports.plots import LABEL_CHARACTERS, shortened

    assert len(shortened(long)) == LABEL_CHARACTERS and shortened(long).endswith("…")
    assert "very_long_method_name_very_long_method_…" in paths["svg:msrvtt"].read_text()
