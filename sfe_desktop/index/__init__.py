"""On-disk feature storage: faiss index of Step-1 vectors, patch store (4-bit codes, index/codec.py), thumbnail cache."""
from .atomic import atomic_write
from .store import VectorStore
from .thumbs import ThumbnailCache
from .vectors import FLAT_MAX, VectorIndex

__all__ = ["FLAT_MAX", "ThumbnailCache", "VectorIndex", "VectorStore", "atomic_write"]
