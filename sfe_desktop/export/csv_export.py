"""Formula-safe UTF-8 CSV export of search results."""
from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import SFEError
from ..index.atomic import atomic_write

COLUMNS = ["rank", "score", "confidence", "direction", "query", "path", "caption", "width", "height", "date_taken",
           "date_source"]
DIGITS = 4  # of scores and confidences: enough to order and compare them
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value) -> str:
    """Text of one cell; text starting like a spreadsheet formula gets a leading single quote.
    Numbers are written as numbers (floats with :data:`DIGITS` decimals); file names that are not valid UTF-8
    are shown escaped."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.{DIGITS}f}" if isinstance(value, float) else str(value)
    text = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "'" + text if text.startswith(_FORMULA_START) else text


def write_csv(results: Iterable, path: str | os.PathLike) -> None:
    """Write ``results`` (:class:`sfe_desktop.search.Result`) to ``path`` with a header row. Its folder must
    exist (an export never creates folders); the file gets the permissions any new file of the user gets (0666 less
    the umask)."""
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            for r in results:
                writer.writerow([safe_cell(getattr(r, c)) for c in COLUMNS])

    try:
        atomic_write(Path(path), write, fsync=False, make_parents=False, mode=0o666)
    except FileNotFoundError as exc:
        raise SFEError(f"cannot write {path}: the folder {Path(path).parent} does not exist") from exc
    except OSError as exc:
        raise SFEError(f"cannot write {path}: {exc.strerror or exc}") from exc
