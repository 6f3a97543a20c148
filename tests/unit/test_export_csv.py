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


def test_scores_have_four_digits_and_the_file_follows_the_umask(tmp_path):
    import os
    import stat

    results = [Result(1, 0.123456789, 0.1, "text->image", "q", path="/p.jpg", confidence=0.987654321,
                      date_taken="2020-01-01T10:00:00", date_source="exif")]
    old = os.umask(0o022)
    try:
        write_csv(results, tmp_path / "shared.csv")
        os.umask(0o077)
        write_csv(results, tmp_path / "private.csv")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "shared.csv").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "private.csv").st_mode) == 0o600
    with open(tmp_path / "shared.csv", encoding="utf-8", newline="") as f:
        row = dict(zip(*csv.reader(f)))
    assert row["score"] == "0.1235" and row["confidence"] == "0.9877" and row["date_source"] == "exif"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left
