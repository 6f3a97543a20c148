"""Write a file so that readers see either the old or the new content, never a half-written one."""
from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path


def _create_temp(directory: Path, name: str, mode: int) -> str:
    """A new empty file in ``directory`` created with ``mode`` less the process's umask, as ``open()`` would create
    the file itself (``tempfile.mkstemp`` always makes 0600)."""
    for _ in range(100):
        tmp = str(directory / f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory}")


def fsync_dir(directory: str | Path) -> None:
    """Make the names created in or removed from ``directory`` durable (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[str], None], fsync: bool = True, make_parents: bool = True,
                 mode: int = 0o666) -> None:
    """Call ``write(tmp_name)`` on a temporary file next to ``path``, then rename it over ``path``.

    ``mode``: permissions of the new file less the umask; the default 0o666 gives the permissions any new file of
    the user gets (exports and index files alike), 0o600 keeps a file private. ``make_parents=False``: a missing
    folder is an error (FileNotFoundError), as for any file the user names."""
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise FileNotFoundError(2, "the folder does not exist", str(path.parent))
    tmp = _create_temp(path.parent, path.name, mode)
    try:
        write(tmp)
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
