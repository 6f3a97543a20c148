"""Draw the three explanation views onto matplotlib ``Figure`` objects (no pyplot, no Qt).

``draw_*`` take a part of an :class:`~sfe_desktop.explanation.Explanation` and only draw it. ``render_*``
build a fresh ``Figure`` on a ``FigureCanvasAgg`` and return its pixels (:class:`Rendered`); the Qt layer
calls them in its render process (``qt/plot_canvas.py``), or on its render thread. Every matplotlib build and draw in the app holds :data:`DRAW_LOCK`:
matplotlib (its FreeType font cache in particular) is not thread-safe, and two threads drawing text at once
crashed CPython ("none_dealloc").
"""
from __future__ import annotations

import itertools
import textwrap
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .graph_plot import GraphRoles, draw_graph
from .types import Concepts, Explanation, NeighbourGraph

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


def _finish_colours(fig: Figure, theme: dict) -> None:
    fig.set_facecolor(theme["bg"])
    for ax in fig.axes:
        ax.set_facecolor(theme["bg"])


def _figure_title(fig: Figure, text: str, fontsize: float, theme: dict) -> None:
    """A title centred on the figure, wrapped to its width (an axes title is centred on its axes, which the
    tick labels push off centre: at a narrow pane its end was cut off)."""
    char_px = fontsize * fig.dpi / 72 * 0.6  # a generous average glyph width of the UI font
    fig.suptitle(textwrap.fill(text, max(16, int(0.92 * fig.bbox.width / char_px))), fontsize=fontsize,
                 color=theme["fg"])


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
    ax.set_title(f"Where the model looks for {label}  ·  Step-2 score {explanation.score:.3f}", fontsize=10)
    _finish(fig, theme)


MATRIX_SHARE = 0.34  # about the share of the Concepts figure's height that the matrix gets
LABEL_PX = 12        # the least height of a matrix row (or width of a column) whose 8-point label reads
VALUE_PX = 30        # the least size of a matrix cell that has room for its value ("0.01" at 7 points)


def matrix_concepts(concepts: Concepts, fit: int) -> list[int]:
    """Positions in ``concepts.names`` of at most ``fit`` (at least 4) concepts for the matrix, in their order: the
    most fired of the text's and the photo's in turn."""
    if len(concepts.names) <= max(fit, 4):
        return list(range(len(concepts.names)))
    where = {n: i for i, n in enumerate(concepts.names)}
    sides = [[where[c.name] for c in sorted(fired, key=lambda c: -float(c.weight)) if c.name in where]
             for fired in (concepts.text, concepts.image)]
    keep: list[int] = []
    for pair in itertools.zip_longest(*sides):
        for i in pair:
            if i is not None and i not in keep and len(keep) < max(fit, 4):
                keep.append(i)
    return sorted(keep)


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
    matrix_px = fig.get_size_inches()[1] * fig.dpi * MATRIX_SHARE
    keep = matrix_concepts(concepts, int(matrix_px // LABEL_PX))
    title = "How often two concepts are named in one training caption"
    if len(keep) < len(names):  # the labels would overlap: the most fired of each side
        title += f" (the {len(keep)} most fired of {len(names)})"
    names, mat = [names[i] for i in keep], mat[np.ix_(keep, keep)]
    im = ax.imshow(mat, cmap="viridis")
    ax.set_xticks(range(len(names)), [textwrap.shorten(n, 14, placeholder="…") for n in names],
                  rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), [textwrap.shorten(n, 18, placeholder="…") for n in names], fontsize=8)
    if len(names) * VALUE_PX <= matrix_px:  # the values in the cells, where they have room
        cut = float(mat.max()) * 0.6 if mat.size else 0.0
        for (i, j), v in np.ndenumerate(mat):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="black" if v > cut else "white")
    _figure_title(fig, title, 9, theme)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    for row, (fired, title, colour) in enumerate([(concepts.text, "Fired for the text", KIND_STYLE["text"][0]),
                                                   (concepts.image, "Fired for the photo", KIND_STYLE["image"][0])]):
        bar_ax = fig.add_subplot(grid[1, row])
        items = sorted(fired, key=lambda c: -float(c.weight))[:8]
        if items:
            labels = [textwrap.shorten(c.name, 18, placeholder="…") for c in items][::-1]
            bar_ax.barh(labels, [float(c.weight) for c in items][::-1], color=colour)
            bar_ax.tick_params(axis="y", labelsize=8)
            bar_ax.tick_params(axis="x", labelsize=7)
            bar_ax.set_xlabel("share of the concept cue", fontsize=7)
        else:
            bar_ax.text(0.5, 0.5, "none", ha="center", va="center", transform=bar_ax.transAxes,
                        color=theme["fg"])
            bar_ax.set_xticks([])
            bar_ax.set_yticks([])
        bar_ax.set_title(title, fontsize=9)
    _finish(fig, theme)


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


def render_graph(graph: NeighbourGraph, theme: dict, width_px: int, height_px: int, dpi: float = 100.0,
                 roles: GraphRoles | None = None) -> Rendered:
    """The neighbour graph (:func:`~sfe_desktop.explanation.graph_plot.draw_graph`); ``info["pixels"]`` maps node
    id -> (x, y) in image pixels (origin top left), ``info["boxes"]`` node id -> (x0, y0, x1, y1) of its marker and
    label (what hover and clicks hit), ``info["other_boxes"]`` the title's and the legend's."""
    with agg_figure(width_px, height_px, dpi) as fig:
        drawing = draw_graph(fig, graph, theme, roles)
        _finish_colours(fig, theme)
        rgba = _pixels(fig)
    return Rendered(rgba, fig, None, {"pixels": drawing.positions, "boxes": drawing.boxes,
                                      "other_boxes": drawing.other_boxes})


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
