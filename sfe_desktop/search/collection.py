"""The :class:`Collection`: one photo folder, its index folder and the model that built it."""
from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..catalog import Catalog
from ..settings import default_index_dir
from ..index.lock import FolderLock
from ..errors import IndexStateError, SFEError
from ..index import ThumbnailCache, VectorIndex, VectorStore
from .captions import read_caption_file
from .indexer import Indexer
from .retrieval import Retrieval
from .types import IndexSummary

log = logging.getLogger(__name__)

FAISS_FILE = "vectors.faiss"
COMPACT_DEAD_FRACTION = 0.25  # compact the row files when this share of their rows is unused
CATALOG_FILE = "catalog.sqlite"


def _auto_batch_size(runtime) -> int:
    # on the CPU, larger batches gain nothing and page-fault more activation memory (sfe_desktop.memory)
    return 64 if getattr(runtime.device, "type", "cpu") == "cuda" else 8


def _dir_bytes(directory: Path) -> int:
    total = 0
    for base, _, files in os.walk(directory):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                pass
    return total


class Collection(Retrieval):
    """A photo folder indexed with one SFE checkpoint.

    Open with :meth:`open`; call :meth:`index` to (incrementally) index the folder, then the
    ``search_*`` methods. Thread-safe: searches, explanations and thumbnails may run on other threads
    while an index run adds vectors. The catalog serialises its one SQLite connection with its own lock;
    :attr:`lock` guards the faiss index (added to, or swapped by a rebuild/reset), the query caches and the
    step from faiss ids to catalog rows to stored vectors; the row files lock their memmaps against truncation.

    Parameters
    ----------
    batch_size, workers
        Encoder batch size (default 8 on CPU, 64 on CUDA) and decoding threads (default: CPU count).
    """

    def __init__(self, photo_dir: Path, runtime, index_dir: Path, catalog: Catalog,
                 batch_size: int | None = None, workers: int | None = None):
        self.photo_dir = photo_dir
        self.photo_dir_b = os.fsencode(str(photo_dir))
        self.runtime = runtime
        self.index_dir = index_dir
        self.catalog = catalog
        self.batch_size = batch_size or _auto_batch_size(runtime)
        self.workers = workers or max(2, os.cpu_count() or 2)
        self.thumbs = ThumbnailCache(index_dir / "thumbs")
        self.lock = threading.RLock()
        self._run_lock = threading.Lock()
        self._cache: OrderedDict = OrderedDict()
        self._captions_cache = None
        self._dirty = False
        self.stale: str | None = None
        meta = catalog.meta()
        built_with = meta.get("checkpoint_id")
        if built_with and built_with != runtime.checkpoint_id:
            self.stale = (f"the index in {index_dir} was built with checkpoint {built_with[:12]}, not "
                          f"{runtime.checkpoint_id[:12]}: re-index with reencode=True (sfe-desktop index --reencode)")
        elif built_with and (meta.get("dim") != str(runtime.dim) or meta.get("grid") != self._grid_text()):
            self.stale = f"the index in {index_dir} has other feature sizes than this model: re-index with reencode=True"
        self.next_row = int(meta.get("next_row", 0))
        self.store = VectorStore(index_dir, runtime.dim, self.n_patches)
        self._recover_compaction(meta)
        self.vindex = VectorIndex(runtime.dim)
        if built_with and not self.stale:
            self._load_vectors()

    @property
    def n_patches(self) -> int:
        return int(self.runtime.grid[0]) * int(self.runtime.grid[1])

    def _grid_text(self) -> str:
        return f"{self.runtime.grid[0]}x{self.runtime.grid[1]}"

    @classmethod
    def open(cls, photo_dir, runtime, index_dir=None, *, batch_size: int | None = None,
             workers: int | None = None) -> "Collection":
        """Open (creating when needed) the index of ``photo_dir``; ``index_dir`` defaults to
        :func:`sfe_desktop.settings.default_index_dir`."""
        photo_dir = Path(os.path.abspath(os.path.expanduser(os.fspath(photo_dir))))
        if not photo_dir.is_dir():
            raise SFEError(f"{photo_dir} is not a folder")
        index_dir = Path(os.path.abspath(os.fspath(index_dir))) if index_dir else default_index_dir(photo_dir)
        try:
            index_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IndexStateError(f"cannot create the index folder {index_dir}: {exc.strerror or exc}") from exc
        catalog = Catalog.open(index_dir / CATALOG_FILE)
        try:
            return cls(photo_dir, runtime, index_dir, catalog, batch_size, workers)
        except BaseException:
            catalog.close()
            raise

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- compaction of the row files ------------------------------------------------------------
    def _recover_compaction(self, meta: dict) -> None:
        """Finish or discard a compaction that a killed process left (only with the folder lock: a running
        index in another process owns its compaction)."""
        pending = meta.get("compacting") == "1"
        if not pending and not self.store.has_compaction_files():
            return  # the usual case: nothing to lock or touch
        lock = FolderLock(self.index_dir)
        try:
            if not lock.acquire():
                return
        except OSError:  # a read-only index folder: leave it to a process that can write
            return
        try:
            if pending:
                self.store.finish_compaction()
                self.catalog.set_meta({"compacting": 0})
            else:
                self.store.discard_compaction()
        finally:
            lock.release()

    def compact(self, min_dead_fraction: float = COMPACT_DEAD_FRACTION) -> int:
        """Drop vector rows no file refers to any more (changed and deleted photos leave them) when they are
        at least ``min_dead_fraction`` of the rows; return how many were dropped. Call with the index run's
        locks held (``index()`` does at the end of a run)."""
        live_rows = np.unique(np.array([r for _, r in self.catalog.live()], dtype=np.int64))
        dead = self.next_row - len(live_rows)
        if dead <= 0 or dead < min_dead_fraction * self.next_row:
            return 0
        self.store.write_compacted(live_rows)  # searches go on meanwhile: they read the old files
        mapping = {int(old): new for new, old in enumerate(live_rows)}
        with self.lock:  # searches map ids -> rows -> vectors under this lock: none sees a half-renumbered state
            self.catalog.renumber_rows(mapping, {"next_row": len(live_rows), "compacting": 1})
            self.store.finish_compaction()
            self.catalog.set_meta({"compacting": 0})
            self.next_row = len(live_rows)
            self._cache.clear()
        log.info("compacted the row files: %d unused rows dropped, %d kept", dead, len(live_rows))
        return dead

    # -- vectors ---------------------------------------------------------------------------------
    def _load_vectors(self) -> None:
        path = self.index_dir / FAISS_FILE
        if path.exists():
            try:
                self.vindex = VectorIndex.load(path, self.runtime.dim)
            except IndexStateError as exc:
                log.warning("%s; rebuilding it from the stored vectors", exc)
        self.sync_vectors()

    def sync_vectors(self) -> None:
        """Make the faiss index hold exactly the catalog's indexed files (after a crash or a run)."""
        live = self.catalog.live()
        ids = np.array([i for i, _ in live], dtype=np.int64)
        rows = np.array([r for _, r in live], dtype=np.int64)
        lost = rows >= min(self.store.rows(), self.next_row)
        if lost.any():  # vectors missing on disk: forget those files so the next run re-encodes them
            log.warning("%d indexed files have no stored vectors; they will be re-encoded", int(lost.sum()))
            self.catalog.commit(delete=ids[lost].tolist())
            ids, rows = ids[~lost], rows[~lost]
        with self.lock:
            current = self.vindex.ids()
            extra = np.setdiff1d(current, ids, assume_unique=True)
            missing = np.isin(ids, current, invert=True)
            if not extra.size and not missing.any():
                return
            self._dirty = True
            if (extra.size and not self.vindex.can_remove()) or (len(ids) > 100_000) != self.vindex.is_hnsw:
                log.info("rebuilding the vector index (%d vectors)", len(ids))
                self.vindex = VectorIndex.build(self.runtime.dim, ids, self.store.read_globals(rows))
                return
            self.vindex.remove(extra)
            if missing.any():
                self.vindex.add(ids[missing], self.store.read_globals(rows[missing]))

    def add_vectors(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with self.lock:
            self.vindex.add(ids, vectors)
            self._dirty = True

    def save_vectors(self) -> None:
        with self.lock:
            if self._dirty:
                self.vindex.save(self.index_dir / FAISS_FILE)
                self._dirty = False

    def reset(self) -> None:
        """Drop every vector and start over with this runtime (re-encode)."""
        with self.lock:
            self.catalog.reset_vectors({"checkpoint_id": self.runtime.checkpoint_id, "dim": self.runtime.dim,
                                        "grid": self._grid_text(), "image_size": self.runtime.image_size,
                                        "next_row": 0})
            self.catalog.remove_captions("sidecar:")
            self.store.clear()  # the same object: its row-file locks keep truncation and reads apart
            self.vindex = VectorIndex(self.runtime.dim)
            self.next_row = 0
            self._dirty = True
            self.stale = None
            self._cache.clear()
            self._captions_cache = None

    # -- public API ------------------------------------------------------------------------------
    def index(self, progress=None, cancel: threading.Event | None = None, reencode: bool = False) -> IndexSummary:
        """Index new and changed files, drop deleted ones, reuse moved ones; see :class:`IndexSummary`.

        Raises :class:`IndexStateError` when the index was built by another checkpoint and
        ``reencode`` is false, or when another run is in progress.
        """
        if not self._run_lock.acquire(blocking=False):
            raise IndexStateError("an index run is already in progress for this collection")
        try:
            folder_lock = FolderLock(self.index_dir)
            try:
                locked = folder_lock.acquire()
            except OSError as exc:
                raise IndexStateError(f"cannot write to {self.index_dir} ({exc.strerror or exc})") from exc
            if not locked:
                raise IndexStateError(f"another process (pid {folder_lock.holder()}) is indexing into "
                                      f"{self.index_dir}; wait for it to finish")
            try:
                return Indexer(self, progress, cancel).run(reencode)
            finally:
                folder_lock.release()
        finally:
            self._run_lock.release()

    def add_captions(self, path) -> int:
        """Add the sentences of a CSV or text file to the captions searched by :meth:`search_image`;
        returns how many were new."""
        return self.add_caption_texts(read_caption_file(path), f"file:{os.path.abspath(os.fspath(path))}")

    def add_caption_texts(self, texts: list[str], source: str) -> int:
        n = self.catalog.add_captions(texts, source)
        if n:
            with self.lock:
                self._captions_cache = None
        return n

    def skipped(self) -> list[tuple[str, str]]:
        """(path relative to the photo folder, reason) of every file that could not be indexed."""
        return self.catalog.skipped()

    def thumbnail(self, photo) -> Path | None:
        """Cached thumbnail (JPEG) of a photo of the collection or of a :class:`Result`."""
        path = photo.path if hasattr(photo, "path") else os.fspath(photo)
        row = self._row_of(path) if path else None
        return self.thumbs.get(row.hash, path) if row is not None and row.hash else None

    def info(self) -> dict:
        counts = self.catalog.counts()
        meta = self.catalog.meta()
        with self.lock:
            vectors, kind = len(self.vindex), self.vindex.kind
        return {
            "photo_dir": str(self.photo_dir), "index_dir": str(self.index_dir),
            "files": sum(counts.values()), "indexed": counts.get("ok", 0), "skipped": counts.get("skipped", 0),
            "vectors": vectors, "index_kind": kind,
            "user_captions": len(self.catalog.captions()),
            "checkpoint_id": meta.get("checkpoint_id"), "model": self.runtime.checkpoint_id,
            "device": str(self.runtime.device), "dim": self.runtime.dim, "grid": list(self.runtime.grid),
            "index_bytes": _dir_bytes(self.index_dir), "stale": self.stale,
        }

    def close(self) -> None:
        try:
            if not self.stale:
                self.save_vectors()
        finally:
            self.catalog.close()
