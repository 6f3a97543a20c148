"""QtPhotoViewer: one photo at full size in the window (zoomed to fit), stepped through with the arrow keys, with
the match's heatmap over it on demand."""
from __future__ import annotations

import os

import numpy as np
from PySide6.QtCore import QEvent, QRectF, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from ...search.types import Result
from ..models.results_model import date_line, match_line
from ..workers import QtThumbnailSignals, QtThumbnailWorker

VIEW_SIZE = 2560  # longest side a photo is decoded at for the viewer (enough for a 4K screen, fast to scale)
OVERLAY_OPACITY = 0.55
VIEWER_KEYS = (Qt.Key_Left, Qt.Key_Up, Qt.Key_PageUp, Qt.Key_Right, Qt.Key_Down, Qt.Key_PageDown, Qt.Key_Escape,
               Qt.Key_Space, Qt.Key_Return, Qt.Key_Enter, Qt.Key_H)
# inferno, sampled at 0, 0.25, 0.5, 0.75 and 1 (the explanation panel's heatmaps use the same map)
_INFERNO = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)


def heat_image(heat: np.ndarray, grid: tuple[int, int]) -> QImage:
    """A (h*w,) or (h, w) heatmap, scaled to [0, 1], as a small RGBA QImage in the inferno colours (one pixel
    per patch; drawn scaled with smoothing it is bilinear)."""
    h, w = int(grid[0]), int(grid[1])
    heat = np.asarray(heat, dtype=np.float32).reshape(h, w)
    lo, hi = float(heat.min()), float(heat.max())
    heat = (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)
    pos = heat * (len(_INFERNO) - 1)
    low = np.clip(np.floor(pos).astype(int), 0, len(_INFERNO) - 2)
    frac = (pos - low)[..., None]
    rgb = _INFERNO[low] * (1 - frac) + _INFERNO[low + 1] * frac
    rgba = np.concatenate([rgb, np.full((h, w, 1), 255, np.float32)], axis=-1).astype(np.uint8)
    rgba = np.ascontiguousarray(rgba)
    return QImage(rgba.data, w, h, 4 * w, QImage.Format_RGBA8888).copy()


class QtPhotoCanvas(QWidget):
    """Paints a photo scaled to fit (never enlarged past 2x), and the heatmap over it when shown."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setMinimumSize(200, 150)
        self.image: QImage | None = None
        self.overlay: QImage | None = None
        self.show_overlay = True
        self.message = ""

    def photo_rect(self) -> QRectF:
        """Where the photo is drawn (fitted and centred), in widget coordinates."""
        if self.image is None or self.image.isNull():
            return QRectF()
        size = QSize(self.image.width(), self.image.height())
        scaled = size.scaled(self.size(), Qt.KeepAspectRatio)
        if scaled.width() > 2 * size.width():  # small photos: at most twice their size
            scaled = size * 2
        x, y = (self.width() - scaled.width()) / 2, (self.height() - scaled.height()) / 2
        return QRectF(x, y, scaled.width(), scaled.height())

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(24, 24, 24))
        if self.image is None or self.image.isNull():
            painter.setPen(QColor(200, 200, 200))
            painter.drawText(self.rect(), Qt.AlignCenter, self.message)
            painter.end()
            return
        rect = self.photo_rect()
        painter.setRenderHint(QPainter.SmoothPixmapTransform)
        painter.drawImage(rect, self.image)
        if self.overlay is not None and self.show_overlay:
            painter.setOpacity(OVERLAY_OPACITY)
            painter.drawImage(rect, self.overlay)
        painter.end()


class QtPhotoViewer(QWidget):
    """The built-in viewer. Signals: :attr:`step` (-1 or +1: the arrow keys, or the buttons), :attr:`closed` (Esc,
    Space or Back), :attr:`open_external` (the photo's path, for the system's viewer)."""

    step = Signal(int)
    closed = Signal()
    open_external = Signal(str)

    def __init__(self, pool: QThreadPool | None = None, parent=None):
        super().__init__(parent)
        self.setFocusPolicy(Qt.StrongFocus)
        self.pool = pool or QThreadPool.globalInstance()
        self.result: Result | None = None
        self.canvas = QtPhotoCanvas()
        self.back = QPushButton("← Back")
        self.back.setToolTip("Back to the results (Esc)")
        self.prev = QPushButton("‹")
        self.prev.setToolTip("Previous photo (←)")
        self.next = QPushButton("›")
        self.next.setToolTip("Next photo (→)")
        self.title = QLabel()
        self.title.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.details = QLabel()
        self.details.setWordWrap(True)
        self.overlay_button = QPushButton("Heatmap")
        self.overlay_button.setCheckable(True)
        self.overlay_button.setChecked(True)
        self.overlay_button.setToolTip("Show where the model found the query in this photo (H)")
        self.external = QPushButton("Open in default app")
        for button in (self.back, self.prev, self.next, self.overlay_button, self.external):
            button.setFocusPolicy(Qt.NoFocus)  # the keys stay with the viewer
        bar = QHBoxLayout()
        bar.addWidget(self.back)
        bar.addWidget(self.prev)
        bar.addWidget(self.next)
        bar.addWidget(self.title, 1)
        bar.addWidget(self.overlay_button)
        bar.addWidget(self.external)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(bar)
        lay.addWidget(self.details)
        lay.addWidget(self.canvas, 1)
        self.back.clicked.connect(self.closed.emit)
        self.prev.clicked.connect(lambda: self.step.emit(-1))
        self.next.clicked.connect(lambda: self.step.emit(1))
        self.overlay_button.toggled.connect(self._set_overlay_visible)
        self.external.clicked.connect(lambda: self.result and self.result.path and
                                      self.open_external.emit(self.result.path))
        self._signals = QtThumbnailSignals(self)
        self._signals.loaded.connect(self._on_loaded)
        self._heat: tuple[str, QImage] | None = None  # (photo, overlay) of the current explanation

    # -- what is shown -----------------------------------------------------------------------------
    def show_result(self, result: Result, position: int, count: int) -> None:
        """Show ``result``'s photo (decoded off the UI thread), the ``position``-th of ``count`` (from 1)."""
        self.result = result
        name = os.path.basename(result.path or "")
        self.title.setText(f"<b>{name}</b>  ·  {position:,} of {count:,}")
        self.details.setText("  ·  ".join(x for x in (date_line(result), "" if result.direction == "library"
                                                      else match_line(result)) if x))
        self.prev.setEnabled(position > 1)
        self.next.setEnabled(position < count)
        self.canvas.image = None
        self.canvas.message = "Loading…"
        self._sync_overlay()
        self.canvas.update()
        if result.path:
            self.pool.start(QtThumbnailWorker(result.path, VIEW_SIZE, self._signals))

    def _on_loaded(self, path: str, image: QImage) -> None:
        if self.result is None or path != self.result.path:
            return  # an earlier photo, stepped past
        self.canvas.image = None if image.isNull() else image
        self.canvas.message = "" if not image.isNull() else f"{os.path.basename(path)} cannot be read."
        self.canvas.update()

    def set_heatmap(self, photo: str | None, heat: np.ndarray | None, grid: tuple[int, int] | None) -> None:
        """The heatmap of the explanation of ``photo`` (shown while that photo is)."""
        self._heat = (photo, heat_image(heat, grid)) if photo and heat is not None and grid else None
        self._sync_overlay()

    def _sync_overlay(self) -> None:
        current = self.result.path if self.result else None
        overlay = self._heat[1] if self._heat and self._heat[0] == current else None
        self.canvas.overlay = overlay
        self.overlay_button.setEnabled(overlay is not None)
        self.overlay_button.setToolTip("Show where the model found the query in this photo (H)" if overlay
                                       else "No heatmap for this photo (the library matched no query)"
                                       if self.result and self.result.direction == "library"
                                       else "No heatmap yet")
        self.canvas.update()

    def _set_overlay_visible(self, on: bool) -> None:
        self.canvas.show_overlay = on
        self.canvas.update()

    def overlay_shown(self) -> bool:
        return self.canvas.overlay is not None and self.canvas.show_overlay

    # -- keys ----------------------------------------------------------------------------------------
    def event(self, event) -> bool:  # noqa: D102 - Qt API
        if event.type() == QEvent.ShortcutOverride and event.key() in VIEWER_KEYS and not event.modifiers():
            event.accept()  # Esc closes the viewer here; the window's Esc (clear the search) must not see it
            return True
        return super().event(event)

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt API
        key = event.key()
        if key in (Qt.Key_Left, Qt.Key_Up, Qt.Key_PageUp):
            self.step.emit(-1)
        elif key in (Qt.Key_Right, Qt.Key_Down, Qt.Key_PageDown):
            self.step.emit(1)
        elif key in (Qt.Key_Escape, Qt.Key_Space, Qt.Key_Return, Qt.Key_Enter):
            self.closed.emit()
        elif key == Qt.Key_H:
            self.overlay_button.toggle()
        else:
            super().keyPressEvent(event)
