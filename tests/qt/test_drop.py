"""Real Qt drag-and-drop events (QDragEnterEvent / QDropEvent with file URLs) sent to the window."""
from __future__ import annotations

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication


def drop(window, path) -> tuple[bool, bool]:
    """Drag ``path`` over the window and drop it; return (enter accepted, drop accepted)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    pos = QPointF(window.width() / 2, window.height() / 2)
    enter = QDragEnterEvent(pos.toPoint(), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(window, enter)
    event = QDropEvent(pos, Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(window, event)
    return enter.isAccepted(), event.isAccepted()


def test_dropping_a_folder_indexes_it_and_a_photo_finds_captions(qtbot, make_window, photos):
    window = make_window()
    assert window.acceptDrops()
    with qtbot.waitSignal(window.session.index_finished, timeout=60000) as done:
        assert drop(window, photos) == (True, True)
    assert done.args[0].indexed == 12
    photo = sorted(photos.glob("*.jpg"))[0]
    with qtbot.waitSignal(window.session.results_ready, timeout=30000) as found:
        assert drop(window, photo) == (True, True)
    direction, _query, results = found.args
    assert direction == "image->text" and results and all(r.caption for r in results)


def test_dropping_something_else_says_so(qtbot, make_window, tmp_path):
    window = make_window()
    note = tmp_path / "notes.txt"
    note.write_text("hello")
    drop(window, note)
    assert "neither" in window.message_bar.text() and window.message_bar.level == "warning"
    mime = QMimeData()
    mime.setText("just text")  # not a file: the drag is refused
    enter = QDragEnterEvent(window.rect().center(), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    QApplication.sendEvent(window, enter)
    assert not enter.isAccepted()
