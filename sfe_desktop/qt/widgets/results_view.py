"""QtResultsView: the result grid (photos) or list (captions), with multi-selection.

The grid's cells share the pane's width among them (no strip of unused space on the right); Enter, Space and a
double-click ask for the built-in viewer; Ctrl+C copies the selected paths."""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QListView

from ..delegates import QtResultDelegate
from ..models.results_model import ResultRole

MIN_TILE = 150  # smallest thumbnail side of a grid cell (logical pixels)
CELL_MARGIN = 12  # a cell is its tile plus this


class QtResultsView(QListView):
    """Emits :attr:`open_requested` (index) on Enter, Space or a double-click, :attr:`copy_requested` on Ctrl+C."""

    open_requested = Signal(QModelIndex)
    copy_requested = Signal()

    def __init__(self, delegate: QtResultDelegate, parent=None):
        super().__init__(parent)
        self.delegate = delegate
        self.setItemDelegate(delegate)
        self.setSelectionMode(QAbstractItemView.ExtendedSelection)
        self.setUniformItemSizes(True)
        self.setMouseTracking(True)
        self.setContextMenuPolicy(Qt.CustomContextMenu)
        self.setVerticalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.grid_mode = True
        self.set_grid_mode(True)

    def set_grid_mode(self, grid: bool) -> None:
        """Thumbnail tiles (photos) or full-width rows (captions)."""
        self.grid_mode = grid
        self.delegate.caption_mode = not grid
        self.setViewMode(QListView.IconMode if grid else QListView.ListMode)
        self.setFlow(QListView.LeftToRight if grid else QListView.TopToBottom)
        self.setWrapping(grid)
        self.setResizeMode(QListView.Adjust)
        self.setMovement(QListView.Static)
        self.setSpacing(0)
        self.setWordWrap(True)
        # With an as-needed scroll bar QListView lays out for a viewport less the bar's width, so the cells
        # computed from the viewport would wrap one column early; a bar that is always there keeps them equal.
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOn if grid else Qt.ScrollBarAsNeeded)
        self.fit_cells()

    def fit_cells(self) -> None:
        """Share the viewport's width among as many cells of at least :data:`MIN_TILE` as fit."""
        if not self.grid_mode:
            self.setGridSize(QSize())
            return
        width = max(1, self.viewport().width())
        # QListView wraps a row once its cells pass the viewport's last pixel (width - 1), so share width - 1
        columns = max(1, (width - 1) // (MIN_TILE + CELL_MARGIN))
        cell = (width - 1) // columns
        self.delegate.tile = cell - CELL_MARGIN
        height = self.delegate.sizeHint(self.viewOptions(), QModelIndex()).height()
        if self.gridSize() != QSize(cell, height):
            self.setGridSize(QSize(cell, height))

    def viewOptions(self):  # noqa: N802 - the option the delegate measures with
        from PySide6.QtWidgets import QStyleOptionViewItem

        option = QStyleOptionViewItem()
        self.initViewItemOption(option)
        return option

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self.fit_cells()

    def selected_results(self) -> list:
        """The selected results in list order (the current one alone when nothing is selected)."""
        rows = sorted(i.row() for i in self.selectionModel().selectedIndexes())
        if not rows and self.currentIndex().isValid():
            rows = [self.currentIndex().row()]
        return [self.model().index(r, 0).data(ResultRole) for r in rows]

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.key() in (Qt.Key_Return, Qt.Key_Enter, Qt.Key_Space) and self.currentIndex().isValid() \
                and not event.modifiers() & (Qt.ControlModifier | Qt.ShiftModifier):
            self.open_requested.emit(self.currentIndex())
            return
        if event.matches(QKeySequence.Copy):
            self.copy_requested.emit()
            return
        super().keyPressEvent(event)

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 - Qt API
        index = self.indexAt(event.position().toPoint())
        if index.isValid() and event.button() == Qt.LeftButton:
            self.open_requested.emit(index)
            return
        super().mouseDoubleClickEvent(event)
