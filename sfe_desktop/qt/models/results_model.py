"""QtResultsModel: the current result list for a ``QListView``, with lazily loaded thumbnails."""
from __future__ import annotations

import os
from collections import OrderedDict
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt, QThreadPool
from PySide6.QtGui import QImage, QPixmap

from ...search.browse import strength
from ...search.types import FILE_TIME, IMAGE_TO_IMAGE, LIBRARY, Result
from ..workers import QtThumbnailSignals, QtThumbnailWorker

ResultRole = Qt.UserRole + 1
ThumbnailRole = Qt.UserRole + 2
ScoreRole = Qt.UserRole + 3
PathRole = Qt.UserRole + 4
StrengthRole = Qt.UserRole + 5   # "strong", "weak" or None (no confidence)
BadgeRole = Qt.UserRole + 6      # the text on a tile's corner: the confidence, else the score; "" in the library


def result_title(result: Result) -> str:
    """What a result shows as its text: the caption for image->text, else the file name."""
    if result.caption and not result.path:
        return result.caption
    return os.path.basename(result.path or "") or (result.caption or "")


def badge(result: Result) -> str:
    """The confidence as a percentage, or the score when the model gives no confidence; for similar photos how alike
    they are; nothing in the library."""
    if result.direction == LIBRARY:
        return ""
    if result.direction == IMAGE_TO_IMAGE:  # how alike the two photos are: the model's cosine
        return f"{max(result.step1, 0.0):.0%}"
    return f"{result.confidence:.0%}" if result.confidence is not None else f"{result.score:.2f}"


def match_line(result: Result) -> str:
    """One line on how well ``result`` matches, the raw scores included (tooltips, the explanation's header)."""
    if result.direction == IMAGE_TO_IMAGE:
        return f"{max(result.step1, 0.0):.0%} alike (the model's cosine of the two photos, {result.step1:.4f})"
    scores = f"score {result.score:.4f}, Step-1 score {result.step1:.4f}"
    if result.confidence is None:
        return f"{scores} (this model gives no confidence)"
    word = "strong match" if strength(result) == "strong" else "weak match"
    return f"{word}: {result.confidence:.0%} confidence ({scores})"


def date_line(result: Result) -> str:
    if not result.date_taken:
        return ""
    when = result.date_taken.replace("T", " ")
    return f"modified {when} (no date taken in the photo)" if result.date_source == FILE_TIME else f"taken {when}"


class QtResultsModel(QAbstractListModel):
    """A read-only list of core ``Result`` objects.

    ``ThumbnailRole`` returns a ``QPixmap`` when the thumbnail is cached, otherwise ``None`` after
    queueing one :class:`~sfe_desktop.qt.workers.QtThumbnailWorker` for it; only rows that the view
    paints ask, so 10,000 results cost nothing until scrolled into view.
    """

    CACHE_SIZE = 2000

    def __init__(self, thumb_size: int = 256, parent=None):
        super().__init__(parent)
        self._results: list[Result] = []
        self._row_of: dict[str, list[int]] = {}
        self.thumb_size = thumb_size
        self._cache: OrderedDict[str, QPixmap | None] = OrderedDict()
        self._pending: set[str] = set()
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max(1, min(4, (os.cpu_count() or 2) - 1)))
        self._signals = QtThumbnailSignals(self)
        self._signals.loaded.connect(self._on_loaded)
        self.resolve = None  # optional ``resolve(path) -> cached thumbnail path``, called on pool threads

    # -- contents ------------------------------------------------------------------------------
    def set_results(self, results: list[Result]) -> None:
        self.pool.clear()  # drop queued thumbnails of the old result set
        self._pending.clear()
        self.beginResetModel()
        self._results = list(results)
        self._row_of = {}
        for row, r in enumerate(self._results):
            if r.path:
                self._row_of.setdefault(r.path, []).append(row)
        self.endResetModel()

    def results(self) -> list[Result]:
        return list(self._results)

    def result(self, row: int) -> Result:
        return self._results[row]

    def clear(self) -> None:
        self.set_results([])

    # -- Qt model API --------------------------------------------------------------------------
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._results)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._results):
            return None
        r = self._results[index.row()]
        if role == Qt.DisplayRole:
            return result_title(r)
        if role == Qt.ToolTipRole:
            lines = [r.path or r.caption or "", "" if r.direction == LIBRARY else match_line(r)]
            if r.width and r.height:
                lines.append(f"{r.width} × {r.height}")
            lines.append(date_line(r))
            return "\n".join(x for x in lines if x)
        if role == ResultRole:
            return r
        if role == StrengthRole:
            return strength(r)
        if role == BadgeRole:
            return badge(r)
        if role == ScoreRole:
            return float(r.score)
        if role == PathRole:
            return r.path
        if role == ThumbnailRole:
            return self._thumbnail(r.path)
        return None

    # -- thumbnails ----------------------------------------------------------------------------
    def _thumbnail(self, path: str | None) -> QPixmap | None:
        if not path:
            return None
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        if path not in self._pending:
            self._pending.add(path)
            self.pool.start(QtThumbnailWorker(path, self.thumb_size, self._signals, self.resolve))
        return None

    def _on_loaded(self, path: str, image: QImage) -> None:
        if path not in self._pending:  # from a cleared result set
            return
        self._pending.discard(path)
        self._cache[path] = None if image.isNull() else QPixmap.fromImage(image)  # GUI thread
        while len(self._cache) > self.CACHE_SIZE:
            self._cache.popitem(last=False)
        for row in self._row_of.get(path, []):
            idx = self.index(row)
            self.dataChanged.emit(idx, idx, [ThumbnailRole])

    def thumbnails_pending(self) -> int:
        return len(self._pending)

    def shutdown(self, timeout_ms: int = 2000) -> None:
        self.pool.clear()
        self.pool.waitForDone(timeout_ms)
