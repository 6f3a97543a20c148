"""Drive the real window: open a folder, index, search, explain, export."""
from __future__ import annotations

import csv

import numpy as np
from PySide6.QtCore import QModelIndex, QPoint, Qt

from sfe_desktop.qt.models.results_model import ResultRole, ThumbnailRole
from qt_helpers import open_and_index, run_search


def select_first(qtbot, window):
    window.view.setCurrentIndex(QModelIndex())
    with qtbot.waitSignal(window.session.explanation_ready, timeout=30000) as blocker:
        window.view.setCurrentIndex(window.model.index(0))
    qtbot.waitUntil(window.explanation.idle, timeout=30000)  # figures are built and rendered off the UI thread
    qtbot.waitUntil(lambda: window.explanation.attention.plot.result is not None, timeout=30000)
    return blocker.args[1]


def test_search_explain_export(qtbot, make_window, photos, tmp_path):
    window = make_window()
    assert window.windowTitle() == "SFE Explorer"
    assert window.device_label.text() == "Device: CPU"
    summary = open_and_index(qtbot, window, photos)
    assert summary.indexed == 12 and not summary.cancelled
    assert window.windowTitle().startswith("photos")
    assert "12 photos in photos" in window.results_label.text()  # the library, until a search
    assert window.model.rowCount() == 12 and window.page.is_library

    qtbot.keyClicks(window.search_bar, "a red dog")
    results = run_search(qtbot, window, lambda: qtbot.keyClick(window.search_bar, Qt.Key_Return))
    assert results and window.model.rowCount() == len(results)
    assert window.view.viewMode() == window.view.ViewMode.IconMode
    assert "photos for “a red dog”" in window.results_label.text()
    first = window.model.index(0)
    qtbot.waitUntil(lambda: first.data(ThumbnailRole) is not None, timeout=10000)  # loaded off the UI thread
    assert not first.data(ThumbnailRole).isNull()

    explanation = select_first(qtbot, window)
    panel = window.explanation
    assert panel.stack.currentWidget() is panel.tabs

    # 1. patch attention: the photo and the heatmap, whose values come from the explanation
    attention = panel.attention.plot
    assert attention.result is not None and attention.result.overlay is not None
    drawn = attention.result.info["drawn"][0]  # what the render drew, described where it was drawn
    assert len(drawn["images"]) == 2
    assert attention.result.info["heat"].shape == explanation.grid
    assert panel.attention.word.count() == len(explanation.words) + 1
    panel.attention.word.setCurrentIndex(1)
    first_render = attention.result
    qtbot.waitUntil(lambda: panel.idle() and attention.result is not first_render, timeout=30000)
    att = explanation.attention[0].reshape(explanation.grid)
    assert np.argmax(attention.result.info["heat"]) == np.argmax(att)
    before = attention.grab().toImage()
    panel.attention.opacity.setValue(20)  # composed on repaint, no new render
    assert panel.idle() and abs(attention.overlay_opacity - 0.2) < 1e-6
    assert attention.grab().toImage() != before

    # the other tabs render when shown
    assert panel.concepts.plot.result is None and panel.graph.plot.result is None
    panel.tabs.setCurrentWidget(panel.concepts)
    qtbot.waitUntil(lambda: panel.idle() and panel.concepts.plot.result is not None, timeout=30000)

    # 2. concepts: the co-occurrence matrix with the concept names as labels, and bars of what fired
    axes = panel.concepts.plot.result.info["drawn"]
    names = explanation.concepts.names
    assert axes[0]["images"][0] == (len(names), len(names))
    assert axes[0]["yticklabels"][: len(names)] == [n[:18] for n in names] or names
    bars = sum(a["patches"] for a in axes[1:])
    expected_bars = min(8, len(explanation.concepts.text)) + min(8, len(explanation.concepts.image))
    assert bars >= expected_bars > 0

    # 3. neighbour graph (as a person reads it): one line per edge, one marker per node
    panel.tabs.setCurrentWidget(panel.graph)
    qtbot.waitUntil(lambda: panel.idle() and panel.graph.plot.result is not None, timeout=30000)
    gax = panel.graph.plot.result.info["drawn"][0]
    nodes = panel.graph.graph.nodes
    assert sum(gax["markers"]) == len([n for n in nodes if n.id in panel.graph.pixels]) == len(nodes)
    assert gax["lines"] == len(panel.graph.graph.edges)

    # clicking the result photo's node selects it in the results; a click on empty space does nothing
    graph = panel.graph.graph
    node = graph.node("result")
    assert node.path == results[0].path
    point = panel.graph.plot.image_to_widget(*panel.graph.pixels[node.id]).toPoint()
    qtbot.mouseClick(panel.graph.plot, Qt.LeftButton, pos=point)
    assert window.current_result().path == results[0].path
    qtbot.mouseClick(panel.graph.plot, Qt.LeftButton, pos=QPoint(2, 2))
    assert window.current_result().path == results[0].path and not window.opened_urls

    # Enter on a result opens the built-in viewer (the system's viewer is in the context menu)
    window.view.setFocus()
    qtbot.keyClick(window.view, Qt.Key_Return)
    assert window.stack.currentWidget() is window.viewer and window.viewer.result.path == results[0].path
    qtbot.keyClick(window.viewer, Qt.Key_Escape)
    assert window.stack.currentWidget() is window.view and not window.opened_urls

    # Export and read back
    out = tmp_path / "results.csv"
    assert window.export_results(str(out))
    with open(out, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(results)
    assert rows[0]["path"] == results[0].path and rows[0]["query"] == "a red dog"

    # Esc clears the search: the library again
    window.actions.clear.trigger()
    assert window.page.is_library and window.search_bar.text() == ""
    qtbot.waitUntil(lambda: window.model.rowCount() == 12, timeout=30000)


def test_find_captions_and_similar(qtbot, make_window, photos):
    window = make_window()
    open_and_index(qtbot, window, photos)
    photo = str(sorted(photos.glob("*.jpg"))[0])
    captions = run_search(qtbot, window, lambda: window.handle_drop(photo))  # a dropped photo
    assert captions and all(r.caption and r.direction == "image->text" for r in captions)
    assert window.view.viewMode() == window.view.ViewMode.ListMode
    assert window.model.index(0).data(Qt.DisplayRole) == captions[0].caption
    explanation = select_first(qtbot, window)
    assert explanation.words
    assert window.explanation.attention.plot.result.info["drawn"][0]["images"]

    similar = run_search(qtbot, window, lambda: window.find_similar(photo))
    assert similar and all(r.path for r in similar)
    assert window.view.viewMode() == window.view.ViewMode.IconMode
    from sfe_desktop.qt.menus import result_context_menu

    menu = result_context_menu(window, window, similar[0])
    labels = [a.text().replace("&", "") for a in menu.actions() if a.text()]
    assert {"Find captions", "Find similar photos", "Copy path", "Reveal in file manager"} <= set(labels)
    next(a for a in menu.actions() if a.text().replace("&", "") == "Copy path").trigger()
    from PySide6.QtWidgets import QApplication

    assert QApplication.clipboard().text() == similar[0].path
    next(a for a in menu.actions() if a.text().replace("&", "") == "Reveal in file manager").trigger()
    assert window.opened_urls[-1] == str(photos)


def test_reopening_an_indexed_folder_counts_every_searchable_photo(qtbot, make_window, photos):
    open_and_index(qtbot, make_window(), photos)
    window = make_window()
    summary = open_and_index(qtbot, window, photos)  # nothing new to index
    assert summary.indexed == 0 and summary.searchable == 12
    assert "12 photos in photos" in window.results_label.text()  # the library, until a search
    assert window.model.rowCount() == 12 and window.page.is_library


def test_a_new_search_starts_at_its_top_and_a_new_sort_keeps_the_photo(qtbot, make_window, tmp_path):
    from qt_helpers import make_photos

    folder = tmp_path / "many"
    make_photos(folder, 40)
    window = make_window()
    window.resize(1000, 700)
    open_and_index(qtbot, window, folder)
    run_search(qtbot, window, lambda: window.search("a red dog"))
    last = window.model.index(window.model.rowCount() - 1)
    window.view.setCurrentIndex(last)
    window.view.scrollTo(last)
    assert window.view.verticalScrollBar().value() > 0
    kept = last.data(ResultRole).path
    sort = window.browse.sort
    sort.setCurrentIndex(sort.findData("name"))  # the same page arranged again: the photo stays current
    assert window.model.results()[0].path != kept or window.model.rowCount() == 1
    assert window.current_result().path == kept
    run_search(qtbot, window, lambda: window.search("two cats on a sofa"))
    assert not window.view.currentIndex().isValid()  # nothing carried over from the previous search
    assert window.view.verticalScrollBar().value() == 0


def test_a_folder_indexed_with_another_model_is_encoded_again(qtbot, make_window, photos):
    """After the app's model changes (an update, or Settings), a folder's index is encoded again with it when the
    folder opens, instead of failing every search with a command-line hint."""
    from sfe_desktop.model.runtime import tiny_runtime

    other = tiny_runtime(1)
    first = make_window(runtime_factory=lambda checkpoint, device: other)
    assert open_and_index(qtbot, first, photos).indexed == 12
    first.close()
    window = make_window()
    assert window.session.runtime.checkpoint_id != other.checkpoint_id
    summary = open_and_index(qtbot, window, photos)
    assert summary is not None and summary.indexed == 12 and not window.session.collection.stale
    qtbot.keyClicks(window.search_bar, "a red dog")
    results = run_search(qtbot, window, lambda: qtbot.keyClick(window.search_bar, Qt.Key_Return))
    assert len(results) == 12 and "failed" not in window.results_label.text().lower()
