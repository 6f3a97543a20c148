"""faiss index over the Step-1 vectors (L2-normalised, so inner product = cosine).

Exact ``IndexFlatIP`` up to :data:`FLAT_MAX` vectors, ``IndexHNSWFlat`` beyond, both wrapped in an
``IndexIDMap2`` whose ids are catalog file ids. Saved atomically (temp file + ``os.replace``).
"""
from __future__ import annotations

import logging
from pathlib import Path

import faiss
import numpy as np

from ..errors import IndexStateError
from .atomic import atomic_write

log = logging.getLogger(__name__)

FLAT_MAX = 100_000
HNSW_M = 32
HNSW_EF_SEARCH = 128
HNSW_EF_CONSTRUCTION = 80


def _make(dim: int, n: int) -> faiss.Index:
    if n <= FLAT_MAX:
        base = faiss.IndexFlatIP(dim)
    else:
        base = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        base.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        base.hnsw.efSearch = HNSW_EF_SEARCH
    return faiss.IndexIDMap2(base)


class VectorIndex:
    """Searchable set of (file id, vector) pairs."""

    def __init__(self, dim: int, index: faiss.Index | None = None):
        self.dim = dim
        self.index = index if index is not None else _make(dim, 0)

    @property
    def kind(self) -> str:
        return "hnsw" if self.is_hnsw else "flat"

    @property
    def is_hnsw(self) -> bool:
        return isinstance(faiss.downcast_index(self.index.index), faiss.IndexHNSWFlat)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vectors: np.ndarray) -> "VectorIndex":
        vi = cls(dim, _make(dim, len(ids)))
        if len(ids):
            vi.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
        return vi

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def can_remove(self) -> bool:
        return not self.is_hnsw

    def remove(self, ids) -> None:
        ids = np.asarray(list(ids), dtype=np.int64)
        if ids.size:
            self.index.remove_ids(ids)

    def needs_rebuild(self) -> bool:
        """True when the size crossed :data:`FLAT_MAX` and the other kind would fit better."""
        return self.is_hnsw != (len(self) > FLAT_MAX)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, ids) per query row, best first; missing slots are dropped (1 query)
        or have id -1 (several)."""
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(int(k), len(self))
        if k <= 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        if len(q) == 1:  # one query: OpenMP start-up costs more than it saves (13 ms vs 60 ms at 100k)
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)
            try:
                scores, ids = self.index.search(q, k)
            finally:
                faiss.omp_set_num_threads(threads)
        else:
            scores, ids = self.index.search(q, k)
        if len(q) == 1:
            keep = ids[0] >= 0
            return scores[:, keep], ids[:, keep]
        return scores, ids

    def save(self, path: str | Path) -> None:
        atomic_write(path, lambda tmp: faiss.write_index(self.index, tmp))

    @classmethod
    def load(cls, path: str | Path, dim: int) -> "VectorIndex":
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise IndexStateError(f"cannot read vector index {path}: {str(exc).splitlines()[0]}") from exc
        if index.d != dim or not isinstance(index, faiss.IndexIDMap2):
            raise IndexStateError(f"vector index {path} does not match this model (dimension {index.d})")
        return cls(dim, index)
