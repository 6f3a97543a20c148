"""Strong and weak matches from the model's confidence, a search that matches nothing, the captions view with its
query photo, and Back/Forward (keys and the mouse's side buttons)."""
from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication
from qt_helpers import open_and_index, run_search

from sfe_desktop.qt.models.results_model import BadgeRole, StrengthRole


def with_confidence(monkeypatch, window, confidences):
    """The collection's text search, each result given the confidence that ``confidences(rank)`` says (the model
    side computes it; older checkpoints give None)."""
    collection = window.session.collection
    search = collection.search_text
    monkeypatch.setattr(collection, "search_text", lambda *a, **k: [
        replace(r, confidence=confidences(r.rank)) for r in search(*a, **k)])


def test_strong_matches_first_weak_ones_faded(qtbot, make_window, photos, monkeypatch):
    window = make_window()
    open_and_index(qtbot, window, photos)
    with_confidence(monkeypatch, window, lambda rank: 0.9 if rank <= 3 else 0.1)
    results = run_search(qtbot, window, lambda: window.search("a red dog"))
    assert window.results_label.text() == "3 strong matches for “a red dog” and 9 weak ones (faded)."
    model = window.model
    assert [model.index(i).data(StrengthRole) for i in range(12)] == ["strong"] * 3 + ["weak"] * 9
    assert model.index(0).data(BadgeRole) == "90%" and model.index(5).data(BadgeRole) == "10%"
    assert "strong match: 90% confidence (score" in model.index(0).data(Qt.ToolTipRole)
    with qtbot.waitSignal(window.session.explanation_ready, timeout=30000):
        window.view.setCurrentIndex(model.index(0))
    title = window.explanation.title
    assert "strong match, 90% confidence" in title.text() and "score" not in title.text()
    assert f"score {results[0].score:.4f}, Step-1 score {results[0].step1:.4f}" in title.toolTip()


def test_nothing_matches_says_so_and_offers_the_closest(qtbot, make_window, photos, monkeypatch):
    window = make_window()
    window.resize(1000, 700)
    open_and_index(qtbot, window, photos)
    with_confidence(monkeypatch, window, lambda rank: 0.05)
    results = run_search(qtbot, window, lambda: window.search("qwxz blorp"))
    assert len(results) == 12
    assert window.stack.currentWidget() is window.no_match and window.model.rowCount() == 0
    assert "Nothing matches “qwxz blorp”" in window.no_match_label.text()
    qtbot.mouseClick(window.show_closest, Qt.LeftButton)
    assert window.stack.currentWidget() is window.view and window.model.rowCount() == 12
    assert all(window.model.index(i).data(StrengthRole) == "weak" for i in range(12))


def test_without_a_confidence_the_score_is_shown(qtbot, make_window, photos, monkeypatch):
    window = make_window()
    open_and_index(qtbot, window, photos)
    with_confidence(monkeypatch, window, lambda rank: None)  # a checkpoint without a calibration
    results = run_search(qtbot, window, lambda: window.search("a red dog"))
    assert results[0].confidence is None
    assert window.model.index(0).data(BadgeRole) == f"{results[0].score:.2f}"
    assert window.model.index(0).data(StrengthRole) is None and window.stack.currentWidget() is window.view
    with qtbot.waitSignal(window.session.explanation_ready, timeout=30000):
        window.view.setCurrentIndex(window.model.index(0))
    assert f"score {results[0].score:.2f} for “a red dog”" in window.explanation.title.text()


def mouse_button(widget, button):
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    event = QMouseEvent(QMouseEvent.MouseButtonPress, pos, widget.mapToGlobal(pos), button, button, Qt.NoModifier)
    QApplication.sendEvent(widget, event)


def test_captions_view_shows_the_query_photo_and_back_forward_restore_pages(qtbot, make_window, photos):
    window = make_window()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    open_and_index(qtbot, window, photos)
    texts = run_search(qtbot, window, lambda: window.search("a red dog"))
    photo = texts[2].path
    captions = run_search(qtbot, window, lambda: window.find_captions(photo))
    header = window.header
    assert header.isVisible() and header.path == photo and "captions that describe" in header.text.text()
    qtbot.waitUntil(lambda: header.photo.pixmap() is not None and not header.photo.pixmap().isNull(), timeout=10000)
    assert window.view.viewMode() == window.view.ViewMode.ListMode
    assert [r.caption for r in window.model.results()] == [r.caption for r in captions]
    assert window.search_bar.text() == ""  # not the earlier text beside the photo's captions
    similar = run_search(qtbot, window, lambda: qtbot.mouseClick(header.other_button, Qt.LeftButton))
    assert window.page.kind == "image->image" and similar and "similar to" in header.text.text()

    window.search_bar.setFocus()
    qtbot.keyClick(window.search_bar, Qt.Key_Left, Qt.AltModifier)  # Alt+Left: the captions again, not re-run
    assert window.page.kind == "image->text" and header.path == photo
    assert [r.caption for r in window.model.results()] == [r.caption for r in captions]
    qtbot.keyClick(window.search_bar, Qt.Key_Left, Qt.AltModifier)
    assert window.page.kind == "text->image" and not header.isVisible() and window.search_bar.text() == "a red dog"
    assert [r.path for r in window.model.results()] == [r.path for r in texts]
    mouse_button(window.view.viewport(), Qt.ForwardButton)  # the mouse's side buttons
    assert window.page.kind == "image->text"
    mouse_button(window.view.viewport(), Qt.ForwardButton)
    assert window.page.kind == "image->image" and not window.actions.forward.isEnabled()
    mouse_button(window.view.viewport(), Qt.BackButton)
    assert window.page.kind == "image->text" and window.back_button.isEnabled()
    # a new search drops the pages ahead
    run_search(qtbot, window, lambda: window.search("a blue boat"))
    assert not window.forward_button.isEnabled() and [p.kind for p in window.history.pages] == [
        "library", "text->image", "image->text", "text->image"]
