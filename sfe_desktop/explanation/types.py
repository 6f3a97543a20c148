"""The explanation of one text-image pair as typed data: what the model computed, nothing drawn.

Arrays stay numpy (the GUI draws them); :meth:`Explanation.to_dict` / :meth:`Explanation.to_json` give strict
JSON (lists, and ``null`` for a number that is not finite: never a ``NaN`` token).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

NodeKind = Literal["query", "image", "text"]
QUERY_NODE = "query"    # id of the graph node of the query text
RESULT_NODE = "result"  # id of the graph node of the image side of the pair (the explained photo)


def _number(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _numbers(array: np.ndarray) -> list:
    """A float array as nested lists, non-finite entries as None."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 0:
        return _number(array)  # type: ignore[return-value]
    return [_numbers(row) if array.ndim > 1 else _number(row) for row in array]


@dataclass(frozen=True)
class Concept:
    """A concept of the vocabulary and how strongly it fired."""

    name: str
    weight: float


@dataclass(eq=False)
class Concepts:
    """The concepts that fired for the photo and for the text, and how they co-occur in the training corpus."""

    image: list[Concept]
    text: list[Concept]
    names: list[str]           # union of both, m names (text first)
    cooccurrence: np.ndarray   # (m, m) float32 corpus co-occurrence weights of ``names``, zero diagonal

    def to_dict(self) -> dict:
        return {"image": [{"name": c.name, "weight": _number(c.weight)} for c in self.image],
                "text": [{"name": c.name, "weight": _number(c.weight)} for c in self.text],
                "names": list(self.names), "cooccurrence": _numbers(self.cooccurrence)}


@dataclass(frozen=True)
class GraphNode:
    """A node of the neighbour graph. ``path`` is set for a photo of the user's (it can be opened), None for a
    training photo or a caption."""

    id: str
    kind: NodeKind
    label: str
    weight: float
    path: str | None = None


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    weight: float


@dataclass
class NeighbourGraph:
    """The query, its nearest training captions and their photos, and the explained photo with its nearest
    training photos and their captions."""

    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[GraphEdge] = field(default_factory=list)

    def node(self, node_id: str) -> GraphNode | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    def to_dict(self) -> dict:
        return {"nodes": [{"id": n.id, "kind": n.kind, "label": n.label, "weight": _number(n.weight), "path": n.path}
                          for n in self.nodes],
                "edges": [{"source": e.source, "target": e.target, "weight": _number(e.weight)} for e in self.edges]}


@dataclass(eq=False)
class Explanation:
    """Why one photo matched one text.

    Attributes
    ----------
    score, step1
        The pair's final (Step-2) score and its Step-1 cosine.
    words
        The query's words (WordPieces joined, special tokens dropped), W of them.
    grid
        The photo's patch grid (h, w).
    attention
        (W, h*w) float32 word-to-patch maps, each row summing to 1: the word's Step-2 attention, mixed (by
        ``grounding``) with the class map of the ImageNet classes the word names when the model has a bridge.
    heatmap
        (h*w,) float32 the pair's heatmap: the rows weighted by how much each word counts in the score (sums
        to 1); what each patch feeds the word side of the Step-2 score.
    photo
        The file of the image side of the pair (the hit of text->image, the query photo of image->text) when it
        has one; the graph's :data:`RESULT_NODE` carries the same path.
    classes
        The ImageNet classes the photo shows most (its pretrained classifier's probabilities), with a bridge.
    word_classes
        Per word, the ImageNet class it names (its share of the word's class assignment as the weight) when the
        word names one clearly enough to ground its row in the class maps; else None.
    grounding
        (W,) how much of each word's row comes from the class map of the classes it names (0: Step-2 attention
        alone); empty without a bridge.
    """

    score: float
    step1: float
    words: list[str]
    grid: tuple[int, int]
    attention: np.ndarray
    heatmap: np.ndarray
    concepts: Concepts
    neighbours: NeighbourGraph
    photo: str | None = None
    classes: list[Concept] = field(default_factory=list)
    word_classes: list[Concept | None] = field(default_factory=list)
    grounding: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def to_dict(self) -> dict:
        """Plain JSON-ready data (the schema in docs/architecture.md)."""
        return {"score": _number(self.score), "step1": _number(self.step1), "words": list(self.words),
                "grid": [int(self.grid[0]), int(self.grid[1])], "attention": _numbers(self.attention),
                "heatmap": _numbers(self.heatmap),
                "concepts": self.concepts.to_dict(), "neighbours": self.neighbours.to_dict(), "photo": self.photo,
                "classes": [{"name": c.name, "weight": _number(c.weight)} for c in self.classes],
                "word_classes": [None if c is None else {"name": c.name, "weight": _number(c.weight)}
                                 for c in self.word_classes],
                "grounding": _numbers(self.grounding)}

    def to_json(self, indent: int | None = None) -> str:
        """Strict JSON text (``allow_nan=False``: a non-finite number is written as null, never as NaN)."""
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


@dataclass(frozen=True)
class Comparison:
    """Why two photos are similar: the cosine of the model's own photo vectors (1 = the same photo; the search's
    score also weighs in the label bridge, in units of its spread) and the ImageNet classes both photos show
    (each ``weight``: the geometric mean of the two photos' probabilities), with each photo's own top classes."""

    cosine: float
    shared: list[Concept]
    query_classes: list[Concept]
    result_classes: list[Concept]
    grid: tuple[int, int] | None = None      # with the maps: where each photo shows the first shared class
    query_map: np.ndarray | None = None      # (h*w,) summing to 1: that class's map over the query photo's patches
    result_map: np.ndarray | None = None

    def to_dict(self) -> dict:
        def listed(concepts):
            return [{"name": c.name, "weight": _number(c.weight)} for c in concepts]

        out = {"cosine": _number(self.cosine), "shared": listed(self.shared),
               "query_classes": listed(self.query_classes), "result_classes": listed(self.result_classes)}
        if self.query_map is not None and self.result_map is not None and self.shared:
            out["where"] = {"class": self.shared[0].name, "grid": list(self.grid),
                            "query": _numbers(self.query_map), "result": _numbers(self.result_map)}
        return out
