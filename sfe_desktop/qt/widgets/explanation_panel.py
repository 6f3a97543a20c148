"""QtExplanationPanel: three tabs that plot the core's explanation of one (query, result) pair, or, for similar
photos (which have no text to explain), the two photos side by side and what the score means."""
from __future__ import annotations

import html
import math
from functools import partial

import numpy as np
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QSlider, QStackedWidget, QTabWidget,
                               QToolTip, QVBoxLayout, QWidget)

from ...explanation import QUERY_NODE, RESULT_NODE, Comparison, Explanation, GraphNode, NeighbourGraph, plots
from ...explanation.graph_plot import GraphRoles, share
from ...explanation.readable import merge_concepts, readable_graph
from ..plot_canvas import QtPlotView
from .viewer import QtPhotoCanvas, heat_image

CLICK_RADIUS = 16  # widget pixels around a node centre that count as a click on it
WEIGHTS_NOTE = ("<b>What the numbers mean.</b> A bar is the share of the concept cue that a concept gives that side "
                "(the model looks up the concepts nearest to the text and to the photo; their shares add up to 1, and "
                "forms of one word, such as <i>sand</i> and <i>sandy</i>, are added together). The matrix shows how "
                "often two concepts are named in the same training caption (brighter: more often).")


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

    def set_data(self, explanation: Explanation, text_role: str = "text") -> None:
        self.explanation = explanation
        self.merged = merge_concepts(explanation.concepts)
        self.redraw()

        def names(fired) -> str:
            parts = []
            for c in fired:
                forms = [f for f in self.merged.forms.get(c.name, []) if f != c.name]
                also = f" + {', '.join(forms)}" if forms else ""
                parts.append(f"{html.escape(c.name)}{html.escape(also)} ({float(c.weight):.2f})")
            return ", ".join(parts) or "none"

        concepts = self.merged.concepts
        seen = ""  # what the photo shows by ImageNet's names, and the words grounded in them (with a label bridge)
        if explanation.classes:
            shown = ", ".join(f"{html.escape(c.name)} ({100 * float(c.weight):.0f}%)" for c in explanation.classes)
            words = ", ".join(f"{html.escape(w)} → {html.escape(c.name)}"
                              for w, c in zip(explanation.words, explanation.word_classes) if c is not None)
            seen = f"<b>Photo shows:</b> {shown}<br>" + (f"<b>Words named:</b> {words}<br>" if words else "")
        self.summary.setText(f"<b>{text_role[:1].upper() + text_role[1:]}:</b> {names(concepts.text)}<br>"
                             f"<b>Photo:</b> {names(concepts.image)}<br>{seen}<small>{WEIGHTS_NOTE}</small>")

    def redraw(self, keep_image: bool = False) -> None:
        if self.explanation is not None:
            args = (self.merged.concepts, self.plot.theme)
            self.plot.set_renderer(partial(plots.render_concepts, *args), keep_image)


class QtGraphView(QWidget):
    """The neighbour graph as a person reads it (:func:`~sfe_desktop.explanation.readable.readable_graph`).

    Hovering a node (its marker or its label) shows its whole text; clicking a caption, or a training photo (shown
    by its caption), emits :attr:`caption_clicked` with that caption (the window searches for it); clicking a
    photo of the user's emits :attr:`photo_clicked` with its path (the window selects it). The render returns
    each node's position and box in the image; pointer positions are hit-tested against them."""

    photo_clicked = Signal(str)
    caption_clicked = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.plot = QtPlotView(self)
        self.plot.setMouseTracking(True)
        lay = QVBoxLayout(self)
        lay.addWidget(self.plot, 1)
        self.explanation: Explanation | None = None
        self.graph = NeighbourGraph()
        self.roles = GraphRoles()
        self.plot.clicked.connect(self._on_click)
        self.plot.hovered.connect(self._on_hover)

    @property
    def pixels(self) -> dict[str, tuple[float, float]]:
        """Node id -> (x, y) in pixels of the shown image, from the last finished render."""
        result = self.plot.result
        return result.info.get("pixels", {}) if result is not None else {}

    @property
    def boxes(self) -> dict[str, tuple[float, float, float, float]]:
        """Node id -> (x0, y0, x1, y1) of its marker and label, in pixels of the shown image."""
        result = self.plot.result
        return result.info.get("boxes", {}) if result is not None else {}

    def set_data(self, explanation: Explanation, roles: GraphRoles | None = None) -> None:
        self.explanation = explanation
        self.graph = readable_graph(explanation.neighbours)
        self.roles = roles or GraphRoles()
        self.redraw()

    def redraw(self, keep_image: bool = False) -> None:
        if self.explanation is not None:
            renderer = partial(plots.render_graph, self.graph, self.plot.theme, roles=self.roles)
            self.plot.set_renderer(renderer, keep_image)

    def node_at(self, x: float, y: float, radius: float | None = None) -> GraphNode | None:
        """The node whose box holds image pixel (x, y), else the nearest within ``radius`` pixels (default:
        CLICK_RADIUS widget px)."""
        for node_id, (x0, y0, x1, y1) in self.boxes.items():
            if x0 <= x <= x1 and y0 <= y <= y1:
                return self.graph.node(node_id)
        if radius is None:
            radius = CLICK_RADIUS * self.plot.pixel_scale()
        best, best_d = None, radius
        for node_id, (nx, ny) in self.pixels.items():
            d = math.hypot(nx - x, ny - y)
            if d <= best_d:
                best, best_d = self.graph.node(node_id), d
        return best

    def describe(self, node: GraphNode) -> str:
        """The tooltip of a node: its whole text, what it is, and what a click does."""
        weight = next((e.weight for e in self.graph.edges if e.target == node.id
                       and e.source in (QUERY_NODE, RESULT_NODE)), None)
        text = html.escape(node.label or "")
        if node.id == QUERY_NODE:
            what, click = self.roles.text, "Click: search for this text"
        elif node.id == RESULT_NODE:
            what = self.roles.photo
            text = html.escape(node.path or node.label)
            click = "Click: select it in the results" if node.path else ""
        elif node.kind == "text":
            what, click = f"training caption near {self.roles.text}", "Click: search for this caption"
        elif node.path:
            what, click, text = "photo", "Click: select it in the results", html.escape(node.path)
        else:
            what, click = (f"training photo near {self.roles.photo} (not on this computer; its caption)",
                           "Click: search for this caption")
        extra = f" · {share(weight)} of the neighbour cue" if weight is not None else ""
        return f"<b>{html.escape(what)}</b>{extra}<br>{text}" + (f"<br><i>{click}</i>" if click else "")

    def _on_hover(self, point: QPointF, global_pos) -> None:
        node = self.node_at(point.x(), point.y())
        if node is None:
            QToolTip.hideText()
            return
        QToolTip.showText(global_pos, self.describe(node), self.plot)

    def _on_click(self, point) -> None:
        node = self.node_at(point.x(), point.y())
        if node is None:
            return
        if node.path:
            self.photo_clicked.emit(node.path)
        elif node.kind in ("text", "query") or (node.kind == "image" and node.id != RESULT_NODE):
            self.caption_clicked.emit(node.label)


class QtSimilarView(QWidget):
    """Similar photos: the two photos side by side, each with the map of where it shows the ImageNet class both
    photos show most (a toggle hides the maps), and in plain words what the score is and what fired."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.left, self.right = QtPhotoCanvas(), QtPhotoCanvas()
        self.left_name, self.right_name = QLabel(), QLabel()
        for canvas in (self.left, self.right):
            canvas.setMinimumSize(120, 120)
        for label in (self.left_name, self.right_name):
            label.setAlignment(Qt.AlignCenter)
            label.setWordWrap(True)
        self.where = QCheckBox()
        self.where.setChecked(True)
        self.where.toggled.connect(self._show_maps)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.RichText)
        row = QHBoxLayout()
        for photo, name in ((self.left, self.left_name), (self.right, self.right_name)):
            col = QVBoxLayout()
            col.addWidget(photo, 1)
            col.addWidget(name)
            row.addLayout(col, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(row, 1)
        lay.addWidget(self.where)
        lay.addWidget(self.text)

    def set_data(self, query: str, path: str, comparison: Comparison,
                 images: tuple[QImage | None, QImage | None]) -> None:
        import os

        def listed(concepts) -> str:
            return ", ".join(f"{html.escape(c.name)} ({c.weight:.0%})" for c in concepts)

        maps = (comparison.query_map, comparison.result_map)
        for canvas, image, heat in zip((self.left, self.right), images, maps):
            canvas.image = image if image is not None and not image.isNull() else None
            canvas.message = "(cannot be read)" if image is not None else ""
            canvas.overlay = heat_image(heat, comparison.grid) if heat is not None and comparison.grid else None
        has_maps = all(m is not None for m in maps) and bool(comparison.shared)
        self.where.setVisible(has_maps)
        if has_maps:  # a short text: a check box does not wrap, and its width would widen the whole panel
            self.where.setText("Show where each photo shows it")
            self.where.setToolTip(f"Heatmaps of where the classifier finds “{comparison.shared[0].name}” in each "
                                  "photo (brighter: more)")
        self._show_maps(self.where.isChecked())
        self.left_name.setText(f"your photo<br><b>{html.escape(os.path.basename(query))}</b>")
        self.right_name.setText(f"similar photo<br><b>{html.escape(os.path.basename(path))}</b>")
        cosine = comparison.cosine
        if comparison.shared:
            seen = f"Both photos show <b>{listed(comparison.shared)}</b> (ImageNet classes; how sure, on both)."
            if has_maps:
                seen += (f" The heat on each photo is where the classifier finds "
                         f"<i>{html.escape(comparison.shared[0].name)}</i> in it.")
        elif comparison.query_classes:
            seen = (f"They share no ImageNet class the model is sure of: yours shows {listed(comparison.query_classes[:3])}; "
                    f"this one {listed(comparison.result_classes[:3])}.")
        else:
            seen = ""
        self.text.setText(
            f"<b>Why these two are similar.</b> Similar photos are found by comparing the two photos as wholes: "
            f"the model's features of the two are {max(cosine, 0.0):.0%} alike (cosine {cosine:.3f}; 100% would be "
            f"the same photo). {seen} No text is involved, so there is no word heatmap, no concepts of a query and "
            "no neighbour graph to show. To see what the model sees in either photo, right-click it and choose "
            "<i>Find captions</i>.")

    def _show_maps(self, on: bool) -> None:
        for canvas in (self.left, self.right):
            canvas.show_overlay = on
            canvas.update()


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
        self.similar = QtSimilarView()
        self.stack = QStackedWidget()
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(self.tabs)
        self.stack.addWidget(self.similar)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addWidget(self.stack, 1)
        self.show_placeholder("Select a result to see why it matched.")

    def show_placeholder(self, text: str) -> None:
        self.title.clear()
        self.title.setToolTip("")
        self.placeholder.setText(text)
        self.stack.setCurrentWidget(self.placeholder)

    def set_explanation(self, explanation: Explanation, image: np.ndarray | None, title: str = "",
                        tooltip: str = "", roles: GraphRoles | None = None) -> None:
        """Show ``explanation``; ``title`` (rich text) heads it, ``tooltip`` on it gives the raw scores; ``roles``
        name the text and the photo of the pair (the graph's legend)."""
        self.title.setText(title)
        self.title.setToolTip(tooltip)
        self.attention.set_data(explanation, image)
        self.concepts.set_data(explanation, (roles or GraphRoles()).text)
        self.graph.set_data(explanation, roles)
        self.stack.setCurrentWidget(self.tabs)

    def show_similar(self, query: str, path: str, comparison: Comparison, images, title: str = "",
                     tooltip: str = "") -> None:
        """Similar photos: the two side by side, and what can (and cannot) be shown for them."""
        self.title.setText(title)
        self.title.setToolTip(tooltip)
        self.similar.set_data(query, path, comparison, images)
        self.stack.setCurrentWidget(self.similar)

    def views(self) -> tuple:
        return self.attention, self.concepts, self.graph

    def idle(self) -> bool:
        """True when no figure is being built or rendered (hidden tabs render when shown)."""
        return all(view.plot.idle() for view in self.views())

    def set_dark(self, dark: bool) -> None:
        for view in self.views():
            view.plot.set_dark(dark)
            view.redraw(keep_image=True)
