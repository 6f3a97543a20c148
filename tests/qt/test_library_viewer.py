"""The library (the folder's photos before any search) and the built-in viewer, driven by real keys and clicks."""
from __future__ import annotations

import os

from PySide6.QtCore import QPoint, Qt
from qt_helpers import make_photos, open_and_index, run_search

from sfe_desktop.qt.models.results_model import ResultRole


def names(window) -> list[str]:
    return [os.path.basename(r.path) for r in window.model.results()]


def test_library_shows_every_photo_newest_first_then_by_name(qtbot, make_window, tmp_path):
    folder = tmp_path / "photos"
    paths = make_photos(folder, 5)
    stamps = [3, 1, 2, 2, 2]  # days: photo_000 newest, photo_001 oldest, three on one day
    for path, day in zip(paths, stamps):
        os.utime(path, (0, 1_600_000_000 + day * 86400))
    window = make_window()
    open_and_index(qtbot, window, folder)
    assert window.page.is_library and window.model.rowCount() == 5
    assert names(window) == ["photo_000.jpg", "photo_002.jpg", "photo_003.jpg", "photo_004.jpg", "photo_001.jpg"]
    first = window.model.index(0)
    assert first.data(Qt.ToolTipRole).endswith("(no date taken in the photo)")  # the file time, and it says so
    assert window.browse.sort.currentData() == "newest"
    qtbot.keyClicks(window.search_bar, "a red dog")
    run_search(qtbot, window, lambda: qtbot.keyClick(window.search_bar, Qt.Key_Return))
    assert not window.page.is_library and window.browse.sort.currentData() == "relevance"
    window.search_bar.setFocus()
    qtbot.keyClick(window.search_bar, Qt.Key_Escape)  # Esc: the library again
    assert window.page.is_library and names(window)[0] == "photo_000.jpg"


def test_viewer_opens_steps_shows_the_heatmap_and_goes_back(qtbot, make_window, photos):
    window = make_window()
    window.resize(1200, 800)
    open_and_index(qtbot, window, photos)
    results = run_search(qtbot, window, lambda: window.search("a red dog"))
    view = window.view
    # double-click a tile
    with qtbot.waitSignal(window.session.explanation_ready, timeout=30000):
        rect = view.visualRect(window.model.index(1))
        qtbot.mouseClick(view.viewport(), Qt.LeftButton, pos=rect.center())
    qtbot.mouseDClick(view.viewport(), Qt.LeftButton, pos=rect.center())
    viewer = window.viewer
    assert window.stack.currentWidget() is viewer and viewer.result.path == results[1].path
    assert "2 of 12" in viewer.title.text()
    qtbot.waitUntil(lambda: viewer.canvas.image is not None, timeout=10000)  # decoded off the UI thread
    assert viewer.canvas.photo_rect().width() <= viewer.canvas.width()  # zoomed to fit
    assert viewer.overlay_shown()  # the match's heatmap, over the photo
    before = viewer.canvas.grab().toImage()
    qtbot.keyClick(viewer, Qt.Key_H)
    assert not viewer.overlay_shown() and viewer.canvas.grab().toImage() != before
    qtbot.keyClick(viewer, Qt.Key_H)
    assert viewer.overlay_shown()
    # arrows step through the results; the selection and the explanation follow
    with qtbot.waitSignal(window.session.explanation_ready, timeout=30000) as explained:
        qtbot.keyClick(viewer, Qt.Key_Right)
    assert viewer.result.path == results[2].path == window.current_result().path
    assert explained.args[0].path == results[2].path
    qtbot.waitUntil(viewer.overlay_shown, timeout=10000)
    qtbot.keyClick(viewer, Qt.Key_Left)
    qtbot.keyClick(viewer, Qt.Key_Left)
    assert viewer.result.path == results[0].path and not viewer.prev.isEnabled()
    qtbot.keyClick(viewer, Qt.Key_Left)  # the first stays the first
    assert viewer.result.path == results[0].path
    qtbot.keyClick(viewer, Qt.Key_Escape)  # back to the grid, the search is kept
    assert window.stack.currentWidget() is view and window.search_bar.text() == "a red dog"
    assert window.current_result().path == results[0].path and view.hasFocus()
    qtbot.keyClick(view, Qt.Key_Space)  # Space opens it too, and closes it
    assert window.stack.currentWidget() is viewer
    qtbot.keyClick(viewer, Qt.Key_Space)
    assert window.stack.currentWidget() is view
    # the system's viewer stays in the context menu
    from sfe_desktop.qt.menus import result_context_menu

    menu = result_context_menu(window, window, results[0])
    next(a for a in menu.actions() if a.text().replace("&", "") == "Open in default app").trigger()
    assert window.opened_urls == [results[0].path]


def test_library_photos_have_no_heatmap_in_the_viewer(qtbot, make_window, photos):
    window = make_window()
    open_and_index(qtbot, window, photos)
    window.view.setFocus()
    window.view.setCurrentIndex(window.model.index(0))
    qtbot.keyClick(window.view, Qt.Key_Return)
    assert window.stack.currentWidget() is window.viewer
    assert window.viewer.result.direction == "library" and not window.viewer.overlay_button.isEnabled()
    assert "Search for something" in window.explanation.placeholder.text()
    point = QPoint(5, 5)
    qtbot.mouseClick(window.viewer.back, Qt.LeftButton, pos=point)
    assert window.stack.currentWidget() is window.view
    assert window.model.index(0).data(ResultRole).direction == "library"
