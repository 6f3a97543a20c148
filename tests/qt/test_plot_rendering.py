"""Plot rendering off the UI thread and in the render process: pixel layers, node positions, failures, and the
PySide6 None work-around the render thread needs."""
from __future__ import annotations

import os
import subprocess
import sys
from functools import partial

import numpy as np
import pytest

from sfe_desktop.explanation import Concept, Concepts, Explanation, GraphEdge, GraphNode, NeighbourGraph, plots


def explanation() -> Explanation:
    nodes = [GraphNode("query", "query", "a red dog", 1.0), GraphNode("result", "image", "result photo", 1.0, "/p/x.jpg")]
    edges = [GraphEdge("query", "result", 0.7)]
    for i in range(4):
        nodes.append(GraphNode(f"t{i}", "text", f"caption {i}", 0.5))
        edges.append(GraphEdge("query", f"t{i}", 0.1 * i))
    attention = np.random.default_rng(0).random((2, 16)).astype(np.float32)
    concepts = Concepts([Concept("dog", 0.5)], [Concept("red", 0.4)], ["dog", "red"], np.eye(2, dtype=np.float32))
    attention = attention / attention.sum(1, keepdims=True)
    return Explanation(0.5, 0.4, ["red", "dog"], (4, 4), attention, attention.mean(0), concepts,
                       NeighbourGraph(nodes, edges), photo="/p/x.jpg")


def test_graph_render_returns_node_pixels_inside_the_image():
    r = plots.render_graph(explanation().neighbours, plots.LIGHT, 400, 300)
    assert r.rgba.shape == (300, 400, 4) and r.rgba.dtype == np.uint8
    assert set(r.info["pixels"]) == {n.id for n in explanation().neighbours.nodes}
    for x, y in r.info["pixels"].values():
        assert 0 <= x < 400 and 0 <= y < 300
        assert r.rgba[int(y), int(x), :3].min() < 250  # a marker is drawn there, not the white background


def test_attention_layers_compose_to_the_matplotlib_overlay():
    ex = explanation()
    photo = np.full((40, 40, 3), 200, np.uint8)
    r = plots.render_attention(ex, photo, 1, plots.LIGHT, 320, 240)
    assert r.overlay is not None and r.overlay.shape == r.rgba.shape
    assert np.argmax(r.info["heat"]) == np.argmax(ex.attention[1])
    assert r.overlay[..., 3].max() == 255 and r.overlay[0, 0, 3] == 0  # heatmap only, transparent elsewhere
    with plots.agg_figure(320, 240) as fig:  # the same figure drawn by matplotlib at opacity 0.5
        plots.draw_attention(fig, ex, photo, 1, opacity=0.5, theme=plots.LIGHT)
        direct = plots._pixels(fig).astype(float)
    a = r.overlay[..., 3:4] / 255.0 * 0.5
    composed = r.rgba[..., :3] * (1 - a) + r.overlay[..., :3] * a
    assert np.mean(np.abs(composed - direct[..., :3])) < 2.0


def test_many_void_qt_calls_do_not_deallocate_none():
    """PySide6 6.12.0 loses a reference to None on every call of a void method: a fresh process holds fewer
    than 10^5 references to None, so without the work-around that ``import sfe_desktop.qt`` applies, this many
    calls abort CPython 3.11 ("none_dealloc"). On CPython 3.12+, or a fixed PySide6, nothing is lost either way."""
    code = ("import sfe_desktop.qt\n"
            "from PySide6.QtWidgets import QApplication, QWidget\n"
            "app = QApplication([])\n"
            "w = QWidget()\n"
            "for _ in range(300_000):\n"
            "    w.update()\n"
            "app.processEvents()\n"
            "print('alive')\n")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "alive", done.stderr[-500:]


def _pid_renderer(width_px, height_px, dpi, fail=False):
    """A renderer that reports where it ran (module-level: it must pickle to reach the render process)."""
    if fail:
        raise ValueError("a plotting bug")
    r = plots.render_graph(explanation().neighbours, plots.LIGHT, width_px, height_px, dpi)
    r.info["pid"] = os.getpid()
    return r


def test_figures_are_drawn_in_the_render_process_and_described():
    from sfe_desktop.qt import plot_canvas

    r = plot_canvas.render(_pid_renderer, 200, 150, 100.0)
    assert r.info["pid"] != os.getpid()  # another process, with its own GIL
    assert r.figure is None and r.rgba.shape == (150, 200, 4)
    graph = r.info["drawn"][0]
    assert sum(graph["markers"]) == len(explanation().neighbours.nodes)
    assert graph["lines"] == len(explanation().neighbours.edges)
    with pytest.raises(ValueError, match="plotting bug"):  # a renderer's error reaches the caller...
        plot_canvas.render(partial(_pid_renderer, fail=True), 200, 150, 100.0)
    assert plot_canvas.render(_pid_renderer, 200, 150, 100.0).info["pid"] == r.info["pid"]  # ...the process stays


def test_figures_are_drawn_here_when_the_render_process_is_off(monkeypatch):
    from sfe_desktop.qt import plot_canvas

    monkeypatch.setenv("SFE_RENDER_PROCESS", "0")
    monkeypatch.setattr(plot_canvas, "_PROCESS", None)
    r = plot_canvas.render(_pid_renderer, 200, 150, 100.0)
    assert r.info["pid"] == os.getpid() and r.figure is None and r.info["drawn"]


def test_graph_legend_names_both_sides_for_each_direction():
    from sfe_desktop.explanation.graph_plot import GraphRoles

    graph = explanation().neighbours
    for roles in (GraphRoles("your search", "the photo"), GraphRoles("the caption", "your photo")):
        r = plots.render_graph(graph, plots.LIGHT, 400, 300, roles=roles)
        legend = [t.get_text() for t in r.figure.axes[0].get_legend().get_texts()]
        assert legend[:4] == [roles.text, roles.photo, f"training caption near {roles.text}",
                              f"training photo near {roles.photo}, by its caption"]
        texts = [t.get_text().replace("\n", " ") for t in r.figure.axes[0].texts]
        assert any(t.startswith(roles.text[0].upper() + roles.text[1:] + ": “a red dog”") for t in texts)
    assert sum(len(c.get_offsets()) for c in r.figure.axes[0].collections) == len(graph.nodes)


def _crash(width_px, height_px, dpi):
    os._exit(3)  # what a crash in matplotlib's C++ would do to the process drawing the figure


def test_a_render_process_that_dies_fails_that_figure_only(monkeypatch, qtbot):
    from sfe_desktop.qt import plot_canvas

    monkeypatch.setattr(plot_canvas, "_PROCESS_FAILURES", 0)
    before = plot_canvas.render(_pid_renderer, 200, 150, 100.0).info["pid"]
    with pytest.raises(plot_canvas.RenderFailed):  # not retried here, where it would kill the app
        plot_canvas.render(_crash, 200, 150, 100.0)
    after = plot_canvas.render(_pid_renderer, 200, 150, 100.0).info["pid"]
    assert after not in (before, os.getpid())  # a new child took over

    view = plot_canvas.QtPlotView()
    qtbot.addWidget(view)
    view.resize(300, 200)
    view.show()
    view.set_renderer(_crash)
    qtbot.waitUntil(view.idle, timeout=30000)
    assert view.failed and view.result is None  # the view says so instead of "Drawing…" forever
    view.set_renderer(_pid_renderer)
    qtbot.waitUntil(lambda: view.idle() and view.result is not None, timeout=30000)
    assert not view.failed


def test_every_text_of_the_concepts_figure_fits_a_narrow_pane():
    """At the 1000x700 window the Concepts pane is about 400 px wide: the matrix title was cut at its right edge."""
    names = ["nose", "puppy", "laying", "blanket", "couch", "ears", "bed", "lying", "closeup", "someone", "wears"]
    fired = [Concept(n, 0.1) for n in names]
    concepts = Concepts(fired[:6], fired[6:], names, np.eye(len(names), dtype=np.float32))
    for width in (400, 1000):
        r = plots.render_concepts(concepts, plots.LIGHT, width, 480)
        renderer = r.figure.canvas.get_renderer()
        texts = [t for t in r.figure.findobj(lambda a: hasattr(a, "get_text")) if t.get_visible() and t.get_text()]
        assert any("How often two concepts" in t.get_text().replace("\n", " ") for t in texts)
        for t in texts:
            box = t.get_window_extent(renderer)
            assert box.x0 >= -1 and box.x1 <= width + 1, (width, t.get_text(), box)


def test_the_concepts_matrix_keeps_the_most_fired_concepts_that_its_labels_have_room_for():
    """At 1000x700 the pane gave 15 matrix labels about 8 px each, and they overlapped: a short figure keeps the most
    fired of each side in turn, and its title says so; a tall one keeps them all."""
    text = [Concept(f"t{i}", 0.3 - 0.02 * i) for i in range(8)]
    image = [Concept(f"i{i}", 0.3 - 0.02 * i) for i in range(7)]
    names = [c.name for c in text + image]
    concepts = Concepts(image, text, names, np.ones((15, 15), np.float32) - np.eye(15, dtype=np.float32))
    assert plots.matrix_concepts(concepts, 100) == list(range(15))
    assert [names[i] for i in plots.matrix_concepts(concepts, 5)] == ["t0", "t1", "t2", "i0", "i1"]
    for height, shown in ((300, 300 * plots.MATRIX_SHARE // plots.LABEL_PX), (1000, 15)):
        r = plots.render_concepts(concepts, plots.LIGHT, 500, height)
        matrix = r.figure.axes[0]
        labels = [t.get_text() for t in matrix.get_yticklabels()]
        assert len(labels) == shown and labels[0] == "t0"
        title = " ".join(t.get_text() for t in r.figure.texts).replace("\n", " ")
        assert (f"the {int(shown)} most fired of 15" in title) == (shown < 15)
        assert not matrix.texts  # no room in the cells for their values (they overprinted each other)
    few = Concepts(image[:2], text[:2], ["t0", "t1", "i0", "i1"], np.ones((4, 4), np.float32))
    assert len(plots.render_concepts(few, plots.LIGHT, 500, 1000).figure.axes[0].texts) == 16  # room for the values
