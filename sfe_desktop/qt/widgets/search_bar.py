"""QtSearchBar: a line edit where Enter searches and Esc clears."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QLineEdit


class QtSearchBar(QLineEdit):
    """Emits :attr:`search_requested` with the stripped text on Enter, :attr:`cleared` on Esc."""

    search_requested = Signal(str)
    cleared = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setPlaceholderText("Describe a photo, e.g. “a dog running on the beach”  (Ctrl+F)")
        self.setClearButtonEnabled(True)
        self.returnPressed.connect(lambda: self.search_requested.emit(self.text().strip()))

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt API
        if event.key() == Qt.Key_Escape:
            self.clear()
            self.cleared.emit()
            return
        super().keyPressEvent(event)
