"""Draw the three explanation views onto matplotlib ``Figure`` objects (no pyplot, no Qt).

``draw_*`` take a part of an :class:`~sfe_desktop.explanation.Explanation` and only draw it. ``render_*``
build a fresh ``Figure`` on a ``FigureCanvasAgg`` and return its pixels (:class:`Rendered`); the Qt layer
calls them in its render process (``qt/plot_canvas.py``), or on its render thread. Every matplotlib build and draw in the app holds :data:`DRAW_LOCK`:
matplotlib (its FreeType font cache in particular) is not thread-safe, and two threads drawing text at once
crashed CPython ("none_dealloc").
"""
from __future__ import annotations

import math
import os
import textwrap
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .types import Concepts, Explanation, GraphEdge, GraphNode, NeighbourGraph

LIGHT = {"bg": "#ffffff", "fg": "#202124", "grid": "#9aa0a6"}
DARK = {"bg": "#2b2b2b", "fg": "#e8e8e8", "grid": "#8a8a8a"}
DRAW_LOCK = threading.RLock()  # held by every matplotlib build/draw of the app, whatever the thread
KIND_STYLE = {  # node kind -> (colour, marker, size)
    "query": ("#f28e2b", "*", 520),
    "image": ("#4e79a7", "s", 260),
    "text": ("#59a14f", "o", 240),
}


def _finish(fig: Figure, theme: dict) -> None:
    """Apply the theme's colours to every axes and text of ``fig``."""
    fig.set_facecolor(theme["bg"])
    for ax in fig.axes:
        ax.set_facecolor(theme["bg"])
        ax.tick_params(colors=theme["fg"], which="both")
        for spine in ax.spines.values():
            spine.set_color(theme["grid"])
        for text in (ax.title, ax.xaxis.label, ax.yaxis.label):
            text.set_color(theme["fg"])
    for text in fig.texts:
        text.set_color(theme["fg"])


def _message(fig: Figure, text: str, theme: dict) -> None:
    fig.clear()
    fig.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, wrap=True)
    _finish(fig, theme)


def word_heat(explanation: Explanation, word: int | None) -> np.ndarray:
    """The (h, w) attention map of query word ``word`` (None: mean over all words), scaled to [0, 1]."""
    att = np.asarray(explanation.attention, dtype=np.float32)
    h, w = explanation.grid
    if att.ndim == 1:
        att = att[None]
    heat = att.mean(axis=0) if word is None or not 0 <= word < len(att) else att[word]
    heat = heat.reshape(h, w)
    lo, hi = float(heat.min()), float(heat.max())
    return (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)


def draw_attention(fig: Figure, explanation: Explanation, image: np.ndarray | None, word: int | None = None,
                   opacity: float = 0.5, theme: dict = LIGHT) -> None:
    """The photo with the word-to-patch attention of ``word`` (or all words) as a heatmap overlay."""
    words = explanation.words
    if np.asarray(explanation.attention).size == 0:
        _message(fig, "No attention for this pair (the query has no words the model knows).", theme)
        return
    fig.clear()
    ax = fig.add_subplot(1, 1, 1)
    heat = word_heat(explanation, word)
    if image is not None:
        ih, iw = image.shape[:2]
        ax.imshow(image, extent=(0, iw, ih, 0))
    else:
        ih, iw = heat.shape
    overlay = ax.imshow(heat, cmap="inferno", alpha=float(opacity), extent=(0, iw, ih, 0),
                        interpolation="bilinear", vmin=0.0, vmax=1.0)
    cbar = fig.colorbar(overlay, ax=ax, fraction=0.04, pad=0.02)
    cbar.solids.set_alpha(1.0)  # the overlay is translucent, its scale is not
    cbar.set_label("attention (relative)")
    cbar.ax.yaxis.label.set_color(theme["fg"])
    ax.set_xticks([])
    ax.set_yticks([])
    label = "all words" if word is None or not 0 <= word < len(words) else f"“{words[word]}”"
    ax.set_title(f"Where the model looks for {label}  ·  score {explanation.score:.3f}", fontsize=10)
    _finish(fig, theme)


def draw_concepts(fig: Figure, concepts: Concepts, theme: dict = LIGHT) -> None:
    """Co-occurrence matrix of the fired concepts (labelled heatmap) beside bar lists of what fired."""
    names = list(concepts.names)
    if not names:
        _message(fig, "No concepts fired for this query and photo.", theme)
        return
    fig.clear()
    grid = fig.add_gridspec(2, 2, height_ratios=[3, 2])
    ax = fig.add_subplot(grid[0, :])
    mat = np.asarray(concepts.cooccurrence, dtype=np.float32).reshape(len(names), len(names))
    im = ax.imshow(mat, cmap="viridis")
    ax.set_xticks(range(len(names)), [textwrap.shorten(n, 14, placeholder="…") for n in names],
                  rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), [textwrap.shorten(n, 18, placeholder="…") for n in names], fontsize=8)
    if len(names) <= 10:
        cut = float(mat.max()) * 0.6 if mat.size else 0.0
        for (i, j), v in np.ndenumerate(mat):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if v > cut else "white")
    ax.set_title("Concept co-occurrence", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    for row, (fired, title, colour) in enumerate([(concepts.text, "Fired for the query", KIND_STYLE["text"][0]),
                                                   (concepts.image, "Fired for the photo", KIND_STYLE["image"][0])]):
        bar_ax = fig.add_subplot(grid[1, row])
        items = sorted(fired, key=lambda c: -float(c.weight))[:8]
        if items:
            labels = [textwrap.shorten(c.name, 18, placeholder="…") for c in items][::-1]
            bar_ax.barh(labels, [float(c.weight) for c in items][::-1], color=colour)
            bar_ax.tick_params(axis="y", labelsize=8)
            bar_ax.tick_params(axis="x", labelsize=7)
        else:
            bar_ax.text(0.5, 0.5, "none", ha="center", va="center", transform=bar_ax.transAxes,
                        color=theme["fg"])
            bar_ax.set_xticks([])
            bar_ax.set_yticks([])
        bar_ax.set_title(title, fontsize=9)
    _finish(fig, theme)


def graph_layout(nodes: list[GraphNode], edges: list[GraphEdge]) -> dict[str, tuple[float, float]]:
    """Radial tree layout: the query at the centre, each node on the ring of its hop distance from the query
    (breadth-first, ring k at radius k), inside an angular sector that grows with the leaves below it;
    unreachable nodes on the outermost ring."""
    ids = [n.id for n in nodes]
    if not ids:
        return {}
    query = next((n.id for n in nodes if n.kind == "query"), ids[0])
    adjacent: dict[str, list[str]] = {i: [] for i in ids}
    for e in sorted(edges, key=lambda e: -float(e.weight)):
        a, b = e.source, e.target
        if a in adjacent and b in adjacent and a != b:
            adjacent[a].append(b)
            adjacent[b].append(a)
    children: dict[str, list[str]] = {i: [] for i in ids}
    depth = {query: 0}
    order = [query]
    for node in order:  # breadth-first; ``order`` grows while iterating
        for nxt in adjacent[node]:
            if nxt not in depth:
                depth[nxt] = depth[node] + 1
                children[node].append(nxt)
                order.append(nxt)
    orphans = [i for i in ids if i not in depth]
    max_depth = max(depth.values()) + (1 if orphans else 0)
    leaves: dict[str, int] = {}
    for node in reversed(order):
        leaves[node] = sum(leaves[c] for c in children[node]) or 1
    pos: dict[str, tuple[float, float]] = {query: (0.0, 0.0)}

    def place(node: str, start: float, span: float) -> None:
        kids = children[node]
        total = sum(leaves[c] for c in kids) or 1
        for child in kids:  # half equal share, half by leaves: no sector gets too thin
            width = span * (0.5 / len(kids) + 0.5 * leaves[child] / total)
            angle = start + width / 2
            r = float(depth[child])
            pos[child] = (r * math.cos(angle), r * math.sin(angle))
            place(child, start, width)
            start += width

    place(query, math.pi / 2, 2 * math.pi)
    for k, node in enumerate(orphans):
        angle = 2 * math.pi * (k + 0.5) / len(orphans)
        pos[node] = (max_depth * math.cos(angle), max_depth * math.sin(angle))
    return pos


def node_label(node: GraphNode, width: int = 22) -> str:
    label = node.label or (os.path.basename(node.path) if node.path else node.id)
    return textwrap.shorten(str(label), width, placeholder="…")


def draw_graph(fig: Figure, graph: NeighbourGraph, theme: dict = LIGHT) -> dict[str, tuple[float, float]]:
    """The neighbour graph: query, neighbours and cross-modal partners with weighted edges.

    Returns the node positions (data coordinates) so a click can be mapped back to a node.
    """
    nodes, edges = list(graph.nodes), list(graph.edges)
    if not nodes:
        _message(fig, "No neighbours to show.", theme)
        return {}
    fig.clear()
    ax = fig.add_subplot(1, 1, 1)
    pos = graph_layout(nodes, edges)
    weights = [float(e.weight) for e in edges] or [1.0]
    wmin, wmax = min(weights), max(weights)
    for e in edges:
        if e.source not in pos or e.target not in pos:
            continue
        (x0, y0), (x1, y1) = pos[e.source], pos[e.target]
        rel = (float(e.weight) - wmin) / (wmax - wmin) if wmax > wmin else 1.0
        ax.plot([x0, x1], [y0, y1], color=theme["grid"], linewidth=0.8 + 3.2 * rel, zorder=1)
        if len(edges) <= 40:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2, f"{float(e.weight):.2f}", fontsize=7, ha="center",
                    va="center", color=theme["fg"], zorder=3,
                    bbox={"boxstyle": "round,pad=0.15", "fc": theme["bg"], "ec": "none", "alpha": 0.8})
    groups = [("query", None, "query"), ("image", True, "photo (click to open)"),
              ("image", False, "training photo (no file here)"), ("text", None, "caption")]
    for kind, openable, label in groups:
        colour, marker, size = KIND_STYLE[kind]
        members = [n for n in nodes if n.kind == kind and n.id in pos and (openable is None or bool(n.path) == openable)]
        if not members:
            continue
        xs, ys = zip(*(pos[n.id] for n in members))
        style = ({"facecolors": "none", "edgecolors": colour, "linewidths": 1.6} if openable is False  # hollow:
                 else {"c": colour, "edgecolors": theme["fg"], "linewidths": 0.6})  # nothing to open behind it
        ax.scatter(xs, ys, s=size, marker=marker, zorder=2, label=label, **style)
        for n in members:
            x, y = pos[n.id]
            ax.annotate(node_label(n, 20), (x, y), xytext=(0, -11 if y <= 0 else 10), textcoords="offset points",
                        ha="center", va="top" if y <= 0 else "bottom", fontsize=7.5, color=theme["fg"], zorder=4)
    ax.margins(0.15)
    ax.set_aspect("equal", adjustable="datalim")
    ax.axis("off")
    legend = ax.legend(loc="upper left", fontsize=8, frameon=False, markerscale=0.5)
    for text in legend.get_texts():
        text.set_color(theme["fg"])
    ax.set_title("Nearest neighbours and their cross-modal partners (edge = similarity)", fontsize=10)
    _finish(fig, theme)
    return pos


# -- rendering to pixels (any thread) ------------------------------------------------------------------------
@dataclass
class Rendered:
    """Pixels of one drawn figure.

    Attributes
    ----------
    rgba
        (H, W, 4) uint8, the whole figure.
    figure
        The ``Figure`` that was drawn (inspect only; never drawn again), or None once :func:`detached`
        replaced it by its description ``info["drawn"]``.
    overlay
        (H, W, 4) uint8 layer to be composed over ``rgba`` with a user-chosen opacity, or None.
    info
        What the plot needs for interaction (e.g. node pixel positions), plot-specific.
    """

    rgba: np.ndarray
    figure: Figure | None
    overlay: np.ndarray | None = None
    info: dict = field(default_factory=dict)


@contextmanager
def agg_figure(width_px: int, height_px: int, dpi: float = 100.0) -> Iterator[Figure]:
    """A fresh constrained-layout ``Figure`` on its own Agg canvas, with :data:`DRAW_LOCK` held."""
    with DRAW_LOCK:
        fig = Figure(figsize=(max(width_px, 16) / dpi, max(height_px, 16) / dpi), dpi=dpi, layout="constrained")
        FigureCanvasAgg(fig)
        yield fig


def _pixels(fig: Figure) -> np.ndarray:
    fig.canvas.draw()
    return np.array(fig.canvas.buffer_rgba(), dtype=np.uint8)  # a copy: the canvas buffer is reused


def render_attention(explanation: Explanation, image: np.ndarray | None, word: int | None, theme: dict,
                     width_px: int, height_px: int, dpi: float = 100.0) -> Rendered:
    """The attention figure without the heatmap (``rgba``) and the heatmap alone at full opacity
    (``overlay``, transparent elsewhere, same layout): ``rgba`` + opacity x ``overlay`` is what
    :func:`draw_attention` draws at that opacity, so the opacity slider needs no new render."""
    with agg_figure(width_px, height_px, dpi) as fig:
        draw_attention(fig, explanation, image, word, opacity=0.0, theme=theme)
        base = _pixels(fig)
        info: dict = {"heat": None}
        overlay = None
        ax = fig.axes[0] if fig.axes else None
        if ax is not None and ax.images:
            heat = ax.images[-1]
            info["heat"] = np.asarray(heat.get_array())
            fig.set_layout_engine("none")  # keep the positions of the first draw
            hidden = [a for a in fig.findobj() if a not in (fig, ax, heat) and a.get_visible()]
            for artist in hidden:
                artist.set_visible(False)
            heat.set_alpha(1.0)
            overlay = _pixels(fig)
            for artist in hidden:  # leave the figure as drawn (tests inspect it)
                artist.set_visible(True)
            heat.set_alpha(0.0)
    return Rendered(base, fig, overlay, info)


def render_concepts(concepts: Concepts, theme: dict, width_px: int, height_px: int,
                    dpi: float = 100.0) -> Rendered:
    with agg_figure(width_px, height_px, dpi) as fig:
        draw_concepts(fig, concepts, theme)
        return Rendered(_pixels(fig), fig)


def render_graph(graph: NeighbourGraph, theme: dict, width_px: int, height_px: int, dpi: float = 100.0) -> Rendered:
    """The neighbour graph; ``info["pixels"]`` maps node id -> (x, y) in image pixels (origin top left)
    and ``info["positions"]`` node id -> data coordinates."""
    with agg_figure(width_px, height_px, dpi) as fig:
        pos = draw_graph(fig, graph, theme)
        rgba = _pixels(fig)
        pixels: dict[str, tuple[float, float]] = {}
        if pos and fig.axes:
            ids = list(pos)
            xy = fig.axes[0].transData.transform(np.array([pos[i] for i in ids], dtype=float))
            height = rgba.shape[0]
            pixels = {i: (float(x), float(height - y)) for i, (x, y) in zip(ids, xy)}
    return Rendered(rgba, fig, None, {"positions": pos, "pixels": pixels})


def describe(fig: Figure) -> list[dict]:
    """Plain data about what each axes of ``fig`` holds: image shapes, tick labels, bars, lines and markers."""
    return [{"images": [tuple(np.shape(im.get_array())) for im in ax.images],
             "xticklabels": [t.get_text() for t in ax.get_xticklabels()],
             "yticklabels": [t.get_text() for t in ax.get_yticklabels()],
             "patches": len(ax.patches), "lines": len(ax.lines),
             "markers": [len(c.get_offsets()) for c in ax.collections],
             "title": ax.get_title()} for ax in fig.axes]


def detached(renderer, width_px: int, height_px: int, dpi: float = 100.0) -> Rendered:
    """``renderer(width_px, height_px, dpi)`` without its ``Figure``, which becomes ``info["drawn"]``
    (:func:`describe`): what the app keeps, and what can cross a process boundary cheaply."""
    with DRAW_LOCK:
        r = renderer(width_px, height_px, dpi)
        drawn = describe(r.figure) if r.figure is not None else []
    return Rendered(r.rgba, None, r.overlay, {**r.info, "drawn": drawn})


def warm_up() -> None:
    """Load matplotlib's fonts and Agg once (the render process runs this when it starts)."""
    render_graph(NeighbourGraph(), LIGHT, 320, 240)
