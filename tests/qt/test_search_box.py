"""The search box: history, a photo's path or a dropped photo, focus, shortcuts that must reach the window, and a
query typed before the folder can be searched."""
from __future__ import annotations

import threading
import time

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QDialog
from qt_helpers import make_photos, open_and_index, run_search


def type_and_search(qtbot, window, text):
    window.search_bar.clear()
    qtbot.keyClicks(window.search_bar, text)
    return run_search(qtbot, window, lambda: qtbot.keyClick(window.search_bar, Qt.Key_Return))


def test_history_walks_with_up_and_down_drops_down_and_persists(qtbot, make_window, photos):
    window = make_window()
    open_and_index(qtbot, window, photos)
    for text in ("a red dog", "a blue boat", "a red dog"):
        type_and_search(qtbot, window, text)
    box = window.search_bar
    assert box.history == ["a red dog", "a blue boat"]  # newest first, once each
    assert box.hasFocus()  # the focus stays in the box after a search: typing again types
    box.clear()
    qtbot.keyClicks(box, "draft")
    qtbot.keyClick(box, Qt.Key_Up)
    assert box.text() == "a red dog"
    qtbot.keyClick(box, Qt.Key_Up)
    assert box.text() == "a blue boat"
    qtbot.keyClick(box, Qt.Key_Down)
    qtbot.keyClick(box, Qt.Key_Down)
    assert box.text() == "draft"
    box.clear()
    qtbot.keyClicks(box, "blue")  # the drop-down offers the past queries that contain it
    popup = box.completer().popup()
    qtbot.waitUntil(popup.isVisible, timeout=5000)
    assert [box.completer().completionModel().index(i, 0).data()
            for i in range(box.completer().completionCount())] == ["a blue boat"]
    results = run_search(qtbot, window, lambda: box.completer().activated.emit("a blue boat"))
    assert results and window.page.query == "a blue boat"
    again = make_window()  # a new window (the next start) remembers them
    assert again.search_bar.history == ["a blue boat", "a red dog"]


def test_a_photo_path_typed_or_a_photo_dropped_searches_by_that_photo(qtbot, make_window, photos, tmp_path):
    window = make_window()
    open_and_index(qtbot, window, photos)
    photo = sorted(photos.glob("*.jpg"))[3]
    captions = type_and_search(qtbot, window, f"'{photo}'")
    assert captions and window.page.kind == "image->text" and window.page.query == str(photo)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(sorted(photos.glob("*.jpg"))[5]))])
    box = window.search_bar
    pos = QPointF(box.width() / 2, box.height() / 2)
    enter = QDragEnterEvent(pos.toPoint(), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(box, enter)
    assert enter.isAccepted()
    with qtbot.waitSignal(window.session.results_ready, timeout=30000) as found:
        QApplication.sendEvent(box, QDropEvent(pos, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    assert found.args[0] == "image->text" and found.args[1] == str(sorted(photos.glob("*.jpg"))[5])
    missing = type_and_search(qtbot, window, str(tmp_path / "not-there.jpg"))  # not a file: a text search
    assert window.page.kind == "text->image" and missing


def test_shortcuts_reach_the_window_from_the_search_box(qtbot, make_window, photos, monkeypatch, tmp_path):
    window = make_window()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    assert not window.actions.export.isEnabled()  # no folder: nothing to export (the menu shows it greyed)
    empty = tmp_path / "empty"
    empty.mkdir()
    open_and_index(qtbot, window, empty)
    box = window.search_bar
    box.setFocus()
    qtbot.keyClick(box, Qt.Key_E, Qt.ControlModifier)  # Ctrl+E on an empty grid says so (not the line's end)
    assert window.message_bar.text().startswith("Nothing to export: the list is empty")
    opened = []
    monkeypatch.setattr(QDialog, "open", lambda self: opened.append(self))
    qtbot.keyClick(box, Qt.Key_Comma, Qt.ControlModifier)  # Ctrl+, opens the settings
    assert opened and opened[0].windowTitle() == "Settings"
    from sfe_desktop.qt.menus import SHORTCUTS

    assert "Ctrl+,        settings" in SHORTCUTS and "Alt+Left" in SHORTCUTS
    # Esc clears the search, the notice and the status line
    open_and_index(qtbot, window, photos)
    assert window.statusBar().currentMessage().startswith("Indexed 12 new photos")
    type_and_search(qtbot, window, "a red dog")
    window.show_message("a notice", "info")
    box.setFocus()
    qtbot.keyClick(box, Qt.Key_Escape)
    assert window.statusBar().currentMessage() == "" and window.message_bar.text() == ""
    assert window.page.is_library


def test_a_query_typed_while_the_model_loads_runs_once_it_can(qtbot, make_window, tiny, photos):
    gate = threading.Event()

    def slow_factory(checkpoint, device):
        gate.wait(30)
        return tiny

    window = make_window(runtime_factory=slow_factory, wait_model=False)
    window.open_folder(str(photos))
    qtbot.keyClicks(window.search_bar, "a red dog")
    qtbot.keyClick(window.search_bar, Qt.Key_Return)
    assert "as soon as the model has loaded" in window.message_bar.text()
    time.sleep(0.2)
    with qtbot.waitSignal(window.session.results_ready, timeout=60000) as found:
        gate.set()
    assert found.args[1] == "a red dog" and window.page.query == "a red dog"


def test_the_search_runs_again_when_indexing_finishes(qtbot, make_window, tmp_path):
    """Cancel, search what is indexed so far, resume: the results are those of the whole folder at the end."""
    folder = tmp_path / "many"
    make_photos(folder, 60, size=(64, 48))
    window = make_window()
    with qtbot.waitSignal(window.session.index_finished, timeout=60000) as done:
        with qtbot.waitSignal(window.session.index_progress, timeout=30000):
            window.open_folder(str(folder))
        window.session.cancel_indexing()
    searchable = window.session.collection.info()["indexed"]
    assert done.args[0] is None or done.args[0].cancelled
    partial = run_search(qtbot, window, lambda: window.search("a red dog"))
    assert len(partial) == searchable < 60
    assert window.actions.reindex.isEnabled() and not window.actions.cancel.isEnabled()
    with qtbot.waitSignal(window.session.results_ready, timeout=60000) as rerun:
        window.actions.reindex.trigger()
    assert len(rerun.args[2]) == 50 and window.page.query == "a red dog"  # top 50 of all 60 (the setting)
    assert len(window.history.pages) == 2  # the library, the search: the re-run replaced its page
    with qtbot.waitSignal(window.session.library_ready, timeout=30000):
        window.go_back()  # the library, listed again
    assert window.page.is_library and window.model.rowCount() == 60
    window.go_forward()
    assert window.page.query == "a red dog" and len(window.page.results) == 50
