"""QtSearchBar: the search box. Enter searches, Esc clears, Up/Down walk the search history (which also drops
down as you type), and a photo (its path pasted, or the file dropped) searches by that photo."""
from __future__ import annotations

import os
from urllib.parse import unquote, urlparse

from PySide6.QtCore import QEvent, QKeyCombination, QStringListModel, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QCompleter, QLineEdit

from ...data.images import IMAGE_EXTENSIONS

MAX_HISTORY = 50
# window shortcuts that QLineEdit would otherwise take for itself (Ctrl+E moves to the line's end on X11)
WINDOW_SHORTCUTS = (QKeyCombination(Qt.ControlModifier, Qt.Key_E),
                    QKeyCombination(Qt.ControlModifier | Qt.ShiftModifier, Qt.Key_E))


def photo_path(text: str) -> str | None:
    """The photo file ``text`` names (a path, quoted or not, ``~``, or a ``file://`` URL), or None."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    if text.startswith("file://"):
        text = unquote(urlparse(text).path)
    if not text or os.path.splitext(text)[1].lower() not in IMAGE_EXTENSIONS:
        return None
    path = os.path.abspath(os.path.expanduser(text))
    return path if os.path.isfile(path) else None


class QtSearchBar(QLineEdit):
    """Emits :attr:`search_requested` (text) on Enter, :attr:`photo_requested` (path) when the text names a
    photo or a photo is dropped, and :attr:`cleared` on Esc. :attr:`history` holds past queries, newest first."""

    search_requested = Signal(str)
    photo_requested = Signal(str)
    cleared = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setPlaceholderText("Describe a photo, e.g. “a dog running on the beach”, or paste a photo's path"
                                "  (Ctrl+F)")
        self.setClearButtonEnabled(True)
        self.setAcceptDrops(True)
        self.history: list[str] = []
        self._browse: int | None = None   # position in the history while Up/Down walk it
        self._draft = ""                  # what was typed before walking the history
        self._submitting = False
        self._model = QStringListModel(self)
        completer = QCompleter(self._model, self)
        completer.setCaseSensitivity(Qt.CaseInsensitive)
        completer.setFilterMode(Qt.MatchContains)
        completer.setCompletionMode(QCompleter.PopupCompletion)
        completer.activated.connect(lambda text: self._submit(text))
        self.setCompleter(completer)
        self.returnPressed.connect(lambda: self._submit(self.text()))
        self.textEdited.connect(lambda _text: setattr(self, "_browse", None))

    # -- history -----------------------------------------------------------------------------------
    def set_history(self, items: list[str]) -> None:
        self.history = [i for i in dict.fromkeys(str(x).strip() for x in items) if i][:MAX_HISTORY]
        self._model.setStringList(self.history)

    def remember(self, query: str) -> None:
        """Put ``query`` first in the history (once)."""
        query = query.strip()
        if query:
            self.set_history([query] + [h for h in self.history if h != query])

    def _walk(self, step: int) -> None:
        """Up (step +1) shows older queries, Down (-1) newer ones, then what was typed."""
        if not self.history:
            return
        if self._browse is None:
            if step < 0:
                return
            self._draft, self._browse = self.text(), -1
        self._browse = max(-1, min(len(self.history) - 1, self._browse + step))
        self.setText(self._draft if self._browse < 0 else self.history[self._browse])
        if self._browse < 0:
            self._browse = None

    # -- input -------------------------------------------------------------------------------------
    def _submit(self, text: str) -> None:
        if self._submitting:  # the completer's Enter reaches the box too: one search for one key press
            return
        self._submitting = True
        QTimer.singleShot(0, lambda: setattr(self, "_submitting", False))
        self._browse = None
        photo = photo_path(text)
        if photo:
            self.photo_requested.emit(photo)
        else:
            self.search_requested.emit(text.strip())

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        popup = self.completer().popup()
        if event.key() == Qt.Key_Escape and not popup.isVisible():
            self.clear()
            self._browse = None
            self.cleared.emit()
            return
        if event.key() in (Qt.Key_Up, Qt.Key_Down) and not popup.isVisible():
            self._walk(1 if event.key() == Qt.Key_Up else -1)
            return
        super().keyPressEvent(event)

    def event(self, event) -> bool:  # noqa: D102 - Qt API
        if event.type() == QEvent.ShortcutOverride and event.keyCombination() in WINDOW_SHORTCUTS:
            event.ignore()  # let the window's shortcut have it
            return True
        return super().event(event)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt API
        if self._dropped_photo(event) or event.mimeData().hasText():
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 - Qt API
        event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt API
        photo = self._dropped_photo(event)
        if photo:
            event.acceptProposedAction()
            self.setText(photo)
            self.photo_requested.emit(photo)
            return
        super().dropEvent(event)

    @staticmethod
    def _dropped_photo(event) -> str | None:
        mime = event.mimeData()
        if mime.hasUrls():
            for url in mime.urls():
                if url.isLocalFile() and photo_path(url.toLocalFile()):
                    return photo_path(url.toLocalFile())
        return photo_path(mime.text()) if mime.hasText() else None
