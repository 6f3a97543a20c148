"""Write a file so that readers see either the old or the new content, never a half-written one."""
from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path


def _temp_file(path: Path, mode: int | None) -> str:
    """A new empty file next to ``path``: private (0600, as ``mkstemp`` makes it), or created with ``mode`` less
    the process's umask, as ``open()`` would create ``path`` itself."""
    if mode is None:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        return tmp
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary name next to {path}")


def atomic_write(path: str | Path, write: Callable[[str], None], fsync: bool = True, mode: int | None = None) -> None:
    """Call ``write(tmp_name)`` on a temporary file next to ``path``, then rename it over ``path``.

    ``mode``: permissions of the new file, less the umask (a file the user shares, such as an export: 0o666);
    None keeps it private to the user (0600), as index files are."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_file(path, mode)
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
