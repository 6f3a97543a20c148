"""User captions: sentence files (CSV or plain text) and sidecar descriptions next to photos."""
from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

from ..data.files import MB, decode_text, read_bytes, read_head, reason
from ..errors import SFEError

log = logging.getLogger(__name__)
MAX_CAPTION_CHARS = 500
MAX_SIDECAR_BYTES = 64 * 1024          # a sidecar's first 64 KB are read
MAX_CAPTION_FILE_BYTES = 256 * MB
_HEADER_NAMES = {"caption", "captions", "text", "sentence", "description"}


def _clean(lines) -> list[str]:
    out, seen = [], set()
    for line in lines:
        text = " ".join(str(line).split())[:MAX_CAPTION_CHARS]
        if text and text not in seen:
            seen.add(text)
            out.append(text)
    return out


def read_caption_file(path: str | Path) -> list[str]:
    """Sentences of a ``.csv`` file (the column named caption/text/sentence/description, else the
    first) or of a text file (one per line). Raises :class:`SFEError` when unreadable, too large or not text."""
    path = Path(path)
    try:
        text = decode_text(read_bytes(path, MAX_CAPTION_FILE_BYTES))
    except OSError as exc:
        raise SFEError(f"cannot read captions from {path}: {reason(exc)}") from exc
    except ValueError as exc:
        raise SFEError(f"cannot read captions from {path}: {exc}") from exc
    if path.suffix.lower() != ".csv":
        return _clean(text.splitlines())
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise SFEError(f"cannot read captions from {path}: {exc}") from exc
    if not rows:
        return []
    header = [c.strip().lower() for c in rows[0]]
    col = next((i for i, name in enumerate(header) if name in _HEADER_NAMES), None)
    body = rows[1:] if col is not None else rows
    return _clean(r[col or 0] for r in body if len(r) > (col or 0))


def _sidecar_paths(image_path: str) -> tuple[str, str]:
    return os.path.splitext(image_path)[0] + ".txt", image_path + ".txt"


def sidecar_state(image_path: str) -> str | None:
    """What identifies the sidecar files of ``image_path`` as they are now (size, mtime and inode of each
    candidate), None when there is none: when it changes, the photo's captions are read again."""
    parts = []
    for candidate in _sidecar_paths(image_path):
        try:
            st = os.stat(candidate)
        except OSError:
            parts.append("-")
            continue
        parts.append(f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}")
    return None if parts == ["-", "-"] else "|".join(parts)


def sidecar_captions(image_path: str) -> list[str]:
    """Descriptions from ``photo.txt`` or ``photo.jpg.txt`` next to ``image_path`` (may be empty). Only a regular
    file holding text counts: a FIFO, a device or binary data is passed over (logged)."""
    for candidate in _sidecar_paths(image_path):
        try:
            head = read_head(candidate, MAX_SIDECAR_BYTES)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.info("sidecar %r passed over: %s", candidate, reason(exc))
            continue
        try:
            return _clean(decode_text(head, complete=len(head) < MAX_SIDECAR_BYTES).splitlines())
        except ValueError as exc:
            log.info("sidecar %r passed over: %s", candidate, exc)
    return []
