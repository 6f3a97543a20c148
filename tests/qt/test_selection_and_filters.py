"""Multi-select (Ctrl/Shift-click, Ctrl+A) with copy and export of the selection; sort and filter controls."""
from __future__ import annotations

import csv
import os
import stat

from PySide6.QtCore import QDate, Qt
from PySide6.QtWidgets import QApplication
from qt_helpers import make_photos, open_and_index, run_search


def click(qtbot, window, row, modifier=Qt.NoModifier):
    rect = window.view.visualRect(window.model.index(row))
    qtbot.mouseClick(window.view.viewport(), Qt.LeftButton, modifier, rect.center())


def test_select_with_the_mouse_and_keys_then_copy_and_export(qtbot, make_window, photos, tmp_path):
    window = make_window()
    window.resize(1200, 800)
    open_and_index(qtbot, window, photos)
    results = run_search(qtbot, window, lambda: window.search("a green ball"))
    assert not window.actions.export_selection.isEnabled()
    click(qtbot, window, 0)
    click(qtbot, window, 2, Qt.ControlModifier)
    click(qtbot, window, 4, Qt.ShiftModifier)  # 2..4 added to the selection
    chosen = window.view.selected_results()
    assert [r.path for r in chosen] == [results[i].path for i in (0, 2, 3, 4)]
    assert window.actions.export_selection.isEnabled()
    qtbot.keyClick(window.view, Qt.Key_C, Qt.ControlModifier)
    assert QApplication.clipboard().text().splitlines() == [r.path for r in chosen]
    assert window.statusBar().currentMessage() == "Copied 4 paths to the clipboard."

    out = tmp_path / "picked.csv"
    old = os.umask(0o022)
    try:
        assert window.export_selection(str(out))
    finally:
        os.umask(old)
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == [r.path for r in chosen]
    assert len(rows[0]["score"].split(".")[1]) == 4  # 4 digits are enough
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644  # the umask, not 0600
    assert window.qsettings.value("export/dir") == str(tmp_path)  # the next save dialog starts here
    assert window._export_dir() == str(tmp_path)

    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key_A, Qt.ControlModifier)
    assert len(window.view.selected_results()) == len(results)
    from sfe_desktop.qt.menus import result_context_menu

    menu = result_context_menu(window, window, results[0], len(results))
    labels = [a.text().replace("&", "") for a in menu.actions() if a.text()]
    assert f"Copy {len(results)} paths" in labels and f"Export {len(results)} selected…" in labels


def test_sort_and_filter_by_folder_and_date(qtbot, make_window, tmp_path):
    folder = tmp_path / "photos"
    for sub, n, day in (("", 3, 10), ("trip", 2, 20), ("trip/day2", 2, 30), ("tripod", 1, 40)):
        for i, path in enumerate(make_photos(folder / sub, n, seed=day)):
            renamed = path.with_name(f"{sub.replace('/', '_') or 'top'}_{i}.jpg")
            path.rename(renamed)
            os.utime(renamed, (0, 1_700_000_000 + day * 86400 + i))
    window = make_window()
    open_and_index(qtbot, window, folder)
    assert window.model.rowCount() == 8
    bar = window.browse
    assert [bar.folder.itemText(i) for i in range(bar.folder.count())] == [
        "All folders", "(top folder only)", "trip", "trip/day2", "tripod"]
    bar.folder.setCurrentIndex(bar.folder.findText("trip"))
    shown = [os.path.relpath(r.path, folder) for r in window.model.results()]
    assert sorted(shown) == ["trip/day2/trip_day2_0.jpg", "trip/day2/trip_day2_1.jpg", "trip/trip_0.jpg",
                             "trip/trip_1.jpg"]  # the folder and below it, not "tripod"
    assert "4 shown with these filters" in window.results_label.text()
    bar.sort.setCurrentIndex(bar.sort.findData("name"))
    assert [os.path.basename(r.path) for r in window.model.results()] == [
        "trip_0.jpg", "trip_1.jpg", "trip_day2_0.jpg", "trip_day2_1.jpg"]
    bar.folder.setCurrentIndex(0)
    from datetime import datetime

    stamp = datetime.fromtimestamp(1_700_000_000 + 30 * 86400).date()  # the day of trip/day2's photos
    bar.date_from.setDate(QDate(stamp.year, stamp.month, stamp.day))
    bar.date_to.setDate(QDate(stamp.year, stamp.month, stamp.day))
    assert sorted(os.path.basename(r.path) for r in window.model.results()) == ["trip_day2_0.jpg", "trip_day2_1.jpg"]
    # a search keeps the filters and sorts by relevance; the sort of the library is remembered
    results = run_search(qtbot, window, lambda: window.search("a red dog"))
    assert len(results) == 8 and bar.sort.currentData() == "relevance"
    assert sorted(os.path.basename(r.path) for r in window.model.results()) == ["trip_day2_0.jpg", "trip_day2_1.jpg"]
    window.clear_search()
    assert bar.sort.currentData() == "name"
