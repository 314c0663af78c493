"""Render a report (sections of paragraphs, display tables and figures) as Markdown, LaTeX and HTML.

The HTML page is self-contained: inline CSS, figures embedded as base64 PNG, no scripts and no external
references, so it can be mailed or attached as one file.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from vtrbench.reports.tables import DisplayTable


@dataclass
class ReportFigure:
    png_path: Path
    svg_path: Path
    caption: str


@dataclass
class Section:
    heading: str
    items: list[str | DisplayTable | ReportFigure] = field(default_factory=list)


# ---------------------------------------------------------------- Markdown


# Markdown passes raw HTML through, and `[..](..)` makes links and remote images: every text that comes from a
# result file (method, variant, dataset, backbone, error messages) is escaped so that it renders as written.
_MARKDOWN_ESCAPES = {char: f"\\{char}" for char in "\\`*[<>&|~"}
# An underscore at the edge of a word opens or closes emphasis (`__r8__`); inside one (`zero_shot`) it cannot,
# and stays bare so that a table printed on a terminal reads as written.
_EDGE_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def markdown_text(text: object) -> str:
    """`text` as literal Markdown inline text: no HTML, link, image, emphasis or code, and on one line."""
    flat = " ".join(str(text).splitlines())
    return _EDGE_UNDERSCORE.sub(r"\\_", "".join(_MARKDOWN_ESCAPES.get(char, char) for char in flat))


def _markdown_row(cells: list[str], bold: bool = False) -> str:
    return "| " + " | ".join(f"**{markdown_text(c)}**" if bold else markdown_text(c) for c in cells) + " |"


def markdown_table(table: DisplayTable) -> str:
    """GitHub Markdown; a grouped header becomes a header row of group names over a bold row of columns,
    and each block is its own table under its bold label (Markdown has no spanning cells)."""
    if any(label for label, _ in table.groups):
        group_cells = []
        for label, span in table.groups:
            group_cells += [label] + [""] * (span - 1)
        header = [
            _markdown_row(group_cells),
            _markdown_row(["---"] * len(table.columns)),
            _markdown_row(table.columns, bold=True),
        ]
    else:
        header = [_markdown_row(table.columns), _markdown_row(["---"] * len(table.columns))]
    parts = [f"**{markdown_text(table.title)}**"]
    for label, rows in table.blocks:
        if label:
            parts.append(f"*{markdown_text(label)}*")
        parts.append("\n".join(header + [_markdown_row(row) for row in rows]) if rows else "(no rows)")
    parts += [f"<sub>{markdown_text(note)}</sub>" for note in table.notes]
    return "\n\n".join(parts)


def render_markdown(title: str, sections: list[Section], relative_to: Path) -> str:
    lines = [f"# {markdown_text(title)}"]
    for section in sections:
        lines.append(f"## {markdown_text(section.heading)}")
        for item in section.items:
            if isinstance(item, DisplayTable):
                lines.append(markdown_table(item))
            elif isinstance(item, ReportFigure):
                png = quote(item.png_path.relative_to(relative_to).as_posix())
                svg = quote(item.svg_path.relative_to(relative_to).as_posix())
                caption = markdown_text(item.caption)
                lines.append(f"![{caption}]({png})\n\n*{caption}* ([SVG]({svg}))")
            else:
                lines.append(markdown_text(item))
    return "\n\n".join(lines) + "\n"


# ---------------------------------------------------------------- LaTeX

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "|": r"\textbar{}",  # the default OT1 font encoding prints | as a dash and > as an inverted question mark
    ">": r"$>$",
}
# Non-ASCII symbols the tables use, as math that compiles without extra packages.
_LATEX_SYMBOLS = {"±": r"$\pm$", "→": r"$\rightarrow$", "–": "--", "Δ": r"$\Delta$", "<": r"$<$"}


def latex_escape(text: str) -> str:
    escaped = "".join(_LATEX_SPECIALS.get(char, char) for char in str(text))
    for symbol, replacement in _LATEX_SYMBOLS.items():
        escaped = escaped.replace(symbol, replacement)
    return escaped


def latex_table(table: DisplayTable) -> str:
    """A booktabs ``table``: group headers with ``\\cmidrule``, one ``\\midrule``-separated part per block."""
    width = len(table.columns)
    labels = min(table.label_columns, width)
    alignment = "l" * labels + "r" * (width - labels)
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        r"\scriptsize",
        rf"\caption{{{latex_escape(table.title)}}}",
        rf"\begin{{tabular}}{{{alignment}}}",
        r"\toprule",
    ]
    if any(label for label, _ in table.groups):
        cells, rules, start = [], [], 1
        for label, span in table.groups:
            if label:
                cells.append(rf"\multicolumn{{{span}}}{{c}}{{{latex_escape(label)}}}")
                rules.append(rf"\cmidrule(lr){{{start}-{start + span - 1}}}")
            else:
                cells += [""] * span
            start += span
        lines += [" & ".join(cells) + r" \\", " ".join(rules)]
    lines.append(" & ".join(latex_escape(c) for c in table.columns) + r" \\")
    for label, rows in table.blocks:
        lines.append(r"\midrule")
        if label:
            lines.append(rf"\multicolumn{{{width}}}{{l}}{{\textit{{{latex_escape(label)}}}}} \\")
        lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [rf"\par\smallskip\parbox{{\linewidth}}{{\tiny {latex_escape(note)}}}" for note in table.notes]
    lines.append(r"\end{table}")
    return "\n".join(lines)


def render_latex(title: str, sections: list[Section], relative_to: Path) -> str:
    """A compilable document (booktabs, graphicx); each ``table`` environment can be pasted on its own."""
    lines = [
        r"\documentclass{article}",
        r"\usepackage[margin=1.5cm,landscape]{geometry}",
        r"\usepackage{booktabs}",
        r"\usepackage{graphicx}",
        r"\begin{document}",
        rf"\section*{{{latex_escape(title)}}}",
    ]
    for section in sections:
        lines.append(rf"\subsection*{{{latex_escape(section.heading)}}}")
        for item in section.items:
            if isinstance(item, DisplayTable):
                lines.append(latex_table(item))
            elif isinstance(item, ReportFigure):
                png = item.png_path.relative_to(relative_to).as_posix()
                lines += [
                    r"\begin{figure}[ht]",
                    r"\centering",
                    rf"\includegraphics[width=0.7\linewidth]{{{png}}}",
                    rf"\caption{{{latex_escape(item.caption)}}}",
                    r"\end{figure}",
                ]
            else:
                lines.append(latex_escape(item) + "\n")
    lines.append(r"\end{document}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- HTML

_HTML_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1600px;
       padding: 0 1em; color: #1a1a1a; line-height: 1.45; }
h1 { border-bottom: 2px solid #333; padding-bottom: .2em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .8em 0; font-size: 11.5px; font-variant-numeric: tabular-nums; }
caption { caption-side: top; text-align: left; font-weight: 600; padding-bottom: .4em; }
th, td { padding: 3px 4px; text-align: right; white-space: nowrap; }
th.label, td.label { text-align: left; }
thead tr:first-child th { border-top: 2px solid #333; }
thead tr:last-child th { border-bottom: 1px solid #333; }
tbody:last-of-type tr:last-child td { border-bottom: 2px solid #333; }
th.group { text-align: center; border-bottom: 1px solid #999; }
tr.block th { text-align: left; font-style: italic; font-weight: 500; background: #f2f2f2;
              border-top: 1px solid #999; }
tbody.published td { color: #555; font-style: italic; background: #fafafa; }
tbody tr:hover td { background: #eef4ff; }
p.note { font-size: 12px; color: #555; max-width: 1100px; margin: .2em 0; }
figure { margin: 1em 0; } figure img { max-width: 1100px; width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 12px; color: #444; max-width: 1100px; }
div.wide { overflow-x: auto; }
ul.contents { columns: 3; font-size: 13px; margin: .5em 0 1em; }
"""


def html_table(table: DisplayTable) -> str:
    escape = html.escape
    # a table wider than the page scrolls inside its own box, not the whole page
    lines = ['<div class="wide"><table>', f"<caption>{escape(table.title)}</caption>", "<thead>"]
    if any(label for label, _ in table.groups):
        cells = "".join(
            f'<th class="group" colspan="{span}">{escape(label)}</th>'
            if label
            else f'<th colspan="{span}"></th>'
            for label, span in table.groups
        )
        lines.append(f"<tr>{cells}</tr>")
    def row_cells(tag: str, values: list) -> str:
        return "".join(f'<{tag} class="label">{escape(str(v))}</{tag}>' if i < table.label_columns
                       else f"<{tag}>{escape(str(v))}</{tag}>" for i, v in enumerate(values))

    lines.append(f"<tr>{row_cells('th', table.columns)}</tr>")
    lines.append("</thead>")
    for label, rows in table.blocks:
        css_class = ' class="published"' if label.startswith("Published") else ""
        lines.append(f"<tbody{css_class}>")
        if label:
            lines.append(f'<tr class="block"><th colspan="{len(table.columns)}">{escape(label)}</th></tr>')
        lines += [f"<tr>{row_cells('td', row)}</tr>" for row in rows]
        lines.append("</tbody>")
    lines.append("</table></div>")
    lines += [f'<p class="note">{escape(note)}</p>' for note in table.notes]
    return "\n".join(lines)


def render_html(title: str, sections: list[Section]) -> str:
    # a long page: a list of its sections first, each a link to its heading
    anchors = [f"s{i}" for i in range(len(sections))]
    contents = "".join(f'<li><a href="#{a}">{html.escape(s.heading)}</a></li>' for a, s in zip(anchors, sections,
                                                                                           strict=True))
    body = [f"<h1>{html.escape(title)}</h1>", f'<nav><ul class="contents">{contents}</ul></nav>']
    for anchor, section in zip(anchors, sections, strict=True):
        body.append(f'<h2 id="{anchor}">{html.escape(section.heading)}</h2>')
        for item in section.items:
            if isinstance(item, DisplayTable):
                body.append(html_table(item))
            elif isinstance(item, ReportFigure):
                encoded = base64.b64encode(item.png_path.read_bytes()).decode("ascii")
                body.append(
                    f'<figure><img alt="{html.escape(item.caption)}" '
                    f'src="data:image/png;base64,{encoded}">'
                    f"<figcaption>{html.escape(item.caption)}</figcaption></figure>"
                )
            else:
                body.append(f"<p>{html.escape(item)}</p>")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_HTML_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
