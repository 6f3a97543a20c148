"""Recursive folder scan that never raises on odd file systems.

Paths are handled as bytes (``os.scandir`` on a bytes path) so that names which are not valid UTF-8
survive unchanged; callers turn them into ``str`` with :func:`os.fsdecode` (surrogateescape).
Broken symlinks, symlink loops and unreadable folders become :class:`ScanEntry` objects with an
``error`` instead of exceptions.
"""
from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..data.files import kind, open_regular
from ..data.images import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

HASH_CHUNK = 64 * 1024
_EXTS = {e.encode() for e in IMAGE_EXTENSIONS}


@dataclass(frozen=True)
class ScanEntry:
    """One file (or unreadable folder) found under the scan root.

    ``rel`` is the path relative to the root, as bytes with ``/`` separators.
    """

    rel: bytes
    size: int = 0
    mtime_ns: int = 0
    error: str | None = None
    ino: int = 0  # with size and mtime, what says the file at this path is the one indexed (a rename swaps it)


def read_reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.ENOENT:
        return "broken symlink"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    return f"cannot read ({exc.strerror or type(exc).__name__})"


def _is_image_name(name: bytes) -> bool:
    return os.path.splitext(name)[1].lower() in _EXTS


def scan(root: str | os.PathLike, skip: Iterable[str | os.PathLike] = (), hidden: bool = False) -> Iterator[ScanEntry]:
    """Yield every file under ``root`` whose extension is an image extension.

    Directory symlinks are followed once (loops are detected by device and inode); folders in
    ``skip`` (e.g. the index folder) and, unless ``hidden``, names starting with ``.`` are not entered.
    """
    root_b = os.fsencode(os.path.abspath(root))
    skip_ids: set[tuple[int, int]] = set()
    for s in skip:
        try:
            st = os.stat(s)
            skip_ids.add((st.st_dev, st.st_ino))
        except OSError:
            pass
    try:
        st = os.stat(root_b)
    except OSError as exc:
        yield ScanEntry(b".", error=read_reason(exc))
        return
    seen = {(st.st_dev, st.st_ino)}
    stack: list[bytes] = [b""]
    while stack:
        rel_dir = stack.pop()
        abs_dir = os.path.join(root_b, rel_dir) if rel_dir else root_b
        try:
            with os.scandir(abs_dir) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            log.info("cannot list %r: %s", abs_dir, exc)
            yield ScanEntry(rel_dir or b".", error=f"folder: {read_reason(exc)}")
            continue
        subdirs = []
        for entry in entries:
            name = entry.name
            if not hidden and name.startswith(b"."):
                continue
            rel = rel_dir + b"/" + name if rel_dir else name
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
            except OSError as exc:
                is_dir = False
                if _is_image_name(name):
                    yield ScanEntry(rel, error=read_reason(exc))
                    continue
            if is_dir:
                try:
                    st = entry.stat(follow_symlinks=True)
                except OSError as exc:
                    yield ScanEntry(rel, error=f"folder: {read_reason(exc)}")
                    continue
                key = (st.st_dev, st.st_ino)
                if key in skip_ids:
                    continue
                if key in seen:
                    if entry.is_symlink():
                        log.debug("skipping symlink loop %r", rel)
                    continue
                seen.add(key)
                subdirs.append(rel)
                continue
            if not _is_image_name(name):
                continue
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                yield ScanEntry(rel, error=read_reason(exc))
                continue
            if not stat.S_ISREG(st.st_mode):  # a FIFO would block a read, a device never end
                yield ScanEntry(rel, error=f"{kind(st.st_mode)}, not a photo")
                continue
            yield ScanEntry(rel, st.st_size, st.st_mtime_ns, ino=st.st_ino)
        stack.extend(reversed(subdirs))


def content_hash(path: str | bytes | os.PathLike, size: int | None = None) -> str:
    """Cheap content hash: sha1 of the size and the first and last 64 KiB of a regular file (raises OSError,
    also for a FIFO or device: :func:`~sfe_desktop.data.files.open_regular`)."""
    with open_regular(path) as f:
        if size is None:
            size = os.fstat(f.fileno()).st_size
        h = hashlib.sha1(str(size).encode())
        h.update(f.read(HASH_CHUNK))
        if size > 2 * HASH_CHUNK:
            f.seek(-HASH_CHUNK, os.SEEK_END)
        h.update(f.read(HASH_CHUNK))
    return h.hexdigest()
