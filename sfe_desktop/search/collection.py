"""The :class:`Collection`: one photo folder, its index folder and the model that built it.

A small facade over three parts that each own one thing: :class:`~sfe_desktop.search.state.IndexState` (the
index folder and its rules), :class:`~sfe_desktop.search.indexer.Indexer` (one index run) and
:class:`~sfe_desktop.search.searcher.Searcher` (queries and explanations).
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from ..catalog import Catalog
from ..errors import IndexStateError, SFEError
from ..explanation import Comparison, Explanation
from ..index import ThumbnailCache, VectorStore
from ..model.runtime import SFERuntime
from ..settings import default_index_dir
from .captions import read_caption_file
from . import shards
from .indexer import Indexer
from .searcher import Searcher
from .state import COMPACT_DEAD_FRACTION, IndexFormat, IndexState
from .types import IndexProgress, IndexSummary, Result

log = logging.getLogger(__name__)


def _auto_batch_size(runtime: SFERuntime) -> int:
    # on the CPU, larger batches gain nothing and page-fault more activation memory (sfe_desktop.memory)
    return 64 if getattr(runtime.device, "type", "cpu") == "cuda" else 8


class Collection:
    """A photo folder indexed with one SFE checkpoint.

    Open with :meth:`open`; call :meth:`index` to (incrementally) index the folder, then the ``search_*``
    methods. Thread-safe: searches, explanations and thumbnails may run on other threads while an index run adds
    vectors (the locking rules live in :mod:`sfe_desktop.search.state`).

    Parameters
    ----------
    batch_size, workers
        Encoder batch size (default 8 on CPU, 64 on CUDA) and decoding threads (default: CPU count).
    """

    def __init__(self, state: IndexState, runtime: SFERuntime, batch_size: int | None = None,
                 workers: int | None = None):
        self.state = state
        self.runtime = runtime
        self.batch_size = batch_size or _auto_batch_size(runtime)
        self.workers = workers or max(2, os.cpu_count() or 2)
        self.searcher = Searcher(state, runtime)

    @classmethod
    def open(cls, photo_dir, runtime: SFERuntime, index_dir=None, *, batch_size: int | None = None,
             workers: int | None = None) -> "Collection":
        """Open (creating when needed) the index of ``photo_dir``; ``index_dir`` defaults to
        :func:`sfe_desktop.settings.default_index_dir`."""
        photo_dir = Path(os.path.abspath(os.path.expanduser(os.fspath(photo_dir))))
        if not photo_dir.is_dir():
            raise SFEError(f"{photo_dir} is not a folder")
        index_dir = Path(os.path.abspath(os.fspath(index_dir))) if index_dir else default_index_dir(photo_dir)
        col = cls(IndexState.open(photo_dir, index_dir, IndexFormat.of(runtime)), runtime, batch_size, workers)
        try:
            col._merge_shards()
        except BaseException:
            col.close()
            raise
        return col

    def _merge_shards(self) -> None:
        """Merge the shards a cluster run left in the index folder (its coordinator stopped before merging them);
        nothing when another process is indexing (its run merges them)."""
        root = self.index_dir / shards.SHARDS_DIR
        if self.read_only or self.stale or not shards.finished(root) or not self.catalog.meta().get("checkpoint_id"):
            return
        try:
            with self.state.writing():
                shards.merge_shards(self.state, root)
                self.state.sync_vectors()
                self.state.save_vectors()
        except IndexStateError as exc:
            log.info("shards left for the running index: %s", exc)

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what the state owns, read-only here ---------------------------------------------------------
    @property
    def photo_dir(self) -> Path:
        return self.state.photo_dir

    @property
    def index_dir(self) -> Path:
        return self.state.index_dir

    @property
    def catalog(self) -> Catalog:
        return self.state.catalog

    @property
    def store(self) -> VectorStore:
        return self.state.store

    @property
    def thumbs(self) -> ThumbnailCache:
        return self.state.thumbs

    @property
    def lock(self) -> threading.RLock:
        return self.state.lock

    @property
    def stale(self) -> str | None:
        return self.state.stale

    @property
    def next_row(self) -> int:
        return self.state.next_row

    @property
    def notice(self) -> str | None:
        """One line to show the user once: the index was found damaged, moved aside and is being rebuilt."""
        return self.state.recovered

    @property
    def read_only(self) -> bool:
        """The index folder cannot be written: searches use it as it is, :meth:`index` is refused."""
        return self.state.read_only

    @property
    def n_patches(self) -> int:
        return self.state.format.n_patches

    # -- indexing --------------------------------------------------------------------------------------
    def index(self, progress: Callable[[IndexProgress], None] | None = None, cancel: threading.Event | None = None,
              reencode: bool = False) -> IndexSummary:
        """Index new and changed files, drop deleted ones, reuse moved ones; see :class:`IndexSummary`.

        Raises :class:`IndexStateError` when the index was built by another checkpoint and
        ``reencode`` is false, or when another run is in progress.
        """
        with self.state.writing():
            return Indexer(self.state, self.runtime, self.batch_size, self.workers, progress, cancel).run(reencode)

    def index_on_cluster(self, cluster, model=None, **options):
        """Index on a Dask cluster (``"local:N"``, a scheduler address or a ``distributed.Client``): see
        :func:`sfe_desktop.search.cluster.index_on_cluster` for ``model`` and ``options``; returns (summary, what
        each shard's worker reported). Needs the ``cluster`` extra (SFEError in one line without it)."""
        from .cluster import index_on_cluster

        options.setdefault("batch_size", self.batch_size)
        return index_on_cluster(self.state, self.runtime, cluster, model, **options)

    def compact(self, min_dead_fraction: float = COMPACT_DEAD_FRACTION) -> int:
        """Drop unused vector rows (see :meth:`IndexState.compact`); ``index()`` does it at the end of a run."""
        with self.state.writing():
            return self.state.compact(min_dead_fraction)

    def sync_vectors(self) -> None:
        """Make the faiss index hold exactly the catalog's indexed files."""
        self.state.sync_vectors()

    def add_vectors(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.state.add_vectors(ids, vectors)

    def save_vectors(self) -> None:
        self.state.save_vectors()

    def reset(self) -> None:
        """Drop every vector and start over with this runtime (re-encode)."""
        self.state.reset()

    # -- searching -------------------------------------------------------------------------------------
    def search_text(self, query: str, top: int = 20, rerank_k: int | None = None) -> list[Result]:
        """Photos matching ``query``: the Step-1 top ``max(top, rerank_k)`` from faiss, the first ``rerank_k``
        re-ranked by Step 2 (hits beyond it follow with their Step-1 score). ``rerank_k`` defaults to the
        checkpoint's (:mod:`sfe_desktop.model.ranking`); 0 ranks by Step 1 alone."""
        return self.searcher.search_text(query, top, rerank_k)

    def search_image(self, photo, top: int = 20, rerank_k: int | None = None) -> list[Result]:
        """Captions (bundled corpus plus user captions) describing ``photo`` (a path or a PIL image), ranked as
        :meth:`search_text` ranks photos."""
        return self.searcher.search_image(photo, top, rerank_k)

    def similar(self, photo, top: int = 20) -> list[Result]:
        """Photos of the collection most similar to ``photo`` (inside the collection or not): Step 1 only."""
        return self.searcher.similar(photo, top)

    def library(self) -> list[Result]:
        """Every indexed photo as a :class:`Result` of direction ``library`` (no score), newest first by date
        taken (EXIF, else the file's time), then by name: what a photo browser shows before any search."""
        return self.searcher.library()

    def explain(self, result: Result) -> Explanation:
        """Why a text->image or image->text result matched, from the cached query features and the stored patch
        features (no new search)."""
        return self.searcher.explain(result)

    def compare(self, result: Result) -> Comparison:
        """Why a similar-photos result is similar to its query photo: the cosine of the model's photo vectors and
        the ImageNet classes both show."""
        return self.searcher.compare(result)

    # -- captions, thumbnails, info --------------------------------------------------------------------
    def prepare_captions(self, progress=None, cancel=None) -> int:
        """Compute (or read from the disk cache) what :meth:`search_image` ranks, so that the first photo ->
        caption search does not wait for it; returns how many captions there are. ``cancel`` (a
        ``threading.Event``) stops it (:class:`~sfe_desktop.errors.Cancelled`): a window closing does not wait."""
        return len(self.searcher.caption_bank(cancel)[0])

    def add_captions(self, path) -> int:
        """Add the sentences of a CSV or text file to the captions searched by :meth:`search_image`;
        returns how many were new."""
        return self.add_caption_texts(read_caption_file(path), f"file:{os.path.abspath(os.fspath(path))}")

    def add_caption_texts(self, texts: list[str], source: str) -> int:
        return self.state.add_captions(texts, source)

    def skipped(self) -> list[tuple[str, str]]:
        """(path relative to the photo folder, reason) of every file that could not be indexed."""
        return self.catalog.skipped()

    def thumbnail(self, photo) -> Path | None:
        """Cached thumbnail (JPEG) of a photo of the collection or of a :class:`Result`."""
        path = photo.path if isinstance(photo, Result) else os.fspath(photo)
        return self.state.thumbnail(path) if path else None

    def info(self) -> dict:
        counts = self.catalog.counts()
        vectors, kind = self.state.vector_count()
        return {
            "photo_dir": str(self.photo_dir), "index_dir": str(self.index_dir),
            "files": sum(counts.values()), "indexed": counts.get("ok", 0), "skipped": counts.get("skipped", 0),
            "vectors": vectors, "index_kind": kind,
            "user_captions": len(self.catalog.captions()),
            "checkpoint_id": self.catalog.meta().get("checkpoint_id"), "model": self.runtime.checkpoint_id,
            "device": str(self.runtime.device), "dim": self.runtime.dim, "grid": list(self.runtime.grid),
            "index_bytes": self.state.index_bytes(), "stale": self.stale, "read_only": self.read_only,
        }

    def close(self) -> None:
        self.state.close()
