"""Explanations a person can read: the neighbour graph at 1000x700 (no overlaps, hover, clicks, legend), similar
photos in plain words, merged concepts, the header's confidence."""
from __future__ import annotations

import os

import numpy as np
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtWidgets import QToolTip
from qt_helpers import open_and_index, run_search

from sfe_desktop.explanation import QUERY_NODE, RESULT_NODE, Concept, Concepts


def show_graph(qtbot, window, row=0):
    panel = window.explanation
    with qtbot.waitSignal(window.session.explanation_ready, timeout=30000) as explained:
        window.view.setCurrentIndex(window.model.index(row))
    panel.tabs.setCurrentWidget(panel.graph)
    qtbot.waitUntil(lambda: panel.idle() and panel.graph.plot.result is not None, timeout=30000)
    return explained.args[1]


def overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_graph_is_readable_at_1000_by_700(qtbot, make_window, photos):
    window = make_window()
    window.resize(1000, 700)
    open_and_index(qtbot, window, photos)
    results = run_search(qtbot, window, lambda: window.search("a red dog"))
    explanation = show_graph(qtbot, window)
    view = window.explanation.graph
    info = view.plot.result.info
    height, width = view.plot.result.rgba.shape[:2]
    boxes = list(info["boxes"].values()) + info["other_boxes"]
    assert len(info["boxes"]) == len(view.graph.nodes) >= 4
    for i, a in enumerate(boxes):  # nothing overlaps, nothing is cut at the border
        assert 0 <= a[0] and a[2] <= width + 0.5 and 0 <= a[1] and a[3] <= height + 0.5, a
        for b in boxes[i + 1:]:
            assert not overlaps(a, b), (a, b)
    # no "training photo NNN" left: photos without a file are shown by their caption
    assert not any(n.label.startswith("training photo") for n in view.graph.nodes)
    raw_captions = {n.label for n in explanation.neighbours.nodes if n.kind == "text"}
    assert {n.label for n in view.graph.nodes if n.kind == "image" and not n.path} <= raw_captions

    # hovering a caption's label shows the whole caption
    caption = next(n for n in view.graph.nodes if n.kind == "text" and n.label != "a red dog")
    x0, y0, x1, y1 = info["boxes"][caption.id]
    point = view.plot.image_to_widget((x0 + x1) / 2, (y0 + y1) / 2).toPoint()
    qtbot.mouseMove(view.plot, point)
    qtbot.waitUntil(lambda: caption.label in QToolTip.text(), timeout=5000)
    assert "training caption near your search" in QToolTip.text()

    # clicking it searches for that caption
    with qtbot.waitSignal(window.session.results_ready, timeout=30000) as found:
        qtbot.mouseClick(view.plot, Qt.LeftButton, pos=point)
    assert found.args[:2] == ["text->image", caption.label] and window.search_bar.text() == caption.label
    assert results != found.args[2]

    # clicking the photo's node selects the photo in the results
    show_graph(qtbot, window, row=3)
    assert view.graph.node(RESULT_NODE).path == window.model.results()[3].path
    window.view.clearSelection()
    point = view.plot.image_to_widget(*view.pixels[RESULT_NODE]).toPoint()
    qtbot.mouseClick(view.plot, Qt.LeftButton, pos=point)
    assert [i.row() for i in window.view.selectionModel().selectedIndexes()] == [3]


def test_the_legend_and_labels_name_each_side_in_photo_to_caption_mode(qtbot, make_window, photos):
    window = make_window()
    open_and_index(qtbot, window, photos)
    photo = str(sorted(photos.glob("*.jpg"))[0])
    run_search(qtbot, window, lambda: window.find_captions(photo))
    show_graph(qtbot, window)
    view = window.explanation.graph
    legend = view.plot.result.info["drawn"][0]
    assert view.roles.text == "the caption" and view.roles.photo == "your photo"
    assert view.graph.node(RESULT_NODE).path == photo
    caption = window.model.results()[0].caption
    assert view.graph.node(QUERY_NODE).label == caption  # the star is the result caption, and says so
    assert "the caption" in view.describe(view.graph.node(QUERY_NODE))
    assert legend["markers"]


def test_similar_photos_are_explained_in_plain_words(qtbot, make_window, photos):
    window = make_window()
    open_and_index(qtbot, window, photos)
    photo = str(sorted(photos.glob("*.jpg"))[0])
    similar = run_search(qtbot, window, lambda: window.find_similar(photo))
    with qtbot.waitSignal(window.session.similar_ready, timeout=30000):
        window.view.setCurrentIndex(window.model.index(0))
    panel = window.explanation
    assert panel.stack.currentWidget() is panel.similar
    text = panel.similar.text.text()
    assert "compared" in text or "comparing" in text
    comparison = window.session.collection.compare(similar[0])
    assert f"{comparison.cosine:.0%} alike" in text and "no word heatmap" in text and "Find captions" in text
    header = panel.title.text()  # the model's own cosine, not the fused search score
    assert f"{max(comparison.cosine, 0):.0%} alike to {os.path.basename(photo)}" in header
    assert f"cosine {comparison.cosine:.4f}" in panel.title.toolTip()
    assert 0.0 < comparison.cosine <= 1.0 + 1e-5
    assert panel.similar.left.image is not None and not panel.similar.left.image.isNull()
    assert panel.similar.right.image is not None and not panel.similar.right.image.isNull()
    assert "No explanation" not in panel.placeholder.text()


def test_similar_photos_show_side_by_side_where_each_shows_the_shared_class(qtbot):
    from sfe_desktop.explanation import Comparison
    from sfe_desktop.qt.widgets.explanation_panel import QtSimilarView

    view = QtSimilarView()
    qtbot.addWidget(view)
    view.resize(600, 400)
    view.show()
    photo = QImage(64, 48, QImage.Format_RGB888)
    photo.fill(0x808080)
    left, right = np.zeros(16, np.float32), np.zeros(16, np.float32)
    left[0], right[15] = 1.0, 1.0  # the class sits top left in yours, bottom right in the other
    comparison = Comparison(0.8, [Concept("tabby", 0.6)], [Concept("tabby", 0.7)], [Concept("tabby", 0.5)],
                            (4, 4), left, right)
    view.set_data("/p/mine.jpg", "/p/other.jpg", comparison, (photo, photo))
    assert view.where.isVisibleTo(view) and "tabby" in view.where.toolTip() and "tabby" in view.text.text()
    assert view.minimumSizeHint().width() <= 400  # the panel fits the 1000x700 window
    for canvas, hot in ((view.left, (0, 0)), (view.right, (3, 3))):
        assert canvas.overlay is not None and canvas.show_overlay
        brightest = max(((x, y) for x in range(4) for y in range(4)),
                        key=lambda p: QColor(canvas.overlay.pixel(*p)).lightness())
        assert brightest == hot
    qtbot.mouseClick(view.where, Qt.LeftButton, pos=QPoint(8, view.where.height() // 2))  # the box: maps hide
    assert not view.left.show_overlay and not view.right.show_overlay
    view.set_data("/p/mine.jpg", "/p/other.jpg", Comparison(0.3, [], [], []), (photo, photo))
    assert view.left.overlay is None and not view.where.isVisibleTo(view)
    assert view.left.image is not None


def test_concepts_view_merges_word_forms_and_says_what_the_weights_mean(qtbot):
    from sfe_desktop.explanation import Explanation, NeighbourGraph
    from sfe_desktop.qt.widgets.explanation_panel import QtConceptsView

    names = ["sand", "sandy", "catch", "catches", "catching", "dog"]
    concepts = Concepts([Concept("sand", 0.2), Concept("sandy", 0.3), Concept("dog", 0.5)],
                        [Concept("catch", 0.1), Concept("catches", 0.2), Concept("catching", 0.3), Concept("dog", 0.4)],
                        names, np.ones((6, 6), np.float32) - np.eye(6, dtype=np.float32))
    explanation = Explanation(0.5, 0.4, ["a", "dog"], (2, 2), np.full((2, 4), 0.25, np.float32),
                              np.full(4, 0.25, np.float32), concepts, NeighbourGraph())
    view = QtConceptsView()
    qtbot.addWidget(view)
    view.resize(500, 500)
    view.show()
    view.set_data(explanation, "your search")
    merged = view.merged.concepts
    assert merged.names == ["sand", "catch", "dog"]
    assert {c.name: round(c.weight, 6) for c in merged.image} == {"sand": 0.5, "dog": 0.5}
    assert {c.name: round(c.weight, 6) for c in merged.text} == {"catch": 0.6, "dog": 0.4}
    summary = view.summary.text()
    assert "catch + catches, catching (0.60)" in summary and "sand + sandy (0.50)" in summary
    assert "share of the concept cue" in summary and "training caption" in summary
    qtbot.waitUntil(lambda: view.plot.idle() and view.plot.result is not None, timeout=30000)
    drawn = view.plot.result.info["drawn"]
    assert drawn[0]["images"][0] == (3, 3) and drawn[0]["yticklabels"] == ["sand", "catch", "dog"]


def test_concepts_view_names_the_imagenet_classes_the_photo_shows_and_the_words_name(qtbot):
    from sfe_desktop.explanation import Explanation, NeighbourGraph
    from sfe_desktop.qt.widgets.explanation_panel import QtConceptsView

    concepts = Concepts([Concept("dog", 0.5)], [Concept("dog", 0.4)], ["dog"], np.zeros((1, 1), np.float32))
    explanation = Explanation(0.5, 0.4, ["a", "dog"], (2, 2), np.full((2, 4), 0.25, np.float32),
                              np.full(4, 0.25, np.float32), concepts, NeighbourGraph(),
                              classes=[Concept("golden retriever", 0.62), Concept("tennis ball", 0.2)],
                              word_classes=[None, Concept("golden retriever", 0.3)],
                              grounding=np.array([0.0, 1.0], np.float32))
    view = QtConceptsView()
    qtbot.addWidget(view)
    view.set_data(explanation, "your search")
    summary = view.summary.text()
    assert "golden retriever (62%), tennis ball (20%)" in summary and "dog → golden retriever" in summary
    assert "a →" not in summary
    plain = Explanation(0.5, 0.4, ["a", "dog"], (2, 2), np.full((2, 4), 0.25, np.float32),
                        np.full(4, 0.25, np.float32), concepts, NeighbourGraph())
    view.set_data(plain, "your search")
    assert "Photo shows" not in view.summary.text()  # a model without a bridge names no ImageNet classes
