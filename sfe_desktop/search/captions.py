"""User captions: sentence files (CSV or plain text) and sidecar descriptions next to photos."""
from __future__ import annotations

import csv
import os
from pathlib import Path

from ..errors import SFEError

MAX_CAPTION_CHARS = 500
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
    first) or of a text file (one per line). Raises :class:`SFEError` when unreadable."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
            if path.suffix.lower() != ".csv":
                return _clean(f)
            rows = list(csv.reader(f))
    except OSError as exc:
        raise SFEError(f"cannot read captions from {path}: {exc.strerror or exc}") from exc
    if not rows:
        return []
    header = [c.strip().lower() for c in rows[0]]
    col = next((i for i, name in enumerate(header) if name in _HEADER_NAMES), None)
    body = rows[1:] if col is not None else rows
    return _clean(r[col or 0] for r in body if len(r) > (col or 0))


def sidecar_captions(image_path: str) -> list[str]:
    """Descriptions from ``photo.txt`` or ``photo.jpg.txt`` next to ``image_path`` (may be empty)."""
    for candidate in (os.path.splitext(image_path)[0] + ".txt", image_path + ".txt"):
        try:
            with open(candidate, encoding="utf-8", errors="replace") as f:
                return _clean(f.read(64 * 1024).splitlines())
        except OSError:
            continue
    return []
