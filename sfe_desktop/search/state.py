"""The one owner of a collection's index folder: catalog, vectors, row files, thumbnails, lock, recovery.

Where everything lives (``<index_dir>/``): ``catalog.sqlite`` (files, their vector row, user captions, meta),
``global.f32`` and ``patches.q4`` (row files, :class:`~sfe_desktop.index.VectorStore`; ``patches.f16`` in an index
written before the patch codec, rewritten by its next compaction), ``vectors.faiss``
(Step-1 vectors by file id: exact, or compressed above 100,000 photos), ``thumbs/``, ``index.lock``.

The rules, all enforced here (the indexer and the searcher only call these methods):

* **One writer per folder.** An index run holds :meth:`IndexState.writing`: an in-process lock and an OS lock on
  ``index.lock`` (:class:`~sfe_desktop.index.lock.FolderLock`), which the OS drops when its holder dies.
  Searches take no folder lock (SQLite WAL, the faiss file and compacted row files are replaced by rename).
* **Crash safety.** :meth:`IndexState.append` writes a batch's vectors to the row files at ``next_row`` first,
  then one SQLite transaction records the files that point at them and advances ``next_row``; a process killed
  in between leaves unreferenced bytes the next batch overwrites. The faiss file is written atomically at the end
  of a run; on open it is re-synchronised from the catalog (:meth:`IndexState.sync_vectors`) when a digest of the
  catalog's ids computed in SQLite says it is out of step.
* **Compaction** (:meth:`IndexState.compact`, at the end of a run) copies the rows still referenced, renumbers
  them in one transaction that also records "compaction pending", then replaces the files; opening finishes or
  discards a compaction a killed process left (only with the folder lock).
* **Readers never delete.** Opening reads ``next_row`` and the indexed rows in one transaction; rows whose
  vectors are missing are left out of the faiss index, and only an index run (the writer) forgets them so that it
  encodes them again.
* **Damage** is looked for on open (range checks; SQLite's ``quick_check`` too when the catalog is small) and at the
  start of every run (all checks). A damaged index folder is moved aside (``<name>.damaged-<time>``, under the
  folder lock), a new one is made, and indexing rebuilds it from the photos; :attr:`IndexState.recovered` says so.
* **Read-only.** An index folder this process cannot write is searched as it is (``catalog.sqlite`` opened
  read-only); an index run there is refused with a one-line reason.
* **Threads.** The catalog serialises its connection; :attr:`IndexState.lock` guards the faiss index (added to,
  or swapped by a rebuild or reset), ``next_row`` and every step from faiss ids to catalog rows to stored vectors,
  so no search sees a half-renumbered or half-reset state; the row files lock their memmaps against truncation.
"""
from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .. import settings
from ..catalog import Catalog, FileRow
from ..catalog.db import ID_HASH_MOD, OK, REENCODE_HINT, other_checkpoint
from ..errors import IndexDamagedError, IndexStateError, SFEError
from ..index import ThumbnailCache, VectorIndex, VectorStore
from ..index.vectors import kind_for as vectors_kind_for
from ..index.atomic import fsync_dir
from ..index.lock import FolderLock
from ..model.features import ImageFeatures, split_index_vectors
from ..settings import CATALOG_FILE

log = logging.getLogger(__name__)

FAISS_FILE = "vectors.faiss"
COMPACT_DEAD_FRACTION = 0.25  # compact the row files when this share of their rows is unused
FULL_CHECK_BYTES = 8 << 20    # on open, a catalog up to this size (about 25,000 photos) gets the full check too
_WRITE_HINTS = {errno.ENOENT: "was it deleted while in use?", errno.EFBIG: "the file-size limit (ulimit -f) was reached",
                errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
                errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied"}


@dataclass(frozen=True)
class IndexFormat:
    """What the stored vectors depend on: the checkpoint that encoded them and their sizes."""

    checkpoint_id: str
    dim: int                 # width of a patch feature
    grid: tuple[int, int]
    image_size: int
    vector_dim: int = 0      # width of an indexed vector (the Step-1 vector and the bridge vector beside it)

    def __post_init__(self) -> None:
        if not self.vector_dim:
            object.__setattr__(self, "vector_dim", self.dim)

    @classmethod
    def of(cls, runtime) -> "IndexFormat":
        return cls(runtime.checkpoint_id, int(runtime.dim), (int(runtime.grid[0]), int(runtime.grid[1])),
                   int(runtime.image_size), int(runtime.vector_dim))

    @property
    def n_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def grid_text(self) -> str:
        return f"{self.grid[0]}x{self.grid[1]}"

    def meta(self) -> dict:
        return {"checkpoint_id": self.checkpoint_id, "dim": self.dim, "grid": self.grid_text,
                "image_size": self.image_size, "vector_dim": self.vector_dim}


class IndexState:
    """The index folder of one photo folder (see the module docstring for its rules).

    Open with :meth:`open`. ``stale`` is a one-line reason when the stored vectors were made by another
    checkpoint or with other sizes (searches refuse, an index run must re-encode); ``recovered`` says what was done
    when the folder was found damaged; ``read_only``: the folder cannot be written (searches only).
    """

    def __init__(self, photo_dir: Path, index_dir: Path, catalog: Catalog, fmt: IndexFormat):
        self.photo_dir = photo_dir
        self.photo_dir_b = os.fsencode(str(photo_dir))
        self.index_dir = index_dir
        self.format = fmt
        self.thumbs = ThumbnailCache(index_dir / "thumbs")
        self.lock = threading.RLock()
        self._run_lock = threading.Lock()
        self._writer = False  # True while this object holds the folder lock for an index run
        self.caption_version = 0  # bumped whenever the user captions change
        self.recovered: str | None = None
        self._load(catalog)

    def _load(self, catalog: Catalog) -> None:
        """Take ``catalog`` and what goes with it (row files, faiss); IndexDamagedError when it holds impossible
        values."""
        self.catalog = catalog
        self.read_only = catalog.read_only
        self._catalog_id = _file_id(catalog.path)
        self._dirty = False
        try:
            size = os.path.getsize(catalog.path)
        except OSError:
            size = 0
        damage = catalog.check(full=size <= FULL_CHECK_BYTES)
        if damage:
            raise IndexDamagedError(f"the index in {self.index_dir} is damaged ({damage})")
        meta, digest = catalog.snapshot_digest()  # not every (id, row) pair: a second at a million photos
        fmt, index_dir = self.format, self.index_dir
        built_with = meta.get("checkpoint_id")
        self.stale = other_checkpoint(index_dir, built_with, fmt.checkpoint_id)
        if not self.stale and built_with and (meta.get("dim") != str(fmt.dim) or meta.get("grid") != fmt.grid_text
                                              or meta.get("vector_dim", meta.get("dim")) != str(fmt.vector_dim)):
            self.stale = f"the index in {index_dir} has other feature sizes than this model: {REENCODE_HINT}"
        self._next_row = int(meta.get("next_row", 0))
        self.store = VectorStore(index_dir, fmt.dim, fmt.n_patches, fmt.vector_dim)
        self.vindex = VectorIndex(fmt.vector_dim)
        if self._recover_compaction(meta):
            meta, digest = catalog.snapshot_digest()
            self._next_row = int(meta.get("next_row", 0))
        if built_with and not self.stale:
            self._load_vectors(digest)

    @classmethod
    def open(cls, photo_dir: Path, index_dir: Path, fmt: IndexFormat) -> "IndexState":
        """Open (creating when needed) ``index_dir``; the catalog is closed again if anything fails. A folder this
        process cannot write is opened read-only; a damaged one is moved aside and replaced by a new one."""
        read_only = index_dir.is_dir() and not settings.writable(index_dir)
        if not read_only:
            try:
                index_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise IndexStateError(f"cannot create the index folder {index_dir}: {exc.strerror or exc}") from exc
        try:
            return cls._open(photo_dir, index_dir, fmt, read_only)
        except IndexDamagedError as exc:
            if read_only:
                raise IndexDamagedError(f"{exc}; the folder is read-only, so it cannot be rebuilt there: index into "
                                        "another folder (--index-dir)") from exc
            damaged = _file_id(index_dir / CATALOG_FILE)
            aside = _move_aside(index_dir, str(exc), damaged)
            index_dir.mkdir(parents=True, exist_ok=True)
            state = cls._open(photo_dir, index_dir, fmt, False)
            state.recovered = _recovered(exc, aside)
            return state

    @classmethod
    def _open(cls, photo_dir: Path, index_dir: Path, fmt: IndexFormat, read_only: bool) -> "IndexState":
        catalog = Catalog.open(index_dir / CATALOG_FILE, read_only=read_only)
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
        """Hold the right to write (one index run per collection object and per folder across processes). An
        OSError from the index folder (deleted, full, file-size limit) leaves as one-line IndexStateError."""
        if self.read_only:
            raise IndexStateError(f"the index in {self.index_dir} is read-only (searches use it as it is): to update "
                                  "it, make the folder writable, or index into another folder (--index-dir)")
        if not self._run_lock.acquire(blocking=False):
            raise IndexStateError("an index run is already in progress for this collection")
        try:
            if not self._folder_unchanged():
                raise IndexStateError(f"the index folder {self.index_dir} was deleted or replaced while open; "
                                      "open the photo folder again")
            self._folder_lock = FolderLock(self.index_dir)
            try:
                locked = self._folder_lock.acquire()
            except OSError as exc:
                raise IndexStateError(f"cannot write to {self.index_dir} ({exc.strerror or exc})") from exc
            if not locked:
                raise IndexStateError(f"another process (pid {self._folder_lock.holder()}) is indexing into "
                                      f"{self.index_dir}; wait for it to finish")
            self._writer = True
            try:
                yield
            except OSError as exc:
                hint = _WRITE_HINTS.get(exc.errno)
                raise IndexStateError(f"cannot write to the index folder {self.index_dir} "
                                      f"({exc.strerror or exc}{': ' + hint if hint else ''})") from exc
            finally:
                self._writer = False
                self._folder_lock.release()
        finally:
            self._run_lock.release()

    def begin_run(self, reencode: bool) -> None:
        """Check the whole catalog (a damaged folder is moved aside and started afresh), forget files whose
        vectors are missing (so the run encodes them), refuse a stale index unless ``reencode``; start over when
        re-encoding or when nothing was indexed."""
        damage = self.catalog.check(full=True)
        if damage:
            self._replace_damaged(IndexDamagedError(f"the index in {self.index_dir} is damaged ({damage})"))
        if self.stale and not reencode:
            raise IndexStateError(self.stale)
        if reencode or self.stale or not self.catalog.meta().get("checkpoint_id"):
            self.reset()
        self.sync_vectors()

    def _replace_damaged(self, exc: IndexDamagedError) -> None:
        """Move the damaged folder aside and continue in a new one (inside :meth:`writing`: the lock moves too)."""
        with self.lock:
            self.catalog.close()
            self._folder_lock.release()
            aside = _move_aside(self.index_dir, str(exc), self._catalog_id)
            self.index_dir.mkdir(parents=True, exist_ok=True)
            self._folder_lock = FolderLock(self.index_dir)
            if not self._folder_lock.acquire():
                raise IndexStateError(f"another process (pid {self._folder_lock.holder()}) started indexing into "
                                      f"{self.index_dir}; wait for it to finish")
            self._load(Catalog.open(self.index_dir / CATALOG_FILE))
            self.recovered = _recovered(exc, aside)
            self.caption_version += 1

    def commit_files(self, upserts: list[FileRow], deletes, meta: dict | None = None,
                     captions_add: list[tuple[str, str]] = (), captions_remove=()) -> None:
        """Record files that need no encoding (unchanged, moved, copied, skipped), drop deleted ones and update
        the sidecar captions, in one transaction."""
        self.catalog.commit(upserts, deletes, meta, captions_add, captions_remove)
        if captions_add or captions_remove:
            with self.lock:
                self.caption_version += 1

    def append(self, encoded: list[FileRow], features: ImageFeatures, others: list[FileRow] = (),
               deletes=(), captions_add: list[tuple[str, str]] = ()) -> None:
        """Store a batch: ``encoded[i]`` gets the vectors ``features[i]`` (at a new row), ``others`` (skipped
        files) are recorded, ``deletes`` (catalog ids) dropped, ``captions_add`` ((text, source) pairs) added,
        all in one transaction after the row files are on disk."""
        start = self._next_row
        vectors = features.index_vectors() if encoded else None  # a batch of skipped files has no features
        if encoded:
            self.store.write(start, vectors, features.patches)
        rows = [replace(r, vec_row=start + i) for i, r in enumerate(encoded)]
        ids = self.catalog.commit(rows + list(others), deletes, {"next_row": start + len(rows)}, captions_add)
        with self.lock:
            self._next_row = start + len(rows)
            if captions_add:
                self.caption_version += 1
            if rows:
                self.vindex.add(np.asarray(ids[:len(rows)]), vectors)
                self._dirty = True
                if self.vindex.needs_rebuild():  # the collection outgrew the index kind: change it now, not at 1.8 GB
                    live = np.array(self.catalog.live(), dtype=np.int64).reshape(-1, 2)
                    self.vindex = self._build_index(live[:, 0], live[:, 1])

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
            self.vindex = VectorIndex(self.format.vector_dim)
            self._next_row = 0
            self._dirty = True
            self.stale = None
            self.caption_version += 1

    # -- vectors ---------------------------------------------------------------------------------
    def _load_vectors(self, digest: tuple[int, int, int, int]) -> None:
        """Read the saved faiss index; bring it in line with the catalog unless ``digest``
        (:meth:`Catalog.snapshot_digest`) shows it already is."""
        path = self.index_dir / FAISS_FILE
        if path.exists():
            try:
                self.vindex = VectorIndex.load(path, self.format.vector_dim)
            except IndexStateError as exc:
                log.warning("%s; rebuilding it from the stored vectors", exc)
        if not self._in_sync(digest):
            self.sync_vectors()

    def _in_sync(self, digest: tuple[int, int, int, int]) -> bool:
        """True when faiss holds exactly the catalog's indexed files (the same count, sum and sum of squares
        modulo a prime of their ids) and every one of their vector rows is stored."""
        count, id_sum, id_hash, top_row = digest
        if len(self.vindex) != count or top_row >= min(self.store.rows(), self._next_row):
            return False
        ids = self.vindex.ids()
        return int(ids.sum()) == id_sum and int(((ids % ID_HASH_MOD) ** 2 % ID_HASH_MOD).sum()) == id_hash

    def sync_vectors(self, live: list[tuple[int, int]] | None = None) -> None:
        """Make the faiss index hold exactly the catalog's indexed files (after a crash or a run). ``live``: the
        (file id, vector row) pairs read in one transaction with ``next_row`` (:meth:`Catalog.snapshot`)."""
        if live is None:
            meta, live = self.catalog.snapshot()
            next_row = int(meta.get("next_row", 0))
        else:
            next_row = self._next_row
        ids = np.array([i for i, _ in live], dtype=np.int64)
        rows = np.array([r for _, r in live], dtype=np.int64)
        lost = rows >= min(self.store.rows(), next_row)
        if lost.any():  # vectors missing on disk: left out of faiss; an index run forgets them to encode them again
            if self._writer:
                log.warning("%d indexed files have no stored vectors; they will be encoded again", int(lost.sum()))
                self.catalog.commit(delete=ids[lost].tolist())
            ids, rows = ids[~lost], rows[~lost]
        with self.lock:
            current = self.vindex.ids()
            extra = np.setdiff1d(current, ids, assume_unique=True)
            missing = np.isin(ids, current, invert=True)
            # a kind that no longer fits the size is rebuilt when the index changes anyway, or by an index run
            # (an HNSW index saved by an earlier version keeps working in a searcher meanwhile)
            rebuild = self.vindex.needs_rebuild(len(ids))
            if not extra.size and not missing.any() and not (rebuild and self._writer):
                return
            self._dirty = True
            if rebuild or (extra.size and not self.vindex.can_remove()):
                self.vindex = self._build_index(ids, rows)
                return
            self.vindex.remove(extra)
            if missing.any():
                self.vindex.add(ids[missing], self.store.read_globals(rows[missing]))

    def _build_index(self, ids: np.ndarray, rows: np.ndarray):
        """A new vector index of the kind that fits ``len(ids)``, read from the row files a chunk at a time."""
        kind = vectors_kind_for(len(ids))
        log.info("building the vector index (%s, %d vectors)", kind, len(ids))
        t = time.perf_counter()
        vindex = VectorIndex.build(self.format.vector_dim, ids, lambda pos: self.store.read_globals(rows[pos]), kind)
        log.info("vector index built in %.1f s", time.perf_counter() - t)
        return vindex

    def add_vectors(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with self.lock:
            self.vindex.add(ids, vectors)
            self._dirty = True

    def save_vectors(self) -> None:
        with self.lock:
            if self._dirty and not self.read_only:
                self.vindex.save(self.index_dir / FAISS_FILE)
                self._dirty = False

    # -- compaction of the row files ---------------------------------------------------------------
    def _recover_compaction(self, meta: dict) -> bool:
        """Finish or discard a compaction that a killed process left (only with the folder lock: a running
        index in another process owns its compaction). True when the catalog was changed."""
        pending = meta.get("compacting") == "1"
        if self.read_only or (not pending and not self.store.has_compaction_files()):
            return False  # the usual case: nothing to lock or touch
        lock = FolderLock(self.index_dir)
        try:
            if not lock.acquire():
                return False
        except OSError:  # a read-only index folder: leave it to a process that can write
            return False
        try:
            if self.catalog.meta().get("compacting") == "1":  # read again under the lock
                self.store.finish_compaction()
                self.catalog.set_meta({"compacting": 0})
                return True
            self.store.discard_compaction()
            return False
        finally:
            lock.release()

    def compact(self, min_dead_fraction: float = COMPACT_DEAD_FRACTION) -> int:
        """Drop vector rows no file refers to any more (changed and deleted photos leave them) when they are
        at least ``min_dead_fraction`` of the rows; return how many were dropped. Float16 patches of an index
        written before the patch codec are always rewritten as 4-bit codes here (the same crash-safe steps).
        Call inside :meth:`writing`."""
        live_rows = np.unique(np.array([r for _, r in self.catalog.live()], dtype=np.int64))
        dead = self._next_row - len(live_rows)
        migrate = self.store.legacy
        if not migrate and (dead <= 0 or dead < min_dead_fraction * self._next_row):
            return 0
        if migrate:
            log.info("rewriting the float16 patches of %d photos as 4-bit codes", len(live_rows))
        self.store.write_compacted(live_rows)  # searches go on meanwhile: they read the old files
        fsync_dir(self.index_dir)  # the copies exist on disk before the catalog says "compaction pending"
        mapping = {int(old): new for new, old in enumerate(live_rows)}
        with self.lock:  # searches map ids -> rows -> vectors under this lock: none sees a half-renumbered state
            self.catalog.renumber_rows(mapping, {"next_row": len(live_rows), "compacting": 1})
            self.store.finish_compaction()
            fsync_dir(self.index_dir)  # the renames are on disk before the flag is cleared
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
        """Step-1 neighbours that are indexed in the catalog now, best first, ties by path. An approximate index
        gives a shortlist whose scores are computed again exactly from the stored vectors, so scores are always
        the exact (fused) Step-1 scores."""
        with self.lock:  # faiss ids, catalog rows and stored vectors from the same state (no reset in between)
            scores, ids = self.vindex.search(query, self.vindex.shortlist(k))
            if not self.vindex.exact and ids.size:  # re-score the shortlist exactly, keep its best k
                rows = self.catalog.vec_rows(ids[0].tolist())
                ids = np.array([i for i in ids[0].tolist() if i in rows], dtype=np.int64)
                try:
                    vec = self.store.read_globals([rows[i] for i in ids.tolist()])
                except IndexError as exc:
                    raise SFEError("the index was changed while searching; search again") from exc
                scores = vec @ np.asarray(query, np.float32).reshape(-1)
                best = np.argsort(-scores, kind="stable")[:k + 10]  # a few spare for ties at the cut (by path)
                scores, ids = scores[best][None], ids[best][None]
            rows = self.catalog.by_ids(ids[0].tolist())
        hits = [(rows[i], float(s)) for i, s in zip(ids[0].tolist(), scores[0].tolist()) if i in rows]
        return sorted(((r, s) for r, s in hits if r.status == OK), key=lambda h: (-h[1], h[0].path))[:k]

    def sample_vectors(self, n: int, seed: int = 0) -> np.ndarray:
        """Stored index vectors of up to ``n`` indexed files drawn at random (all of them when fewer)."""
        rows = np.array([r for _, r in self.catalog.live()], dtype=np.int64)
        if len(rows) > n:
            rows = np.sort(np.random.default_rng(seed).choice(rows, n, replace=False))
        with self.lock:
            return self.store.read_globals(rows) if len(rows) else np.zeros((0, self.format.vector_dim), np.float32)

    def indexed(self) -> list[FileRow]:
        """The catalog rows of every indexed photo (what searches can return)."""
        return self.catalog.indexed()

    def features(self, rows: list[FileRow]) -> ImageFeatures:
        """Stored Step-1 vectors and patch features of indexed files."""
        vec = np.asarray([r.vec_row for r in rows], dtype=np.int64)
        with self.lock:  # not during a reset (re-encode), which empties the row files
            try:
                g, bridge, hub = split_index_vectors(self.store.read_globals(vec), self.format.dim)
                return ImageFeatures(g, self.store.read_patches(vec), bridge, hub=hub)
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
        """How many vectors faiss holds, and its kind (flat, ivf-sq8, or hnsw from an earlier version)."""
        with self.lock:
            return len(self.vindex), self.vindex.kind

    def index_bytes(self) -> int:
        return _dir_bytes(self.index_dir)

    def _folder_unchanged(self) -> bool:
        return _file_id(self.index_dir / CATALOG_FILE) == self._catalog_id

    def close(self) -> None:
        """Save the faiss index (unless stale, or the folder was deleted or replaced meanwhile: its vectors would
        be written into a new folder that no catalog describes) and close the catalog."""
        try:
            if not self.stale and not self.read_only and self._folder_unchanged():
                self.save_vectors()
        finally:
            self.catalog.close()


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _recovered(exc: IndexDamagedError, aside: Path | None) -> str:
    where = f"it was moved to {aside}" if aside else "another process had already replaced it"
    message = f"{exc}: {where}; indexing rebuilds it from the photos"
    log.warning("%s", message)
    return message


def _move_aside(index_dir: Path, why: str, damaged: tuple[int, int] | None) -> Path | None:
    """Rename the damaged ``index_dir`` to ``<name>.damaged-<time>`` under its folder lock; None when another
    process already replaced it (its catalog is no longer the damaged one)."""
    lock = FolderLock(index_dir)
    try:
        locked = lock.acquire()
    except OSError as exc:
        raise IndexDamagedError(f"{why}; it cannot be moved aside ({exc.strerror or exc})") from exc
    if not locked:
        raise IndexDamagedError(f"{why}; another process (pid {lock.holder()}) is using it: try again when it has "
                                "finished")
    try:
        if _file_id(index_dir / CATALOG_FILE) != damaged:
            return None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = index_dir.with_name(f"{index_dir.name}.damaged-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = index_dir.with_name(f"{index_dir.name}.damaged-{stamp}-{n}")
        try:
            os.rename(index_dir, aside)
        except OSError as exc:
            raise IndexDamagedError(f"{why}; it cannot be moved aside ({exc.strerror or exc})") from exc
        return aside
    finally:
        lock.release()


def _dir_bytes(directory: Path) -> int:
    total = 0
    for base, _, files in os.walk(directory):
        for name in files:
            try:
                total += os.lstat(os.path.join(base, name)).st_size
            except OSError:
                pass
    return total
