"""On-disk feature storage: faiss index of Step-1 vectors, float16 patch store, thumbnail cache."""
from .atomic import atomic_write
from .store import VectorStore
from .thumbs import ThumbnailCache
from .vectors import FLAT_MAX, VectorIndex

__all__ = ["FLAT_MAX", "ThumbnailCache", "VectorIndex", "VectorStore", "atomic_write"]
