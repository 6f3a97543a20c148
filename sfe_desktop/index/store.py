"""Row-addressed feature files: Step-1 vectors (float32) and patch features (float16).

Row ``i`` of ``global.f32`` holds ``dim`` floats and row ``i`` of ``patches.f16`` holds
``n_patches * dim`` halves. Rows are written at the position the catalog hands out (``next_row``)
and only become visible when the catalog commits a row pointing at them, so a process killed between
the two leaves unreferenced bytes that the next run overwrites; the rows are flushed to disk (``fsync``) before
that commit, so a power loss cannot leave committed rows without their bytes. Reads go through ``np.memmap``.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class _RowFile:
    def __init__(self, path: Path, dtype, shape: tuple[int, ...]):
        self.path = path
        self.dtype = np.dtype(dtype)
        self.shape = shape
        self.row_bytes = int(np.prod(shape)) * self.dtype.itemsize
        self._map: np.memmap | None = None
        self._inode: int | None = None
        self._lock = threading.Lock()

    def rows(self) -> int:
        try:
            return os.path.getsize(self.path) // self.row_bytes
        except OSError:
            return 0

    def write(self, start: int, data: np.ndarray) -> None:
        data = np.ascontiguousarray(data, dtype=self.dtype).reshape(-1, *self.shape)
        mode = "r+b" if self.path.exists() else "w+b"
        with open(self.path, mode) as f:
            f.seek(start * self.row_bytes)
            f.write(data.tobytes())
            f.flush()
            os.fsync(f.fileno())  # on disk before the catalog commits rows pointing here (power loss)

    def read(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        with self._lock:
            need = int(rows.max()) + 1 if rows.size else 0
            try:
                inode = os.stat(self.path).st_ino  # another process may have compacted (replaced) the file
            except OSError:
                inode = None
            if self._map is None or self._map.shape[0] < need or inode != self._inode:
                n = self.rows()
                if n < need:
                    raise IndexError(f"{self.path.name} holds {n} rows, row {need - 1} requested")
                self._map = np.memmap(self.path, dtype=self.dtype, mode="r", shape=(n, *self.shape))
                self._inode = inode
            # copy while holding the lock: truncate() must never shrink the file under a read (SIGBUS)
            return np.array(self._map[rows])

    def write_subset(self, rows: np.ndarray, target: Path, chunk: int = 1024) -> None:
        """Write rows ``rows`` of this file, in that order, to ``target`` (flushed to disk)."""
        with open(target, "wb") as f:
            for i in range(0, len(rows), chunk):
                f.write(self.read(rows[i:i + chunk]).tobytes())
            f.flush()
            os.fsync(f.fileno())

    def replace_with(self, source: Path) -> None:
        """Atomically make ``source`` this file's content (no reader sees a half-replaced file)."""
        with self._lock:
            self._map = None
            os.replace(source, self.path)

    def truncate(self) -> None:
        with self._lock:
            self._map = None
            if self.path.exists():
                os.truncate(self.path, 0)


class VectorStore:
    """Global vectors and patch features of every encoded image, addressed by row."""

    def __init__(self, directory: str | Path, dim: int, n_patches: int, vector_dim: int | None = None):
        """``dim``: width of a patch feature; ``vector_dim``: of a global vector (``dim`` when not given)."""
        directory = Path(directory)
        self.dim, self.n_patches = dim, n_patches
        self.vector_dim = vector_dim or dim
        self.globals = _RowFile(directory / "global.f32", np.float32, (self.vector_dim,))
        self.patches = _RowFile(directory / "patches.f16", np.float16, (n_patches, dim))

    def write(self, start: int, global_: np.ndarray, patches: np.ndarray) -> None:
        self.patches.write(start, patches)
        self.globals.write(start, global_)

    def rows(self) -> int:
        """Rows present in both files (rows beyond the catalog's ``next_row`` are garbage)."""
        return min(self.globals.rows(), self.patches.rows())

    def read_globals(self, rows) -> np.ndarray:
        return self.globals.read(rows)

    def read_patches(self, rows) -> np.ndarray:
        return self.patches.read(rows)

    def nbytes(self) -> int:
        return sum(f.path.stat().st_size for f in (self.globals, self.patches) if f.path.exists())

    def clear(self) -> None:
        self.globals.truncate()
        self.patches.truncate()

    # -- compaction: keep only the rows still referenced ------------------------------------------------
    # 1. write_compacted(rows): copies of both files holding only ``rows`` (in that order), as *.compact;
    # 2. the caller renumbers its references in one transaction that also records "compaction pending";
    # 3. finish_compaction(): the copies replace the files. A crash before 2 leaves copies that
    #    discard_compaction() deletes on the next open; a crash after 2 is finished by finish_compaction().
    def _compact_path(self, f: _RowFile) -> Path:
        return f.path.with_name(f.path.name + ".compact")

    def write_compacted(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        for f in (self.globals, self.patches):
            f.write_subset(rows, self._compact_path(f))

    def has_compaction_files(self) -> bool:
        return any(self._compact_path(f).exists() for f in (self.globals, self.patches))

    def finish_compaction(self) -> None:
        for f in (self.globals, self.patches):
            if self._compact_path(f).exists():
                f.replace_with(self._compact_path(f))

    def discard_compaction(self) -> None:
        for f in (self.globals, self.patches):
            self._compact_path(f).unlink(missing_ok=True)
