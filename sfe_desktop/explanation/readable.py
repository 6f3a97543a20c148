"""Explanations as a person reads them: near-duplicate concepts merged, the neighbour graph reduced to what it says.

The model reports what it computed (:mod:`sfe_desktop.model.explain`): concepts of its vocabulary, some of them
forms of one word ("sand", "sandy"), and a neighbour graph in which every training caption and training photo is
its own node, so a caption's own photo (which has no file here) doubles every caption. These functions rewrite
both for display; they add nothing the model did not compute.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .types import QUERY_NODE, RESULT_NODE, Concept, Concepts, GraphEdge, GraphNode, NeighbourGraph

_SUFFIXES = ("ing", "es", "ed", "s", "y")


def stem(word: str) -> str:
    """A crude English stem for grouping a concept's word forms: catch/catches/catching -> catch, sand/sandy ->
    sand, running/runs -> run, babies/baby -> bab. Multi-word names are stemmed word by word."""
    if " " in word.strip():
        return " ".join(stem(w) for w in word.split())
    w = word.lower()
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    for suffix in _SUFFIXES:
        if not w.endswith(suffix) or len(w) - len(suffix) < 3:
            continue
        if suffix == "es" and not w[:-2].endswith(("s", "x", "z", "ch", "sh")):
            continue  # "horses" -> "horse" + "s", handled by "s"
        if suffix == "s" and w.endswith("ss"):
            continue
        w = w[: -len(suffix)]
        if suffix in ("ing", "ed", "y") and len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
            w = w[:-1]  # running -> runn -> run, sunny -> sunn -> sun (but grass, hill stay)
        break
    if w.endswith("y") and len(w) > 3:
        w = w[:-1]  # plays -> play -> pla, as playing and play
    return w


@dataclass(frozen=True)
class MergedConcepts:
    """:class:`Concepts` with one entry per word (its forms summed), and which forms each entry stands for."""

    concepts: Concepts
    forms: dict[str, list[str]]   # shown name -> every name of the vocabulary merged into it (itself first)


def merge_concepts(concepts: Concepts) -> MergedConcepts:
    """Merge the concepts whose names share a :func:`stem`: each side's weights add up (they are shares of one
    softmax, so the sum is the group's share), the shortest name is shown, and the co-occurrence of two groups is
    the largest between their members."""
    group_of: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for name in concepts.names + [c.name for c in concepts.image + concepts.text]:
        key = stem(name)
        if name not in members.setdefault(key, []):
            members[key].append(name)
    shown = {key: min(names, key=lambda n: (len(n), n)) for key, names in members.items()}
    for key, names in members.items():
        for name in names:
            group_of[name] = shown[key]

    def side(fired: list[Concept]) -> list[Concept]:
        total: dict[str, float] = {}
        for c in fired:
            total[group_of[c.name]] = total.get(group_of[c.name], 0.0) + float(c.weight)
        return sorted((Concept(n, w) for n, w in total.items()), key=lambda c: -c.weight)

    names = list(dict.fromkeys(group_of[n] for n in concepts.names))
    index = {n: i for i, n in enumerate(names)}
    old = np.asarray(concepts.cooccurrence, dtype=np.float32).reshape(len(concepts.names), len(concepts.names))
    cooc = np.zeros((len(names), len(names)), np.float32)
    for i, a in enumerate(concepts.names):
        for j, b in enumerate(concepts.names):
            ga, gb = index[group_of[a]], index[group_of[b]]
            if ga != gb:
                cooc[ga, gb] = max(cooc[ga, gb], old[i, j])
    forms = {shown[k]: sorted(v, key=lambda n: (n != shown[k], len(n), n)) for k, v in members.items()}
    return MergedConcepts(Concepts(side(concepts.image), side(concepts.text), names, cooc), forms)


def readable_graph(graph: NeighbourGraph) -> NeighbourGraph:
    """The neighbour graph with one node per thing a person can read.

    Kept: the query text (:data:`QUERY_NODE`) and the training captions nearest to it; the explained photo
    (:data:`RESULT_NODE`) and the training photos nearest to it, each labelled with its caption (they have no file
    here); an edge caption -> training photo where a caption near the text belongs to a photo near the photo
    (the two sides meet there). Dropped: each caption's own training photo when it is not near the photo, and
    the captions that only name a training photo (they became its label)."""
    by_id = {n.id: n for n in graph.nodes}
    out = [e for e in graph.edges if e.source in by_id and e.target in by_id]
    text_side = [e for e in out if e.source == QUERY_NODE and by_id[e.target].kind == "text"]
    photo_side = [e for e in out if e.source == RESULT_NODE and by_id[e.target].kind == "image"]
    near_photo = {e.target for e in photo_side}
    near_text = {e.target for e in text_side}
    caption_of: dict[str, str] = {}
    for e in out:  # training photo <-> caption links, either way round
        a, b = by_id[e.source], by_id[e.target]
        if a.kind == "image" and b.kind == "text" and a.id not in (QUERY_NODE, RESULT_NODE):
            caption_of.setdefault(a.id, b.label)
        elif a.kind == "text" and b.kind == "image" and b.id not in (QUERY_NODE, RESULT_NODE):
            caption_of.setdefault(b.id, a.label)
    nodes = [n for n in (by_id.get(QUERY_NODE), by_id.get(RESULT_NODE)) if n is not None]
    nodes += [by_id[e.target] for e in text_side]
    for e in photo_side:
        node = by_id[e.target]
        label = caption_of.get(node.id) if not node.path else None
        nodes.append(GraphNode(node.id, "image", label or node.label, node.weight, node.path))
    edges = text_side + photo_side
    edges += [GraphEdge(e.source, e.target, e.weight) for e in out
              if e.source in near_text and e.target in near_photo]
    return NeighbourGraph(nodes, edges)
