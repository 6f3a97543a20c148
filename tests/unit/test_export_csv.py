"""CSV export: header, UTF-8, formula neutralisation and awkward paths."""
from __future__ import annotations

import csv

from sfe_desktop.export import COLUMNS, safe_cell, write_csv
from sfe_desktop.search import Result


def test_round_trip_and_formula_neutralisation(tmp_path):
    odd = 'dir, "quoted"\nline/été photo.jpg'
    results = [
        Result(1, 0.5, 0.25, "text->image", "=HYPERLINK(\"x\")", path=odd, width=10, height=20, date_taken="2020-01-01"),
        Result(2, -0.125, 0.0, "image->text", "+1", caption="@SUM(A1)", path=None),
        Result(3, 0.0, 0.0, "image->text", "-2", caption="\tcell"),
        Result(4, 0.0, 0.0, "image->text", "q", caption="\rcell"),
    ]
    out = tmp_path / "out.csv"
    write_csv(results, out)
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == COLUMNS
    assert rows[1][COLUMNS.index("path")] == odd
    assert rows[1][COLUMNS.index("query")] == "'=HYPERLINK(\"x\")"
    assert rows[2][COLUMNS.index("query")] == "'+1"
    assert rows[2][COLUMNS.index("caption")] == "'@SUM(A1)"
    assert rows[3][COLUMNS.index("query")] == "'-2" and rows[3][COLUMNS.index("caption")] == "'\tcell"
    assert rows[4][COLUMNS.index("caption")] == "'\rcell"
    assert float(rows[2][1]) == -0.125  # numbers stay numbers
    assert rows[1][COLUMNS.index("width")] == "10" and rows[2][COLUMNS.index("path")] == ""


def test_non_utf8_names_are_escaped():
    assert safe_cell("caf\udce9.jpg") == "caf\\xe9.jpg"
    assert safe_cell(None) == "" and safe_cell(3) == "3"
