"""Draw the neighbour graph so that it can be read in a small pane: two trees side by side, nothing overlapping.

Left, the text side: the text (a star) on top of its trunk, the training captions near it below. Right, the photo
side: the photo (a square) and the training photos near it, each shown by its caption. Labels sit on the outer
side of each trunk (right-aligned on the left, left-aligned on the right), wrapped to the lines a row holds and
shortened with "…" (the app shows the whole text on hover); the gutter between the two columns holds only the
lines where the sides meet (a caption near the text that belongs to a photo near the photo). The axes use pixel
coordinates (origin top left), so every position and box is known exactly and nothing overlaps by construction.
"""
from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .types import QUERY_NODE, RESULT_NODE, GraphEdge, GraphNode, NeighbourGraph

COLOURS = {"text": "#f28e2b", "caption": "#59a14f", "photo": "#4e79a7", "meet": "#e15759"}
FONT_PT = 8.0
TITLE_PT = 9.0
MAX_LINES = 3  # of one label
GUTTER = 0.16  # of the width, between the two columns of nodes (where the sides meet)
STUB = 14.0  # trunk to node, in pixels at 100 dpi


@dataclass(frozen=True)
class GraphRoles:
    """What the two roots are in this search: the text side and the photo side (the legend and labels say it)."""

    text: str = "your search"
    photo: str = "the photo"


@dataclass
class GraphDrawing:
    """What :func:`draw_graph` placed: node centres and each node's box (marker and label), in pixels of the
    figure (origin top left), and the boxes of the title and the legend."""

    positions: dict[str, tuple[float, float]]
    boxes: dict[str, tuple[float, float, float, float]]
    other_boxes: list[tuple[float, float, float, float]]


def share(weight: float) -> str:
    """An edge weight (a share of the neighbour cue) as a percentage."""
    return f"{float(weight):.0%}"


def columns(graph: NeighbourGraph) -> tuple[list[GraphNode], list[GraphNode]]:
    """(text side, photo side) below the two roots: the targets of the roots' edges, then any other node by kind."""
    by_id = {n.id: n for n in graph.nodes}
    left = [by_id[e.target] for e in graph.edges if e.source == QUERY_NODE and e.target in by_id
            and e.target != RESULT_NODE]
    left = list({n.id: n for n in left}.values())
    right = [by_id[e.target] for e in graph.edges if e.source == RESULT_NODE and e.target in by_id
             and e.target != QUERY_NODE and e.target not in {n.id for n in left}]
    right = list({n.id: n for n in right}.values())
    placed = {QUERY_NODE, RESULT_NODE} | {n.id for n in left + right}
    for n in graph.nodes:
        if n.id not in placed:
            (left if n.kind == "text" else right).append(n)
    return left, right


def _fit(text: str, chars: int, lines: int) -> str:
    """``text`` wrapped to ``chars`` a line, at most ``lines`` lines, the last shortened with "…" if needed."""
    chars = max(4, chars)
    wrapped = textwrap.wrap(" ".join(text.split()), chars) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = textwrap.shorten(wrapped[-1] + " " + "x" * chars, chars, placeholder="…")
        if not wrapped[-1].endswith("…"):
            wrapped[-1] = wrapped[-1][: chars - 1] + "…"
    return "\n".join(wrapped)


def _label(node: GraphNode, roles: GraphRoles, weight: float | None) -> str:
    if node.id == QUERY_NODE:
        return f"{roles.text[:1].upper() + roles.text[1:]}: “{node.label}”"
    if node.id == RESULT_NODE:
        name = os.path.basename(node.path) if node.path else node.label
        return f"{roles.photo[:1].upper() + roles.photo[1:]}: {name}"
    text = node.label or (os.path.basename(node.path) if node.path else node.id)
    if node.kind == "image" and not node.path:
        text = f"“{text}”"
    return f"{share(weight)}  {text}" if weight is not None else text


def draw_graph(fig: Figure, graph: NeighbourGraph, theme: dict, roles: GraphRoles | None = None) -> GraphDrawing:
    """Draw ``graph`` (best: :func:`~sfe_desktop.explanation.readable.readable_graph` of the explanation's) on
    ``fig``; see the module docstring for the layout."""
    roles = roles or GraphRoles()
    fig.clear()
    fig.set_layout_engine("none")
    width, height = fig.bbox.width, fig.bbox.height
    px = fig.dpi / 72.0  # pixels per point
    scale = fig.dpi / 100.0
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
    by_id = {n.id: n for n in graph.nodes}
    left, right = columns(graph)
    roots = [by_id[i] for i in (QUERY_NODE, RESULT_NODE) if i in by_id]
    if not graph.nodes:
        ax.text(width / 2, height / 2, "No neighbours to show.", ha="center", va="center", color=theme["fg"])
        return GraphDrawing({}, {}, [])
    weight_of = {e.target: e.weight for e in graph.edges if e.source in (QUERY_NODE, RESULT_NODE)}
    renderer = fig.canvas.get_renderer()
    margin = 8 * scale
    line_h = FONT_PT * px * 1.25

    # title and legend first: the rows share what is left
    title = ax.text(width / 2, margin, "", ha="center", va="top", fontsize=TITLE_PT, color=theme["fg"])
    title_chars = int(width / (TITLE_PT * px * 0.55))
    title_text = "Training neighbours each side borrowed (%: its share of the neighbour cue)"
    title.set_text(_fit(title_text, title_chars, 2))
    while title.get_window_extent(renderer).width > width - 2 * margin and title_chars > 10:
        title_chars -= 2
        title.set_text(_fit(title_text, title_chars, 2))
    handles = [
        Line2D([], [], marker="*", ls="", ms=11, color=COLOURS["text"], label=roles.text),
        Line2D([], [], marker="s", ls="", ms=8, color=COLOURS["photo"], label=roles.photo),
        Line2D([], [], marker="o", ls="", ms=7, color=COLOURS["caption"], label=f"training caption near {roles.text}"),
        Line2D([], [], marker="s", ls="", ms=7, mfc="none", mec=COLOURS["photo"], mew=1.5,
               label=f"training photo near {roles.photo}, by its caption"),
        Line2D([], [], ls="--", color=COLOURS["meet"], label="the caption is that photo's: the sides meet"),
    ]
    ncol = 2 if width >= 560 * scale else 1
    legend = ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=ncol,
                       fontsize=FONT_PT - 0.5, frameon=False, handlelength=1.6, columnspacing=1.2,
                       labelspacing=0.35, borderaxespad=0.3)
    for text in legend.get_texts():
        text.set_color(theme["fg"])
    fig.canvas.draw()  # sizes of the title and the legend
    tb, lb = title.get_window_extent(renderer), legend.get_window_extent(renderer)
    top = height - tb.y0 + 6 * scale
    bottom = height - lb.y1 - 6 * scale

    # columns: [label | trunk - stub - node] gutter [node - stub - trunk | label]
    cx = width / 2
    gutter = max(GUTTER * width, 40 * scale)
    node_l, node_r = cx - gutter / 2, cx + gutter / 2
    trunk_l, trunk_r = node_l - STUB * scale, node_r + STUB * scale
    rows = 1 + max(len(left), len(right), 1)
    row_h = min((bottom - top) / rows, (MAX_LINES * line_h + 10 * scale))
    lines = int(max(1, min(MAX_LINES, (row_h - 4 * scale) // line_h)))
    char_w = FONT_PT * px * 0.56
    label_gap = 9 * scale
    chars_l = int((trunk_l - label_gap - margin) / char_w)
    chars_r = int((width - margin - trunk_r - label_gap) / char_w)

    def y_of(row: int) -> float:
        return top + row_h * (row + 0.5)

    positions: dict[str, tuple[float, float]] = {}
    texts: dict[str, object] = {}
    if QUERY_NODE in by_id:
        positions[QUERY_NODE] = (trunk_l, y_of(0))
    if RESULT_NODE in by_id:
        positions[RESULT_NODE] = (trunk_r, y_of(0))
    for row, node in enumerate(left, 1):
        positions[node.id] = (node_l, y_of(row))
    for row, node in enumerate(right, 1):
        positions[node.id] = (node_r, y_of(row))
    on_left = {QUERY_NODE} | {n.id for n in left}

    # edges: root -> child as an elbow along the trunk, everything else across the gutter
    for e in graph.edges:
        if e.source not in positions or e.target not in positions:
            continue
        (x0, y0), (x1, y1) = positions[e.source], positions[e.target]
        if {e.source, e.target} == {QUERY_NODE, RESULT_NODE}:
            ax.plot([x0, x1], [y0, y1], color=theme["grid"], lw=2.2, zorder=1)
        elif e.source in (QUERY_NODE, RESULT_NODE):
            ax.plot([x0, x0, x1], [y0, y1, y1], color=theme["grid"], lw=0.8 + 2.4 * min(1.0, float(e.weight)),
                    zorder=1, solid_joinstyle="round")
        elif (e.source in on_left) != (e.target in on_left):
            ax.plot([x0, x1], [y0, y1], color=COLOURS["meet"], lw=1.2, ls="--", zorder=1)
        else:  # both on one side: bow into the gutter
            ax.plot([x0, cx, x1], [y0, (y0 + y1) / 2, y1], color=COLOURS["meet"], lw=1.0, ls=":", zorder=1)

    # nodes and labels
    for node in roots + left + right:
        x, y = positions[node.id]
        if node.id == QUERY_NODE or node.kind == "query":
            style = dict(marker="*", s=230 * scale ** 2, c=COLOURS["text"], edgecolors=theme["fg"], linewidths=0.5)
        elif node.kind == "text":
            style = dict(marker="o", s=70 * scale ** 2, c=COLOURS["caption"], edgecolors=theme["fg"], linewidths=0.5)
        elif node.path:
            style = dict(marker="s", s=110 * scale ** 2, c=COLOURS["photo"], edgecolors=theme["fg"], linewidths=0.5)
        else:
            style = dict(marker="s", s=80 * scale ** 2, facecolors=theme["bg"], edgecolors=COLOURS["photo"],
                         linewidths=1.5)
        ax.scatter([x], [y], zorder=3, **style)
        left_side = node.id in on_left
        weight = None if node.id in (QUERY_NODE, RESULT_NODE) else weight_of.get(node.id)
        full = _label(node, roles, weight)
        chars = chars_l if left_side else chars_r
        anchor = (trunk_l - label_gap) if left_side else (trunk_r + label_gap)
        text = ax.text(anchor, y, _fit(full, chars, lines), ha="right" if left_side else "left", va="center",
                       fontsize=FONT_PT, color=theme["fg"], zorder=4,
                       fontweight="bold" if node.id in (QUERY_NODE, RESULT_NODE) else "normal")
        room = (anchor - margin) if left_side else (width - margin - anchor)
        while text.get_window_extent(renderer).width > room and chars > 6:  # the estimate was too generous
            chars -= 2
            text.set_text(_fit(full, chars, lines))
        texts[node.id] = text
    fig.canvas.draw()
    boxes = {}
    marker_r = 8 * scale
    for node_id, text in texts.items():
        b = text.get_window_extent(renderer)
        x, y = positions[node_id]
        boxes[node_id] = (min(b.x0, x - marker_r), min(height - b.y1, y - marker_r),
                          max(b.x1, x + marker_r), max(height - b.y0, y + marker_r))
    others = [(b.x0, height - b.y1, b.x1, height - b.y0) for b in (tb, lb)]
    return GraphDrawing(positions, boxes, others)
