"""Cheap image metadata (size after EXIF orientation, date taken) read from the file header only."""
from __future__ import annotations

import time
import warnings

from PIL import Image

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL, _DATETIME_DIGITIZED, _DATETIME, _ORIENTATION = 36867, 36868, 306, 274


def _iso(value) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip().strip("\x00")
    if len(value) < 10 or value.startswith("0000"):
        return None
    date, _, time = value.partition(" ")
    return date.replace(":", "-") + (f"T{time}" if time else "")


def probe(path: str) -> tuple[int | None, int | None, str | None]:
    """(width, height, date taken as ISO text) of ``path``; ``None`` where unknown. Never raises."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                w, h = im.size
                exif = im.getexif()
                if exif.get(_ORIENTATION) in (5, 6, 7, 8):
                    w, h = h, w
                sub = exif.get_ifd(_EXIF_IFD)
                date = _iso(sub.get(_DATETIME_ORIGINAL) or sub.get(_DATETIME_DIGITIZED) or exif.get(_DATETIME))
                return w, h, date
    except Exception:  # noqa: BLE001 - metadata is optional
        return None, None, None


def file_time(mtime_ns: int) -> str:
    """A file's modification time as ISO text in local time, to the second (the date without EXIF)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(mtime_ns / 1e9))
