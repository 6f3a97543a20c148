"""faiss index over the Step-1 vectors (the fused query's inner product with them is the Step-1 score).

The kind follows the collection's size (:func:`kind_for`):

* ``flat``: exact ``IndexFlatIP`` in an ``IndexIDMap2`` up to :data:`FLAT_MAX` vectors (4 bytes a dimension);
* ``ivf-sq8``: above it, ``IndexIVFScalarQuantizer`` with 8-bit codes (1 byte a dimension: 0.46 GB for a million
  448-wide vectors instead of 1.8 GB) and :func:`n_lists` k-means cells, holding the catalog's file ids itself.
  Its scores are approximate, so it is searched for a shortlist (:meth:`VectorIndex.shortlist`) that the caller
  re-scores exactly from the stored float32 rows (:meth:`~sfe_desktop.search.state.IndexState.nearest`).

``IndexHNSWFlat`` indexes (what earlier versions built above :data:`FLAT_MAX`) still load and search; the next
index run replaces them. Saved atomically (temp file + ``os.replace``) with faiss's own format (no pickle).
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from ..errors import IndexStateError
from .atomic import atomic_write

log = logging.getLogger(__name__)

FLAT_MAX = 100_000      # exact search up to this many vectors
FLAT_AGAIN = 0.9        # an approximate index turns exact again below this share of FLAT_MAX (no flip-flopping)
FLAT, IVF, HNSW = "flat", "ivf-sq8", "hnsw"
TRAIN_PER_LIST = 40     # k-means training points per cell (faiss wants at least 39)
PROBE_SHARE = 64        # a search visits 1/64 of the cells (at least MIN_PROBE)
MIN_PROBE = 16
SHORTLIST = 2           # an approximate search re-scores SHORTLIST x k candidates (at least k + SHORTLIST_MIN)
SHORTLIST_MIN = 100
KMEANS_ITER = 10
ADD_CHUNK = 50_000


def kind_for(n: int, current: str | None = None) -> str:
    """The index kind for ``n`` vectors: exact up to :data:`FLAT_MAX`; an approximate one stays until the
    collection shrinks below ``FLAT_AGAIN * FLAT_MAX`` (so one photo more or less does not rebuild it)."""
    if current in (IVF, HNSW) and n >= FLAT_AGAIN * FLAT_MAX:
        return IVF
    return FLAT if n <= FLAT_MAX else IVF


def n_lists(n: int) -> int:
    """k-means cells of an approximate index of ``n`` vectors: the power of two nearest ``2 * sqrt(n)``
    (512 at 100,000, 2,048 at a million), halved while there are fewer than :data:`TRAIN_PER_LIST` vectors a cell."""
    nlist = 2 ** round(math.log2(2 * math.sqrt(max(n, 1))))
    while nlist > 1 and nlist * TRAIN_PER_LIST > n:
        nlist //= 2
    return nlist


def n_probe(nlist: int) -> int:
    return min(nlist, max(MIN_PROBE, nlist // PROBE_SHARE))


def _flat(dim: int) -> faiss.Index:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))


def _ivf_of(index: faiss.Index) -> faiss.IndexIVFScalarQuantizer | None:
    index = faiss.downcast_index(index)
    return index if isinstance(index, faiss.IndexIVFScalarQuantizer) else None


class VectorIndex:
    """Searchable set of (file id, vector) pairs."""

    def __init__(self, dim: int, index: faiss.Index | None = None, mapped: bool = False):
        self.dim = dim
        self.mapped = mapped  # cells memory-mapped from the saved file (read-only until the first change)
        self.index = index if index is not None else _flat(dim)
        self._ivf = _ivf_of(self.index)  # a view of self.index, which owns the memory (keep both)
        if self._ivf is not None:
            self._ivf.nprobe = n_probe(self._ivf.nlist)

    @property
    def kind(self) -> str:
        if self._ivf is not None:
            return IVF
        return HNSW if isinstance(faiss.downcast_index(self.index.index), faiss.IndexHNSWFlat) else FLAT

    @property
    def is_hnsw(self) -> bool:
        return self.kind == HNSW

    @property
    def exact(self) -> bool:
        """True when the scores :meth:`search` returns are the exact inner products (flat, HNSW's stored floats)."""
        return self.kind != IVF

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        ivf = self._ivf
        if ivf is None:
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)
        lists = ivf.invlists
        parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                 for i in range(ivf.nlist) if lists.list_size(i)]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vectors: np.ndarray | Callable[[np.ndarray], np.ndarray],
              kind: str | None = None, seed: int = 0) -> "VectorIndex":
        """An index of the kind :func:`kind_for` gives (or ``kind``) holding ``ids``. ``vectors``: their rows, or a
        function from positions in ``ids`` to rows (a million rows are read a chunk at a time, never all at once)."""
        ids = np.asarray(ids, dtype=np.int64)
        read = vectors if callable(vectors) else (lambda pos: vectors[pos])
        kind = kind or kind_for(len(ids))
        if kind == FLAT or not len(ids):
            vi = cls(dim)
        else:
            nlist = n_lists(len(ids))
            index = faiss.index_factory(dim, f"IVF{nlist},SQ8", faiss.METRIC_INNER_PRODUCT)  # owns its quantiser
            ivf = _ivf_of(index)
            ivf.cp.niter = KMEANS_ITER
            ivf.cp.seed = seed
            ivf.cp.max_points_per_centroid = TRAIN_PER_LIST  # no "sampling" notice: the sample is ours
            ivf.cp.min_points_per_centroid = 1
            sample = np.sort(np.random.default_rng(seed).choice(len(ids), min(len(ids), nlist * TRAIN_PER_LIST),
                                                                replace=False))
            index.train(np.ascontiguousarray(read(sample), dtype=np.float32))
            vi = cls(dim, index)
        for start in range(0, len(ids), ADD_CHUNK):
            pos = np.arange(start, min(start + ADD_CHUNK, len(ids)))
            vi.add(ids[pos], read(pos))
        return vi

    def _in_memory(self) -> None:
        """Copy memory-mapped cells into memory before the index changes (or is saved: faiss would write a
        reference to the mapped file instead of the cells)."""
        if not self.mapped:
            return
        ivf = self._ivf
        mapped, lists = ivf.invlists, faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size)
        for i in range(ivf.nlist):
            n = mapped.list_size(i)
            if n:
                lists.add_entries(i, n, mapped.get_ids(i), mapped.get_codes(i))
        ivf.replace_invlists(lists, True)  # the index owns the copy and frees (unmaps) the mapped cells
        lists.this.disown()
        self.mapped = False

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self._in_memory()
            self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def can_remove(self) -> bool:
        return not self.is_hnsw

    def remove(self, ids) -> None:
        ids = np.asarray(list(ids), dtype=np.int64)
        if ids.size:
            self._in_memory()
            self.index.remove_ids(ids)

    def needs_rebuild(self, n: int | None = None) -> bool:
        """True when ``n`` vectors (default: those held) want another kind, or an approximate index has outgrown
        its cells (4 times fewer than :func:`n_lists` would choose now)."""
        n = len(self) if n is None else n
        if kind_for(n, self.kind) != self.kind:
            return True
        return self._ivf is not None and n_lists(n) >= 4 * self._ivf.nlist

    def shortlist(self, k: int) -> int:
        """How many candidates to fetch for the top ``k``: ``k`` when the scores are exact, more otherwise (the
        caller re-scores them exactly and keeps ``k``)."""
        return k if self.exact else max(SHORTLIST * k, k + SHORTLIST_MIN)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, ids) per query row, best first (scores approximate unless :attr:`exact`); missing
        slots are dropped (1 query) or have id -1 (several)."""
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
        self._in_memory()
        atomic_write(path, lambda tmp: faiss.write_index(self.index, tmp))

    @classmethod
    def load(cls, path: str | Path, dim: int, mmap: bool = os.name == "posix") -> "VectorIndex":
        """Read a saved index. With ``mmap`` the cells of a compressed index stay in the file, mapped: opening a
        million photos' index takes milliseconds instead of reading 0.46 GB, and only the cells searched are
        read (the first change copies them into memory). Not on Windows, where a mapped file cannot be replaced
        by the next save."""
        try:
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP if mmap else 0)
        except RuntimeError as exc:
            raise IndexStateError(f"cannot read vector index {path}: {str(exc).splitlines()[0]}") from exc
        if index.d != dim or not (isinstance(index, faiss.IndexIDMap2) or _ivf_of(index) is not None):
            raise IndexStateError(f"vector index {path} does not match this model (dimension {index.d})")
        return cls(dim, index, mapped=mmap and _ivf_of(index) is not None)
