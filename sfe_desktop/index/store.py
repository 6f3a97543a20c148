"""Row-addressed feature files: Step-1 vectors (float32) and patch features (4-bit codes, or float16 in old indexes).

Row ``i`` of ``global.f32`` holds ``vector_dim`` floats and row ``i`` of ``patches.q4`` one fixed-size row of
:class:`~sfe_desktop.index.codec.PatchCodec` (``n_patches * dim`` features in about 0.28x the bytes of float16).
Indexes written before the codec hold ``patches.f16`` (``n_patches * dim`` halves a row) instead: they are read as
they are, and the next compaction (at the end of the next index run) rewrites them as ``patches.q4`` through the
same crash-safe steps as any compaction; a reset (re-encode) starts a ``patches.q4``.
Rows are written at the position the catalog hands out (``next_row``)
and only become visible when the catalog commits a row pointing at them, so a process killed between
the two leaves unreferenced bytes that the next run overwrites; the rows are flushed to disk (``fsync``) before
that commit, so a power loss cannot leave committed rows without their bytes. Reads are plain positioned reads
(no memory map: see :meth:`_RowFile.read_raw`).
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

from .codec import patch_codec

log = logging.getLogger(__name__)
PATCHES_FILE, LEGACY_PATCHES_FILE = "patches.q4", "patches.f16"


class RawRows:
    """The identity codec: rows of ``shape`` values of ``dtype`` stored as they are."""

    def __init__(self, dtype, shape: tuple[int, ...]):
        self.dtype, self.shape = np.dtype(dtype), tuple(shape)
        self.row_bytes = int(np.prod(shape)) * self.dtype.itemsize

    def encode(self, data: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(data, dtype=self.dtype).reshape(-1, *self.shape)

    def decode(self, rows: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(rows).view(self.dtype).reshape(-1, *self.shape)


class _RowFile:
    """One row file; ``codec`` turns arrays into fixed-size byte rows (``row_bytes``) and back."""

    def __init__(self, path: Path, codec):
        self.path = path
        self.codec = codec
        self.row_bytes = codec.row_bytes
        # what a row holds on disk: the values of a raw file, else row_bytes bytes (for plain reads of raw rows)
        self.dtype = getattr(codec, "dtype", np.dtype(np.uint8))
        self.shape = getattr(codec, "shape", (codec.row_bytes,))
        self._lock = threading.Lock()

    def rows(self) -> int:
        try:
            return os.path.getsize(self.path) // self.row_bytes
        except OSError:
            return 0

    def write(self, start: int, data: np.ndarray) -> None:
        data = self.codec.encode(data)
        mode = "r+b" if self.path.exists() else "w+b"
        with open(self.path, mode) as f:
            f.seek(start * self.row_bytes)
            f.write(data.tobytes())
            f.flush()
            os.fsync(f.fileno())  # on disk before the catalog commits rows pointing here (power loss)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows``, decoded; IndexError when the file holds fewer."""
        return self.codec.decode(self.read_raw(rows))

    def read_raw(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), row_bytes) uint8: the stored bytes of rows ``rows``; IndexError when the file holds fewer.
        Plain positioned reads, one per run of consecutive rows: through a memory map, every row read would also
        map the pages the kernel reads around it (up to megabytes a fault), gigabytes of resident memory after a
        few hundred searches of a million photos."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), self.row_bytes), dtype=np.uint8)
        if not rows.size:
            return out
        size = self.row_bytes
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        starts, ends = np.concatenate([[0], breaks]).tolist(), np.concatenate([breaks, [len(rows)]]).tolist()
        buf = memoryview(out).cast("B")
        with self._lock:  # truncate() and replace_with() wait for a read in progress
            need = int(rows.max()) + 1
            n = self.rows()
            if n < need or int(rows.min()) < 0:
                raise IndexError(f"{self.path.name} holds {n} rows, row {need - 1} requested")
            with open(self.path, "rb", buffering=0) as f:
                for a, b in zip(starts, ends):
                    f.seek(int(rows[a]) * size)
                    done, stop = a * size, b * size
                    while done < stop:
                        got = f.readinto(buf[done:stop])
                        if not got:
                            raise IndexError(f"{self.path.name} ended inside row {int(rows[a])} (changed while read)")
                        done += got
        return out

    def write_subset(self, rows: np.ndarray, target: Path, codec=None, chunk: int = 1024) -> None:
        """Write rows ``rows`` of this file, in that order, to ``target`` (flushed to disk): the stored bytes as
        they are, or re-encoded with ``codec`` when it is another one."""
        with open(target, "wb") as f:
            for i in range(0, len(rows), chunk):
                part = rows[i:i + chunk]
                f.write((codec.encode(self.read(part)) if codec is not None else self.read_raw(part)).tobytes())
            f.flush()
            os.fsync(f.fileno())

    def replace_with(self, source: Path) -> None:
        """Atomically make ``source`` this file's content (no reader sees a half-replaced file)."""
        with self._lock:
            os.replace(source, self.path)

    def truncate(self) -> None:
        with self._lock:
            if self.path.exists():
                os.truncate(self.path, 0)

    def remove(self) -> None:
        with self._lock:
            self.path.unlink(missing_ok=True)


class VectorStore:
    """Global vectors and patch features of every encoded image, addressed by row.

    Patches go to ``patches.q4`` (:func:`~sfe_desktop.index.codec.patch_codec`); an index written before the codec
    holds ``patches.f16`` and is read as it is (:attr:`legacy`) until the next compaction or reset rewrites it."""

    def __init__(self, directory: str | Path, dim: int, n_patches: int, vector_dim: int | None = None):
        """``dim``: width of a patch feature; ``vector_dim``: of a global vector (``dim`` when not given)."""
        directory = Path(directory)
        self.dim, self.n_patches = dim, n_patches
        self.vector_dim = vector_dim or dim
        self.globals = _RowFile(directory / "global.f32", RawRows(np.float32, (self.vector_dim,)))
        self.codec = patch_codec(n_patches, dim)
        self._f16 = _RowFile(directory / LEGACY_PATCHES_FILE, RawRows(np.float16, (n_patches, dim)))
        self._q4 = _RowFile(directory / PATCHES_FILE, self.codec) if self.codec is not None else self._f16

    @property
    def patches(self) -> _RowFile:
        """The patch file in use: ``patches.q4``, or ``patches.f16`` while an old index has no ``patches.q4``
        (looked up on every use: another process may have rewritten it)."""
        if self._q4 is not self._f16 and self._f16.path.exists() and not self._q4.path.exists():
            return self._f16
        return self._q4

    @property
    def legacy(self) -> bool:
        """True when the patches are float16 that the codec would store smaller (the next compaction rewrites them)."""
        return self.patches is not self._q4

    def write(self, start: int, global_: np.ndarray, patches: np.ndarray) -> None:
        self.patches.write(start, patches)
        self.globals.write(start, global_)

    def rows(self) -> int:
        """Rows present in both files (rows beyond the catalog's ``next_row`` are garbage)."""
        return min(self.globals.rows(), self.patches.rows())

    def read_globals(self, rows) -> np.ndarray:
        return self.globals.read(rows)

    def read_patches(self, rows) -> np.ndarray:
        """(len(rows), n_patches, dim) patch features: float32 decoded from 4-bit codes, float16 from an old index."""
        return self.patches.read(rows)

    def patch_row_bytes(self) -> int:
        """Bytes a photo's patches take in the file in use."""
        return self.patches.row_bytes

    def _files(self) -> tuple[_RowFile, ...]:
        return (self.globals, self._q4) if self._q4 is self._f16 else (self.globals, self._q4, self._f16)

    def nbytes(self) -> int:
        return sum(f.path.stat().st_size for f in self._files() if f.path.exists())

    def clear(self) -> None:
        """Drop every row; an old float16 patch file is removed (new rows go to ``patches.q4``)."""
        for f in self._files():
            f.truncate()
        if self._q4 is not self._f16:
            self._f16.remove()

    # -- compaction: keep only the rows still referenced ------------------------------------------------
    # 1. write_compacted(rows): copies of both files holding only ``rows`` (in that order), as *.compact
    #    (float16 patches of an old index are re-encoded into ``patches.q4.compact``: the migration);
    # 2. the caller renumbers its references in one transaction that also records "compaction pending";
    # 3. finish_compaction(): the copies replace the files (and ``patches.q4`` replaces ``patches.f16``). A crash
    #    before 2 leaves copies that discard_compaction() deletes on the next open; a crash after 2 is finished by
    #    finish_compaction().
    def _compact_path(self, f: _RowFile) -> Path:
        return f.path.with_name(f.path.name + ".compact")

    def write_compacted(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        self.globals.write_subset(rows, self._compact_path(self.globals))
        source = self.patches
        source.write_subset(rows, self._compact_path(self._q4), None if source is self._q4 else self.codec)

    def has_compaction_files(self) -> bool:
        return any(self._compact_path(f).exists() for f in self._files())

    def finish_compaction(self) -> None:
        for f in self._files():
            if self._compact_path(f).exists():
                f.replace_with(self._compact_path(f))
        if self._q4 is not self._f16 and self._q4.path.exists():
            self._f16.remove()  # migrated (or left beside patches.q4 by a crash during this step)

    def discard_compaction(self) -> None:
        for f in self._files():
            self._compact_path(f).unlink(missing_ok=True)
