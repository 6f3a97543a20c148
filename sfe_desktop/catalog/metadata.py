"""Cheap image metadata (size after EXIF orientation, date taken) read from the file header only."""
from __future__ import annotations

import re
import time
import warnings
from datetime import datetime

from PIL import Image

from ..data.images import open_image_file

# Pillow's warnings about odd metadata (corrupt EXIF and the like) are no concern of the user's: metadata is optional,
# and a photo that cannot be decoded gets its own one-line error. Set once here rather than per call, because
# ``warnings.catch_warnings`` swaps the process-wide filters and is not thread-safe (probe runs in decode threads).
warnings.filterwarnings("ignore", module=r"PIL\.")

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL, _DATETIME_DIGITIZED, _DATETIME, _ORIENTATION = 36867, 36868, 306, 274
# EXIF writes "YYYY:MM:DD HH:MM:SS"; some tools use "-" in the date or "T" between date and time
_EXIF_DATE = re.compile(r"(\d{4})[:-](\d{2})[:-](\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?")


def exif_date(value) -> str | None:
    """ISO text (``2021-07-01T10:11:12``, or the date alone) of an EXIF date, or None when it is not a real
    date and time (``2020-13-45T25:61:61``, blanks, zeros, control characters)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    match = _EXIF_DATE.fullmatch(value.strip().strip("\x00").strip())
    if not match:
        return None
    y, mo, d, h, mi, s = (int(x) if x is not None else None for x in match.groups())
    try:
        when = datetime(y, mo, d, h or 0, mi or 0, s or 0)
    except ValueError:  # month 13, day 45, hour 25 ...
        return None
    if when.year < 1800:
        return None
    return when.date().isoformat() if h is None else when.isoformat()


def probe(path: str) -> tuple[int | None, int | None, str | None]:
    """(width, height, date taken as ISO text) of ``path``; ``None`` where unknown. Never raises."""
    try:
        with open_image_file(path) as f:
            with Image.open(f) as im:
                w, h = im.size
                exif = im.getexif()
                if exif.get(_ORIENTATION) in (5, 6, 7, 8):
                    w, h = h, w
                sub = exif.get_ifd(_EXIF_IFD)
                for tag in (_DATETIME_ORIGINAL, _DATETIME_DIGITIZED):
                    if exif_date(sub.get(tag)):
                        return w, h, exif_date(sub.get(tag))
                return w, h, exif_date(exif.get(_DATETIME))
    except Exception:  # noqa: BLE001 - metadata is optional
        return None, None, None


def file_time(mtime_ns: int) -> str:
    """A file's modification time as ISO text in local time, to the second (the date without EXIF)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(mtime_ns / 1e9))
