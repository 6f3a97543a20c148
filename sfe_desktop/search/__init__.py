"""Collection: index a photo folder with the SFE model and search it in both directions."""
from .collection import Collection
from .types import IndexProgress, IndexSummary, Result

__all__ = ["Collection", "IndexProgress", "IndexSummary", "Result"]
