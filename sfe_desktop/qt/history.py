"""What the result pane shows (:class:`Page`) and the Back/Forward history of pages (no Qt here)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..search.types import LIBRARY, Result

MAX_PAGES = 50


@dataclass
class Page:
    """One state of the result pane: the library, or a search (``kind`` is its direction) for ``query`` (the
    text, or the query photo's path) with the results in the core's order. ``show_weak``: the user asked to see
    the closest results of a search that matches nothing."""

    kind: str
    query: str = ""
    results: list[Result] = field(default_factory=list)
    show_weak: bool = False

    @property
    def is_library(self) -> bool:
        return self.kind == LIBRARY

    def same_search(self, kind: str, query: str) -> bool:
        return self.kind == kind and self.query == query


class History:
    """Pages in the order they were shown; :meth:`back` and :meth:`forward` move through them like a browser's
    (showing a new page drops the pages ahead of the current one)."""

    def __init__(self, limit: int = MAX_PAGES):
        self.pages: list[Page] = []
        self.index = -1
        self.limit = limit

    @property
    def current(self) -> Page | None:
        return self.pages[self.index] if self.pages else None

    def push(self, page: Page) -> None:
        del self.pages[self.index + 1:]
        self.pages.append(page)
        if len(self.pages) > self.limit:
            del self.pages[: len(self.pages) - self.limit]
        self.index = len(self.pages) - 1

    def replace(self, page: Page) -> None:
        """Put ``page`` where the current page is (a search re-run, the library refreshed)."""
        if self.pages:
            self.pages[self.index] = page
        else:
            self.push(page)

    def can_back(self) -> bool:
        return self.index > 0

    def can_forward(self) -> bool:
        return self.index < len(self.pages) - 1

    def back(self) -> Page | None:
        if not self.can_back():
            return None
        self.index -= 1
        return self.current

    def forward(self) -> Page | None:
        if not self.can_forward():
            return None
        self.index += 1
        return self.current

    def clear(self) -> None:
        self.pages, self.index = [], -1
