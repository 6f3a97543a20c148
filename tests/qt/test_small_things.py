"""The small things: what is enabled when, counts and plurals, naming an unreadable file, the export dialog's
folder, and a grid that fills its pane."""
from __future__ import annotations

import os

from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import QFileDialog
from qt_helpers import make_photos, open_and_index, run_search


def test_actions_need_a_folder_and_cancel_needs_indexing(qtbot, make_window, photos):
    window = make_window()
    a = window.actions
    assert not a.export.isEnabled() and not a.reindex.isEnabled() and not a.cancel.isEnabled()
    during, finished = [], []  # connected first: a small folder may finish before a wait could start
    window.session.index_progress.connect(
        lambda *args: during.append((a.export.isEnabled(), a.cancel.isEnabled(), a.reindex.isEnabled())))
    window.session.index_finished.connect(lambda *args: finished.append(1))
    window.open_folder(str(photos))
    qtbot.waitUntil(lambda: bool(finished), timeout=60000)
    assert during and during[0] == (True, True, False)
    qtbot.waitUntil(lambda: a.reindex.isEnabled(), timeout=10000)
    assert not a.cancel.isEnabled()


def test_one_photo_is_one_photo_and_the_unreadable_file_is_named(qtbot, make_window, tmp_path):
    folder = tmp_path / "two"
    make_photos(folder, 1)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    window = make_window()
    summary = open_and_index(qtbot, window, folder)
    assert summary.skipped == 1
    assert window.message_bar.text() == ("1 of 2 files could not be read and was skipped: broken.jpg "
                                         "(cannot decode).")
    assert window.statusBar().currentMessage().startswith("Indexed 1 new photo; 0 unchanged")
    assert window.results_label.text().startswith("1 photo in two.")
    run_search(qtbot, window, lambda: window.search("a dog"))
    assert window.results_label.text() == "1 photo for “a dog”, best score first (this model gives no match confidence)."


def test_the_save_dialog_starts_in_documents_then_in_the_last_export_folder(qtbot, make_window, photos,
                                                                            tmp_path, monkeypatch):
    window = make_window()
    open_and_index(qtbot, window, photos)
    asked = []
    target = tmp_path / "exports" / "mine.csv"
    target.parent.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda parent, title, start, filters: asked.append(start) or (str(target), filters))
    assert window.export_results()
    documents = QStandardPaths.writableLocation(QStandardPaths.DocumentsLocation)
    first = os.path.dirname(asked[0])
    assert first == (documents if os.path.isdir(documents) else os.path.expanduser("~"))
    assert first != str(photos)  # not the photo folder
    assert window.export_results()
    assert os.path.dirname(asked[1]) == str(target.parent)


def test_the_grid_fills_its_pane(qtbot, make_window, photos):
    window = make_window()
    open_and_index(qtbot, window, photos)
    for size in ((1000, 700), (1600, 1000)):
        window.resize(*size)
        qtbot.waitUntil(lambda: window.view.viewport().width() < size[0], timeout=5000)
        qtbot.wait(50)
        view = window.view
        width = view.viewport().width()
        cell = view.gridSize().width()
        columns = (width - 1) // cell
        assert columns >= 2 and width - columns * cell <= columns  # at most a pixel a column left over
        tiles = [view.visualRect(window.model.index(i)) for i in range(columns)]
        assert tiles[-1].right() >= width - columns - 2  # the last column reaches the right edge


def test_similar_photos_are_listed_most_alike_first_without_a_confidence_excuse():
    """Photos compared with a photo have no match confidence by design: the line does not blame the model."""
    from sfe_desktop.qt.texts import results_label
    from sfe_desktop.search.types import IMAGE_TO_IMAGE, Result

    hits = [Result(1, 3.6, 3.6, IMAGE_TO_IMAGE, "/photos/a.jpg", path="/photos/b.jpg")]
    assert results_label(IMAGE_TO_IMAGE, "/photos/a.jpg", hits, 1, False) == "1 photo similar to a.jpg, most alike first."
