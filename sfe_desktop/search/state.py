"""The one owner of a collection's index folder: catalog, vectors, row files, thumbnails, lock, recovery.

Where everything lives (``<index_dir>/``): ``catalog.sqlite`` (files, their vector row, user captions, meta),
``global.f32`` and ``patches.f16`` (row files, :class:`~sfe_desktop.index.VectorStore`), ``vectors.faiss``
(Step-1 vectors by file id), ``thumbs/``, ``index.lock``.

The rules, all enforced here (the indexer and the searcher only call these methods):

* **One writer per folder.** An index run holds :meth:`IndexState.writing`: an in-process lock and an OS lock on
  ``index.lock`` (:class:`~sfe_desktop.index.lock.FolderLock`), which the OS drops when its holder dies.
  Searches take no folder lock (SQLite WAL, the faiss file and compacted row files are replaced by rename).
* **Crash safety.** :meth:`IndexState.append` writes a batch's vectors to the row files at ``next_row`` first,
  then one SQLite transaction records the files that point at them and advances ``next_row``; a process killed
  in between leaves unreferenced bytes the next batch overwrites. The faiss file is written atomically at the end
  of a run; on open it is re-synchronised from the catalog (:meth:`IndexState.sync_vectors`).
* **Compaction** (:meth:`IndexState.compact`, at the end of a run) copies the rows still referenced, renumbers
  them in one transaction that also records "compaction pending", then replaces the files; opening finishes or
  discards a compaction a killed process left (only with the folder lock).
* **Threads.** The catalog serialises its connection; :attr:`IndexState.lock` guards the faiss index (added to,
  or swapped by a rebuild or reset), ``next_row`` and every step from faiss ids to catalog rows to stored vectors,
  so no search sees a half-renumbered or half-reset state; the row files lock their memmaps against truncation.
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..catalog import Catalog, FileRow
from ..catalog.db import OK
from ..errors import IndexStateError, SFEError
from ..index import ThumbnailCache, VectorIndex, VectorStore
from ..index.lock import FolderLock
from ..model.features import ImageFeatures
from ..settings import CATALOG_FILE

log = logging.getLogger(__name__)

FAISS_FILE = "vectors.faiss"
COMPACT_DEAD_FRACTION = 0.25  # compact the row files when this share of their rows is unused


@dataclass(frozen=True)
class IndexFormat:
    """What the stored vectors depend on: the checkpoint that encoded them and their sizes."""

    checkpoint_id: str
    dim: int
    grid: tuple[int, int]
    image_size: int

    @classmethod
    def of(cls, runtime) -> "IndexFormat":
        return cls(runtime.checkpoint_id, int(runtime.dim), (int(runtime.grid[0]), int(runtime.grid[1])),
                   int(runtime.image_size))

    @property
    def n_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def grid_text(self) -> str:
        return f"{self.grid[0]}x{self.grid[1]}"

    def meta(self) -> dict:
        return {"checkpoint_id": self.checkpoint_id, "dim": self.dim, "grid": self.grid_text,
                "image_size": self.image_size}


class IndexState:
    """The index folder of one photo folder (see the module docstring for its rules).

    Open with :meth:`open`. ``stale`` is a one-line reason when the stored vectors were made by another
    checkpoint or with other sizes (searches refuse, an index run must re-encode).
    """

    def __init__(self, photo_dir: Path, index_dir: Path, catalog: Catalog, fmt: IndexFormat):
        self.photo_dir = photo_dir
        self.photo_dir_b = os.fsencode(str(photo_dir))
        self.index_dir = index_dir
        self.catalog = catalog
        self.format = fmt
        self.thumbs = ThumbnailCache(index_dir / "thumbs")
        self.lock = threading.RLock()
        self._run_lock = threading.Lock()
        self._dirty = False
        self.caption_version = 0  # bumped whenever the user captions change
        self.stale: str | None = None
        meta = catalog.meta()
        built_with = meta.get("checkpoint_id")
        if built_with and built_with != fmt.checkpoint_id:
            self.stale = (f"the index in {index_dir} was built with checkpoint {built_with[:12]}, not "
                          f"{fmt.checkpoint_id[:12]}: re-index with reencode=True (sfe-desktop index --reencode)")
        elif built_with and (meta.get("dim") != str(fmt.dim) or meta.get("grid") != fmt.grid_text):
            self.stale = f"the index in {index_dir} has other feature sizes than this model: re-index with reencode=True"
        self._next_row = int(meta.get("next_row", 0))
        self.store = VectorStore(index_dir, fmt.dim, fmt.n_patches)
        self._recover_compaction(meta)
        self.vindex = VectorIndex(fmt.dim)
        if built_with and not self.stale:
            self._load_vectors()

    @classmethod
    def open(cls, photo_dir: Path, index_dir: Path, fmt: IndexFormat) -> "IndexState":
        """Open (creating when needed) ``index_dir``; the catalog is closed again if anything fails."""
        try:
            index_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise IndexStateError(f"cannot create the index folder {index_dir}: {exc.strerror or exc}") from exc
        catalog = Catalog.open(index_dir / CATALOG_FILE)
        try:
            return cls(photo_dir, index_dir, catalog, fmt)
        except BaseException:
            catalog.close()
            raise

    @property
    def next_row(self) -> int:
        """The first row of the row files that no catalog row points at (where the next batch goes)."""
        return self._next_row

    def check(self) -> None:
        """Raise :class:`IndexStateError` when the stored vectors do not match the model."""
        if self.stale:
            raise IndexStateError(self.stale)

    # -- writing ---------------------------------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the right to write (one index run per collection object and per folder across processes)."""
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
                yield
            finally:
                folder_lock.release()
        finally:
            self._run_lock.release()

    def begin_run(self, reencode: bool) -> None:
        """Refuse a stale index unless ``reencode``; start over when re-encoding or when nothing was indexed."""
        if self.stale and not reencode:
            raise IndexStateError(self.stale)
        if reencode or self.stale or not self.catalog.meta().get("checkpoint_id"):
            self.reset()

    def commit_files(self, upserts: list[FileRow], deletes) -> None:
        """Record files that need no encoding (unchanged, moved, copied, skipped) and drop deleted ones."""
        self.catalog.commit(upserts, deletes)

    def append(self, encoded: list[FileRow], features: ImageFeatures, others: list[FileRow] = (),
               deletes=()) -> None:
        """Store a batch: ``encoded[i]`` gets the vectors ``features[i]`` (at a new row), ``others`` (skipped
        files) are recorded, ``deletes`` (catalog ids) dropped, all in one transaction after the row files."""
        start = self._next_row
        if encoded:
            self.store.write(start, features.global_, features.patches)
        rows = [replace(r, vec_row=start + i) for i, r in enumerate(encoded)]
        ids = self.catalog.commit(rows + list(others), deletes, {"next_row": start + len(rows)})
        with self.lock:
            self._next_row = start + len(rows)
            if rows:
                self.vindex.add(np.asarray(ids[:len(rows)]), features.global_)
                self._dirty = True

    def finish_run(self) -> int:
        """Bring the faiss index in line with the catalog, save it, compact the row files; return the rows
        compaction dropped."""
        self.sync_vectors()
        self.save_vectors()
        return self.compact()

    def reset(self) -> None:
        """Drop every vector and start over with this format (re-encode)."""
        with self.lock:
            self.catalog.reset_vectors({**self.format.meta(), "next_row": 0})
            self.catalog.remove_captions("sidecar:")
            self.store.clear()  # the same object: its row-file locks keep truncation and reads apart
            self.vindex = VectorIndex(self.format.dim)
            self._next_row = 0
            self._dirty = True
            self.stale = None
            self.caption_version += 1

    # -- vectors ---------------------------------------------------------------------------------
    def _load_vectors(self) -> None:
        path = self.index_dir / FAISS_FILE
        if path.exists():
            try:
                self.vindex = VectorIndex.load(path, self.format.dim)
            except IndexStateError as exc:
                log.warning("%s; rebuilding it from the stored vectors", exc)
        self.sync_vectors()

    def sync_vectors(self) -> None:
        """Make the faiss index hold exactly the catalog's indexed files (after a crash or a run)."""
        live = self.catalog.live()
        ids = np.array([i for i, _ in live], dtype=np.int64)
        rows = np.array([r for _, r in live], dtype=np.int64)
        lost = rows >= min(self.store.rows(), self._next_row)
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
                self.vindex = VectorIndex.build(self.format.dim, ids, self.store.read_globals(rows))
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

    # -- compaction of the row files ---------------------------------------------------------------
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
        at least ``min_dead_fraction`` of the rows; return how many were dropped. Call inside :meth:`writing`."""
        live_rows = np.unique(np.array([r for _, r in self.catalog.live()], dtype=np.int64))
        dead = self._next_row - len(live_rows)
        if dead <= 0 or dead < min_dead_fraction * self._next_row:
            return 0
        self.store.write_compacted(live_rows)  # searches go on meanwhile: they read the old files
        mapping = {int(old): new for new, old in enumerate(live_rows)}
        with self.lock:  # searches map ids -> rows -> vectors under this lock: none sees a half-renumbered state
            self.catalog.renumber_rows(mapping, {"next_row": len(live_rows), "compacting": 1})
            self.store.finish_compaction()
            self.catalog.set_meta({"compacting": 0})
            self._next_row = len(live_rows)
        log.info("compacted the row files: %d unused rows dropped, %d kept", dead, len(live_rows))
        return dead

    # -- reading ---------------------------------------------------------------------------------
    def abs_path(self, rel: bytes) -> str:
        return os.fsdecode(os.path.join(self.photo_dir_b, rel))

    def row_of(self, path) -> FileRow | None:
        """Catalog row of ``path`` when it lies in the collection and is unchanged since indexing."""
        p = os.path.abspath(os.fspath(path))
        for base in {str(self.photo_dir), os.path.realpath(self.photo_dir)}:
            rel = os.path.relpath(p, base)
            if rel.startswith(os.pardir):
                continue
            row = self.catalog.by_path(os.fsencode(rel).replace(os.sep.encode(), b"/"))
            if row is not None and row.status == OK:
                try:
                    st = os.stat(p)
                except OSError:
                    return None
                if st.st_size == row.size and st.st_mtime_ns == row.mtime_ns:
                    return row
        return None

    def nearest(self, query: np.ndarray, k: int) -> list[tuple[FileRow, float]]:
        """Step-1 neighbours that are indexed in the catalog now, best first, ties by path."""
        with self.lock:  # faiss ids and catalog rows from the same state (no reset in between)
            scores, ids = self.vindex.search(query, k)
            rows = self.catalog.by_ids(ids[0].tolist())
        hits = [(rows[i], float(s)) for i, s in zip(ids[0].tolist(), scores[0].tolist()) if i in rows]
        return sorted(((r, s) for r, s in hits if r.status == OK), key=lambda h: (-h[1], h[0].path))

    def indexed(self) -> list[FileRow]:
        """The catalog rows of every indexed photo (what searches can return)."""
        return self.catalog.indexed()

    def features(self, rows: list[FileRow]) -> ImageFeatures:
        """Stored Step-1 vectors and patch features of indexed files."""
        vec = np.asarray([r.vec_row for r in rows], dtype=np.int64)
        with self.lock:  # not during a reset (re-encode), which empties the row files
            try:
                return ImageFeatures(self.store.read_globals(vec), self.store.read_patches(vec))
            except IndexError as exc:  # the rows were dropped by a reset after they were looked up
                raise SFEError("the index was reset while searching; search again") from exc

    def thumbnail(self, path: str) -> Path | None:
        """Cached thumbnail of an indexed photo (made from the photo when missing), or None."""
        row = self.row_of(path)
        return self.thumbs.get(row.hash, path) if row is not None and row.hash else None

    # -- user captions ---------------------------------------------------------------------------------
    def add_captions(self, texts: list[str], source: str) -> int:
        n = self.catalog.add_captions(texts, source)
        if n:
            with self.lock:
                self.caption_version += 1
        return n

    def captions(self) -> list[str]:
        return [t for t, _ in self.catalog.captions()]

    # -- the rest --------------------------------------------------------------------------------------
    def vector_count(self) -> tuple[int, str]:
        """How many vectors faiss holds, and its kind (flat or hnsw)."""
        with self.lock:
            return len(self.vindex), self.vindex.kind

    def index_bytes(self) -> int:
        return _dir_bytes(self.index_dir)

    def close(self) -> None:
        """Save the faiss index (unless stale) and close the catalog."""
        try:
            if not self.stale:
                self.save_vectors()
        finally:
            self.catalog.close()


def _dir_bytes(directory: Path) -> int:
    total = 0
    for base, _, files in os.walk(directory):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                pass
    return total
