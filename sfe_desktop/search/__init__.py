"""Collection: index a photo folder with the SFE model and search it in both directions.

``Result``, ``IndexProgress``, ``IndexSummary`` and the direction constants (:mod:`.types`) are plain records
that import nothing heavy, so the GUI can use them at start; :class:`Collection` (which loads torch and faiss)
is imported on first use.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .types import IndexProgress, IndexSummary, Result

if TYPE_CHECKING:
    from .collection import Collection

__all__ = ["Collection", "IndexProgress", "IndexSummary", "Result"]


def __getattr__(name: str):
    if name == "Collection":
        from .collection import Collection

        return Collection
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
