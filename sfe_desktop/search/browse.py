"""Arranging a result list the way a photo browser does: sort by relevance, date taken or name, keep one
subfolder or a date range. Plain functions over :class:`~sfe_desktop.search.types.Result` (the GUI calls them
on every change of its sort and filter controls; the library view uses them too)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from .types import Result

SORTS = ("relevance", "newest", "oldest", "name")
STRONG_MATCH = 0.5  # a result whose confidence (probability of a true match) reaches this is a strong match
STRONG, WEAK = "strong", "weak"


def strength(result: Result) -> str | None:
    """:data:`STRONG` or :data:`WEAK` from the model's confidence; None when it has none (an older checkpoint,
    or a photo of the library, which matched nothing)."""
    if result.confidence is None:
        return None
    return STRONG if result.confidence >= STRONG_MATCH else WEAK


def nothing_matches(results: list[Result]) -> bool:
    """True when there are results and the model is confident of none of them (every one is weak)."""
    return bool(results) and all(strength(r) == WEAK for r in results)


def name_key(result: Result) -> tuple[str, str]:
    """Case-insensitive file name (captions: the text), then the full path."""
    path = result.path or ""
    return ((os.path.basename(path) or result.caption or "").casefold(), path)


def by_date(results: list[Result], newest_first: bool = True) -> list[Result]:
    """Sorted by date taken (newest or oldest first), then by name; photos without a date last."""
    dated = sorted((r for r in results if r.date_taken), key=name_key)
    dated.sort(key=lambda r: r.date_taken or "", reverse=newest_first)  # stable: names stay in order per date
    return dated + sorted((r for r in results if not r.date_taken), key=name_key)


def subfolder(result: Result, root: str) -> str:
    """The folder of ``result``'s photo relative to ``root`` ("" for photos directly in it)."""
    if not result.path:
        return ""
    rel = os.path.relpath(os.path.dirname(result.path), root)
    return "" if rel == os.curdir or rel.startswith(os.pardir) else rel.replace(os.sep, "/")


def subfolders(results: list[Result], root: str) -> list[str]:
    """The subfolders (relative, "/"-separated, sorted) that hold at least one of ``results``."""
    return sorted({s for r in results if (s := subfolder(r, root))}, key=str.casefold)


@dataclass(frozen=True)
class Arrangement:
    """How to show a result list. ``folder``: keep photos in this subfolder of ``root`` or below it (None: all,
    "": only photos directly in ``root``); ``date_from``/``date_to``: ISO dates (YYYY-MM-DD), inclusive."""

    sort: str = "relevance"
    folder: str | None = None
    date_from: str | None = None
    date_to: str | None = None

    def keeps(self, result: Result, root: str) -> bool:
        if self.folder is not None and result.path:
            where = subfolder(result, root)
            if not (where == self.folder or (self.folder and where.startswith(self.folder + "/"))):
                return False
        if self.date_from or self.date_to:
            day = (result.date_taken or "")[:10]
            if not day or (self.date_from and day < self.date_from) or (self.date_to and day > self.date_to):
                return False
        return True

    def filters(self) -> bool:
        return self.folder is not None or bool(self.date_from or self.date_to)

    def apply(self, results: list[Result], root: str) -> list[Result]:
        """The results this arrangement keeps, in its order (relevance: the order given)."""
        kept = [r for r in results if self.keeps(r, root)]
        if self.sort in ("newest", "oldest"):
            return by_date(kept, newest_first=self.sort == "newest")
        if self.sort == "name":
            return sorted(kept, key=name_key)
        return kept
