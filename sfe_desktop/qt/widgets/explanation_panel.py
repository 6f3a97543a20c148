"""QtExplanationPanel: three tabs that plot the core's explanation of one (query, result) pair."""
from __future__ import annotations

import math
from functools import partial

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QSlider, QStackedWidget, QTabWidget, QVBoxLayout,
                               QWidget)

from ...explanation import Explanation, GraphNode, plots
from ..plot_canvas import QtPlotView

CLICK_RADIUS = 16  # widget pixels around a node centre that count as a click on it


class QtAttentionView(QWidget):
    """Photo with the word-to-patch attention heatmap; a word selector and an opacity slider.

    A word change re-renders (off the UI thread); the opacity only changes how the rendered heatmap layer
    is composed over the photo layer, a repaint."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = QtPlotView(self)
        self.word = QComboBox()
        self.word.setMinimumContentsLength(12)
        self.opacity = QSlider(Qt.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(55)
        self.opacity.setToolTip("Heatmap opacity")
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Word:"))
        bar.addWidget(self.word)
        bar.addSpacing(16)
        bar.addWidget(QLabel("Opacity:"))
        bar.addWidget(self.opacity, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(bar)
        lay.addWidget(self.plot, 1)
        self.explanation: Explanation | None = None
        self.image: np.ndarray | None = None
        self.plot.set_overlay_opacity(self.opacity.value() / 100.0)
        self.word.currentIndexChanged.connect(lambda *_: self.redraw(keep_image=True))
        self.opacity.valueChanged.connect(lambda value: self.plot.set_overlay_opacity(value / 100.0))

    def set_data(self, explanation: Explanation, image: np.ndarray | None) -> None:
        self.explanation, self.image = explanation, image
        self.word.blockSignals(True)
        self.word.clear()
        self.word.addItem("All words", None)
        for i, w in enumerate(explanation.words):
            self.word.addItem(w, i)
        self.word.blockSignals(False)
        self.redraw()

    def redraw(self, keep_image: bool = False) -> None:
        if self.explanation is None:
            return
        args = (self.explanation, self.image, self.word.currentData(), self.plot.theme)
        self.plot.set_renderer(partial(plots.render_attention, *args), keep_image)


class QtConceptsView(QWidget):
    """Concepts that fired for the query and the photo, and their co-occurrence matrix."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = QtPlotView(self)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextSelectableByMouse)
        lay = QVBoxLayout(self)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.summary)
        self.explanation: Explanation | None = None

    def set_data(self, explanation: Explanation) -> None:
        self.explanation = explanation
        self.redraw()

        def names(fired) -> str:
            return ", ".join(f"{c.name} ({float(c.weight):.2f})" for c in fired) or "none"

        concepts = explanation.concepts
        self.summary.setText(f"<b>Query:</b> {names(concepts.text)}<br><b>Photo:</b> {names(concepts.image)}")

    def redraw(self, keep_image: bool = False) -> None:
        if self.explanation is not None:
            args = (self.explanation.concepts, self.plot.theme)
            self.plot.set_renderer(partial(plots.render_concepts, *args), keep_image)


class QtGraphView(QWidget):
    """The neighbour graph; clicking a photo node emits :attr:`photo_clicked` with its path.

    The render returns each node's pixel position in the image; a click is hit-tested against them."""

    photo_clicked = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = QtPlotView(self)
        lay = QVBoxLayout(self)
        lay.addWidget(self.plot, 1)
        self.explanation: Explanation | None = None
        self.plot.clicked.connect(self._on_click)

    @property
    def pixels(self) -> dict[str, tuple[float, float]]:
        """Node id -> (x, y) in pixels of the shown image, from the last finished render."""
        result = self.plot.result
        return result.info.get("pixels", {}) if result is not None else {}

    def set_data(self, explanation: Explanation) -> None:
        self.explanation = explanation
        self.redraw()

    def redraw(self, keep_image: bool = False) -> None:
        if self.explanation is not None:
            args = (self.explanation.neighbours, self.plot.theme)
            self.plot.set_renderer(partial(plots.render_graph, *args), keep_image)

    def node_at(self, x: float, y: float, radius: float | None = None) -> GraphNode | None:
        """The node nearest to image pixel (x, y) within ``radius`` pixels (default: CLICK_RADIUS widget px)."""
        if radius is None:
            radius = CLICK_RADIUS * self.plot.pixel_scale()
        best, best_d = None, radius
        pixels = self.pixels
        for node in self.explanation.neighbours.nodes if self.explanation else []:
            if node.id in pixels:
                nx, ny = pixels[node.id]
                d = math.hypot(nx - x, ny - y)
                if d <= best_d:
                    best, best_d = node, d
        return best

    def _on_click(self, point) -> None:
        node = self.node_at(point.x(), point.y())
        if node and node.kind in ("image", "query") and node.path:
            self.photo_clicked.emit(node.path)


class QtExplanationPanel(QWidget):
    """Tabs *Patch attention*, *Concepts* and *Neighbour graph*, or a placeholder line."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.attention = QtAttentionView()
        self.concepts = QtConceptsView()
        self.graph = QtGraphView()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.attention, "Patch attention")
        self.tabs.addTab(self.concepts, "Concepts")
        self.tabs.addTab(self.graph, "Neighbour graph")
        self.placeholder = QLabel()
        self.placeholder.setAlignment(Qt.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(self.tabs)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addWidget(self.stack, 1)
        self.show_placeholder("Select a result to see why it matched.")

    def show_placeholder(self, text: str) -> None:
        self.title.clear()
        self.placeholder.setText(text)
        self.stack.setCurrentWidget(self.placeholder)

    def set_explanation(self, explanation: Explanation, image: np.ndarray | None, title: str = "") -> None:
        self.title.setText(title)
        self.attention.set_data(explanation, image)
        self.concepts.set_data(explanation)
        self.graph.set_data(explanation)
        self.stack.setCurrentWidget(self.tabs)

    def views(self) -> tuple:
        return self.attention, self.concepts, self.graph

    def idle(self) -> bool:
        """True when no figure is being built or rendered (hidden tabs render when shown)."""
        return all(view.plot.idle() for view in self.views())

    def set_dark(self, dark: bool) -> None:
        for view in self.views():
            view.plot.set_dark(dark)
            view.redraw(keep_image=True)
