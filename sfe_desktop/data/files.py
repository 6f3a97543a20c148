"""Reading files the user names or drops into a folder: only regular files are opened, and never more than a
stated number of bytes is read from one.

A FIFO blocks ``open()`` until someone writes to it, a character device such as ``/dev/zero`` never ends, and
opening some devices has side effects. So :func:`open_regular` looks first (``stat``, which follows a symlink to
what it names) and opens only a regular file, non-blocking, then checks again on the open descriptor (the name
may have been replaced in between). Refusals are :class:`NotRegularFileError` (an :class:`OSError`) and
:class:`FileTooLargeError`, whose ``strerror`` is a short reason ("a FIFO (named pipe), not a regular file").
"""
from __future__ import annotations

import codecs
import errno
import os
import re
import stat
from typing import BinaryIO

KB, MB, GB = 1 << 10, 1 << 20, 1 << 30


class NotRegularFileError(OSError):
    """The path names a folder, FIFO, device or socket where a regular file was expected."""


class FileTooLargeError(OSError):
    """A file is larger than the limit for what it should hold."""


def kind(mode: int) -> str:
    """What a ``st_mode`` describes, as words ("a FIFO (named pipe)", "a character device", ...)."""
    for test, name in ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _refuse(path, mode: int) -> NotRegularFileError:
    code = errno.EISDIR if stat.S_ISDIR(mode) else errno.EINVAL
    return NotRegularFileError(code, f"{kind(mode)}, not a regular file", os.fsdecode(path))


def size_text(n: int) -> str:
    for unit, scale in (("GB", GB), ("MB", MB), ("KB", KB)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}".replace(".0 ", " ")
    return f"{n} bytes"


def regular_stat(path) -> os.stat_result:
    """``os.stat(path)`` of a regular file; :class:`NotRegularFileError` for anything else (OSError when absent)."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, st.st_mode)
    return st


def open_regular(path, limit: int | None = None) -> BinaryIO:
    """Open a regular file for binary reading without ever blocking on a FIFO or opening a device.

    ``limit``: refuse (:class:`FileTooLargeError`) a file larger than this many bytes.
    """
    regular_stat(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced between the two looks
            raise _refuse(path, st.st_mode)
        if limit is not None and st.st_size > limit:
            raise FileTooLargeError(errno.EFBIG, f"too large ({size_text(st.st_size)}; the limit is "
                                                 f"{size_text(limit)})", os.fsdecode(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path, limit: int) -> bytes:
    """The whole content of a regular file of at most ``limit`` bytes (also when it grows while read)."""
    with open_regular(path, limit) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FileTooLargeError(errno.EFBIG, f"too large (over {size_text(limit)})", os.fsdecode(path))
    return data


def read_head(path, limit: int) -> bytes:
    """At most the first ``limit`` bytes of a regular file of any size."""
    with open_regular(path) as f:
        return f.read(limit)


_BINARY = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")  # controls that text files do not hold


def decode_text(data: bytes, complete: bool = True) -> str:
    """Text of a file meant to hold text: UTF-8 (a BOM is dropped; UTF-16 with a BOM is read too), else
    Windows-1252. ``complete=False``: ``data`` is a file's head, whose last character may be cut.

    Raises
    ------
    ValueError
        When the bytes are not text (control characters, NUL bytes: an image, a device's output).
    """
    for bom, codec in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            text = codecs.getincrementaldecoder(codec)("replace").decode(data[len(bom):], final=complete)
            break
    else:
        data = data[3:] if data.startswith(codecs.BOM_UTF8) else data
        try:
            text = codecs.getincrementaldecoder("utf-8")().decode(data, final=complete)
        except UnicodeDecodeError:
            try:
                text = data.decode("cp1252")
            except UnicodeDecodeError:
                raise ValueError("binary data, not text") from None
    if _BINARY.search(text):
        raise ValueError("binary data, not text")
    return text


def reason(exc: OSError) -> str:
    """A short reason for a failed read: the refusal's own words, else the OS's."""
    return exc.strerror or type(exc).__name__
