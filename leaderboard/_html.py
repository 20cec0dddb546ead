"""The leaderboard as one self-contained HTML page: inline CSS and JS, no network, sortable columns.

Every string that comes from a review, a board file or a model label is
escaped, so a label such as `<script>...</script>` is shown as text.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from harness.leaderboard._table import Cell, Column, Table, build_tables

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d2329; max-width: 100%; }
table { border-collapse: collapse; margin: .5em 0 .3em; max-width: 100%; }
th, td { padding: .25em .45em; border-bottom: 1px solid #d8dde3; vertical-align: top; }
table.board { font-size: 13px; }
table.board th { white-space: normal; }
td.label { min-width: 9em; overflow-wrap: anywhere; }
td.slice { text-align: right; font-variant-numeric: tabular-nums; }
td.slice small { color: #56606b; }
th { cursor: pointer; background: #f1f4f7; text-align: left; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
/* numbers wrap only when the table needs the room (a value over its interval), so it fits the screen */
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: 700; color: #11702c; background: #e7f6ea; }
td.front { color: #0b5c8a; font-weight: 700; }
p.summary { color: #56606b; margin: 0 0 .3em; }
section.findings { max-width: 60em; margin: 0 0 1em; }
section.findings p { margin: .3em 0; }
section.findings p.reach { color: #555; font-size: .9em; }
p.error { color: #a31b1b; margin: 0; }
figure { display: inline-block; margin: .5em 1em .5em 0; vertical-align: top; }
figure img { max-width: min(100%, 620px); height: auto; border: 1px solid #d8dde3; }
figcaption { color: #56606b; font-size: 12px; }
table.reviews { font-size: 13px; width: 100%; }
table.reviews td.text { overflow-wrap: anywhere; }
details { margin: .3em 0; }
summary { cursor: pointer; }
"""

# Sorting: numbers by their data-value, text by locale; empty cells always last.
SCRIPT = """
document.querySelectorAll("table.board").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var dir = th.getAttribute("aria-sort") === "descending" ? "ascending" : "descending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir);
      var sign = dir === "ascending" ? 1 : -1;
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        var xv = x.getAttribute("data-value"), yv = y.getAttribute("data-value");
        if (xv === null && yv === null) { return sign * x.textContent.localeCompare(y.textContent); }
        if (xv === null) { return 1; }
        if (yv === null) { return -1; }
        return sign * (parseFloat(xv) - parseFloat(yv));
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
// Review lists: show only the reviews in the chosen slice (a "dimension=value" option).
var sliceFilter = document.getElementById("slice-filter");
if (sliceFilter) {
  sliceFilter.addEventListener("change", function () {
    var chosen = sliceFilter.value, cut = chosen.indexOf("=");
    var dimension = chosen.slice(0, cut), value = chosen.slice(cut + 1);
    document.querySelectorAll("tr.review").forEach(function (tr) {
      var slices = JSON.parse(tr.getAttribute("data-slices"));
      tr.hidden = chosen !== "" && slices[dimension] !== value;
    });
  });
}
"""


def html_cell(column: Column, cell: Cell) -> str:
    classes = []
    if column.key not in ("task", "model", "pareto"):
        classes.append("num")
    elif column.key == "model" or (column.key == "pareto" and cell.text != "front"):
        classes.append("label")  # long labels wrap, so the table fits the screen
    if cell.best:
        classes.append("best")
    if column.key == "pareto" and cell.text == "front":
        classes.append("front")
    attrs = f' class="{" ".join(classes)}"' if classes else ""
    if cell.value is not None:
        attrs += f' data-value="{cell.value!r}"'
    return f"<td{attrs}>{escape(cell.text)}</td>"


def html_table(table: Table) -> str:
    head = "".join(f"<th scope=col>{escape(c.header)}</th>" for c in table.columns)
    body = "\n".join(
        "<tr>" + "".join(html_cell(c, cell) for c, cell in zip(table.columns, cells, strict=True)) + "</tr>"
        for cells in table.rows
    )
    errors = "".join(f'<p class="error">error: {escape(e)}</p>' for e in table.errors)
    return (
        f"<h2>{escape(table.task)}</h2>\n"
        f'<table class="board" data-task="{escape(table.task)}"><thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{body}\n</tbody></table>\n"
        f'<p class="summary">{escape(table.summary)}</p>{errors}'
    )


def findings_section(rows: Sequence[Mapping[str, Any]]) -> str:
    """What each task's board found, in the sentences the terminal prints under its table."""
    from harness.leaderboard._findings import board_findings

    paragraphs = [
        f"<p><b>{escape(f.task)}</b>: {escape(' '.join(f.sentences))}</p>"
        + (f'<p class="reach">{escape(f.reach)}</p>' if f.reach else "")
        for f in board_findings(rows)
        if f.sentences
    ]
    return f'<section class="findings">\n{"".join(paragraphs)}\n</section>' if paragraphs else ""


def page(title: str, sections: Sequence[str], opening: str = "") -> str:
    """A complete page (`opening` right under the title) with inline style and script, and a CSP that forbids
    remote loads and foreign scripts."""
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
    csp = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; img-src data:"
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>\n"
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style></head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n"
        + opening
        + "<p>Click a column header to sort. Bold green: best in its column. "
        "Pareto: on the quality-runtime front, or the row that beats it on both. "
        "Below the tables: plots, quality by slice, and the reviews behind the numbers.</p>\n"
        + "\n".join(sections)
        + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )


def render_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """What the board found, the tables, then for every run the rows come from: its plots, slices and reviews."""
    from harness.leaderboard._report import report_sections

    boards = list(dict.fromkeys(str(r.get("board")) for r in rows if r.get("board")))
    title = "Leaderboard" + (f": {', '.join(boards)}" if boards else "")
    tables = [html_table(t) for t in build_tables(rows)]
    return page(title, tables + report_sections(rows), opening=findings_section(rows))
