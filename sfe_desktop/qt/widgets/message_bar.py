"""QtMessageBar: an in-window banner for errors and notices (no modal dialogs, no tracebacks)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton

_STYLES = {  # (background, text, border): readable in light and dark palettes alike
    "error": ("#fde2e1", "#7a1712", "#e8a29e"),
    "warning": ("#fff4d6", "#6b4e00", "#e6cf8a"),
    "info": ("#e3effd", "#123f73", "#a9c8ee"),
}


class QtMessageBar(QFrame):
    """Shows one message at a time with a level (``info``, ``warning``, ``error``) and a close button."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("messageBar")
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.dismiss)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 6, 6)
        lay.addWidget(self.label, 1)
        lay.addWidget(close)
        self.level = ""
        self.hide()

    def show_message(self, text: str, level: str = "error") -> None:
        self.level = level
        bg, fg, border = _STYLES[level]
        self.setStyleSheet(f"#messageBar {{ background:{bg}; border:1px solid {border}; border-radius:4px; }}"
                           f" #messageBar QLabel, #messageBar QToolButton {{ color:{fg}; border:none; }}")
        self.label.setText(text)
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""

    def dismiss(self) -> None:
        self.level = ""
        self.label.clear()
        self.hide()
