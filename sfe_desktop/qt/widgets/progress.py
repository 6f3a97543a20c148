"""QtIndexProgress: indexing progress bar with count, rate, time left and a Cancel button."""
from __future__ import annotations

import time

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget


def format_duration(seconds: float) -> str:
    """``75`` -> ``"1 min 15 s"``; short and readable."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def progress_text(done: int, total: int, rate: float, skipped: int = 0) -> str:
    """The label under the bar: ``"120 / 400 photos · 35.2 photos/s · 8 s left"``."""
    parts = [f"{done:,} / {total:,} photos"]
    if rate > 0:
        parts.append(f"{rate:.1f} photos/s")
        parts.append(f"{format_duration((total - done) / rate)} left")
    if skipped:
        parts.append(f"{skipped:,} skipped")
    return " · ".join(parts)


class QtIndexProgress(QWidget):
    """Shown while a folder is indexed; updates at most ~10 times a second."""

    cancel_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(14)
        self.label = QLabel("Indexing…")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop indexing; photos indexed so far stay searchable")
        self.cancel_button.clicked.connect(self._on_cancel)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 8, 4)
        lay.addWidget(QLabel("Indexing"))
        lay.addWidget(self.bar, 2)
        lay.addWidget(self.label, 3)
        lay.addWidget(self.cancel_button)
        self._last = 0.0

    def start(self, folder: str) -> None:
        self.bar.setRange(0, 0)  # busy until the first progress report
        self.label.setText(f"Scanning {folder}…")
        self.cancel_button.setEnabled(True)
        self._last = 0.0
        self.show()

    def update_progress(self, p) -> None:
        """Take a core ``IndexProgress``."""
        now = time.monotonic()
        if now - self._last < 0.1 and p.done < p.total:
            return
        self._last = now
        self.bar.setRange(0, max(1, p.total))
        self.bar.setValue(p.done)
        self.label.setText(progress_text(p.done, p.total, p.rate, p.skipped))

    def _on_cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.label.setText("Cancelling… (finishing the current batch)")
        self.cancel_requested.emit()
