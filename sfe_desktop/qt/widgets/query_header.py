"""QtQueryHeader: the query photo above the results of a search by photo (its captions, or similar photos)."""
from __future__ import annotations

import html
import os

from PySide6.QtCore import QThreadPool, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ...search.types import IMAGE_TO_TEXT
from ..workers import QtThumbnailSignals, QtThumbnailWorker

HEADER_PHOTO = 150  # the query photo's longest side in the header


class QtPhotoLabel(QLabel):
    """A label that emits :attr:`clicked` on a left click."""

    clicked = Signal()

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.LeftButton:
            self.clicked.emit()
        super().mousePressEvent(event)


class QtQueryHeader(QWidget):
    """Shows the query photo (decoded off the UI thread), what the results are, and the other search by it.

    Signals: :attr:`view_requested` (the photo, for the viewer), :attr:`other_search` (the photo: captions when
    similar photos are shown, similar photos when captions are)."""

    view_requested = Signal(str)
    other_search = Signal(str, str)  # direction wanted, photo

    def __init__(self, pool: QThreadPool | None = None, parent=None):
        super().__init__(parent)
        self.pool = pool or QThreadPool.globalInstance()
        self.photo = QtPhotoLabel()
        self.photo.setFixedSize(HEADER_PHOTO, HEADER_PHOTO)
        self.photo.setAlignment(Qt.AlignCenter)
        self.photo.setCursor(Qt.PointingHandCursor)
        self.photo.setToolTip("View this photo")
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.view_button = QPushButton("View")
        self.other_button = QPushButton()
        buttons = QHBoxLayout()
        buttons.addWidget(self.view_button)
        buttons.addWidget(self.other_button)
        buttons.addStretch(1)
        right = QVBoxLayout()
        right.addWidget(self.text)
        right.addLayout(buttons)
        right.addStretch(1)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 4, 0, 4)
        lay.addWidget(self.photo)
        lay.addLayout(right, 1)
        self.path: str | None = None
        self.direction = ""
        self._signals = QtThumbnailSignals(self)
        self._signals.loaded.connect(self._on_loaded)
        self.view_button.clicked.connect(lambda: self.path and self.view_requested.emit(self.path))
        self.other_button.clicked.connect(self._other)
        self.photo.clicked.connect(lambda: self.path and self.view_requested.emit(self.path))

    def show_query(self, direction: str, path: str, count: int) -> None:
        """Head the results of a search by ``path`` in ``direction`` (image->text or image->image)."""
        if path != self.path:
            self.photo.clear()
            self.photo.setText("…")
            self.pool.start(QtThumbnailWorker(path, HEADER_PHOTO * 2, self._signals))
        self.path, self.direction = path, direction
        name = html.escape(os.path.basename(path))
        what = "captions that describe" if direction == IMAGE_TO_TEXT else "photos of this folder similar to"
        self.text.setText(f"Searching by a photo: the {what}<br><b>{name}</b><br>"
                          f"<small>{html.escape(os.path.dirname(path))}</small>")
        self.other_button.setText("Find similar photos" if direction == IMAGE_TO_TEXT else "Find captions")
        self.show()

    def _other(self) -> None:
        if self.path:
            from ...search.types import IMAGE_TO_IMAGE

            self.other_search.emit(IMAGE_TO_IMAGE if self.direction == IMAGE_TO_TEXT else IMAGE_TO_TEXT, self.path)

    def _on_loaded(self, path: str, image: QImage) -> None:
        if path != self.path:
            return
        if image.isNull():
            self.photo.setText("(cannot be read)")
            return
        dpr = self.devicePixelRatioF()
        pix = QPixmap.fromImage(image).scaled(self.photo.size() * dpr, Qt.KeepAspectRatio, Qt.SmoothTransformation)
        pix.setDevicePixelRatio(dpr)
        self.photo.setPixmap(pix)
