"""An exclusive lock on an index folder that holds across processes: one index run at a time.

Searches need no lock (SQLite WAL, atomic faiss writes); two processes *writing* vectors at the same rows would
corrupt the row files, so :meth:`Collection.index` takes this lock. It is an advisory OS lock on
``index.lock`` (``flock`` on POSIX, ``msvcrt.locking`` on Windows), so the OS drops it when the holder dies:
a killed run never leaves the folder locked.
"""
from __future__ import annotations

import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None
    import msvcrt

LOCK_FILE = "index.lock"


class FolderLock:
    """Non-blocking exclusive lock on ``directory/index.lock``; the file records the holder's pid."""

    def __init__(self, directory: str | Path):
        self.path = Path(directory) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; False (and nothing held) when another process or handle holds it."""
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:  # pragma: no cover - Windows
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def holder(self) -> str:
        """The pid written by the current holder, or '?'."""
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            else:  # pragma: no cover - Windows
                os.lseek(fd, 0, os.SEEK_SET)
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        finally:
            os.close(fd)
