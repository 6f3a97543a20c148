"""Why a photo matched a text: the typed explanation of one pair (:mod:`.types`, plain numpy data, no torch)
and its drawings (:mod:`.plots`, matplotlib without pyplot or Qt, run in the app's render process).

``sfe_desktop.model.explain`` computes an :class:`Explanation` from the model; the CLI prints
:meth:`Explanation.to_json`; the GUI draws it with :mod:`.plots`.
"""
from .types import (QUERY_NODE, RESULT_NODE, Comparison, Concept, Concepts, Explanation, GraphEdge, GraphNode, NeighbourGraph,
                    NodeKind)

__all__ = ["QUERY_NODE", "RESULT_NODE", "Comparison", "Concept", "Concepts", "Explanation", "GraphEdge", "GraphNode",
           "NeighbourGraph", "NodeKind"]
