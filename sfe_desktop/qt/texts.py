"""The sentences the window shows about indexing and results (counted right: "1 photo", "2 photos")."""
from __future__ import annotations

import os

from ..search.browse import STRONG, WEAK, strength
from ..search.types import IMAGE_TO_IMAGE, IMAGE_TO_TEXT, TEXT_TO_IMAGE, IndexSummary, Result

MAX_NAMED = 3  # unreadable files named in the warning; the rest are counted


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 photo``, ``2 photos``, ``1,200 photos`` (``many``: an irregular plural)."""
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def index_status(summary: IndexSummary) -> str:
    """What an index run did, every photo counted: new, unchanged, moved or copied, removed."""
    parts = [f"{summary.unchanged:,} unchanged"]
    if summary.reused:
        parts.append(f"{summary.reused:,} moved or copied")
    if summary.removed:
        parts.append(f"{summary.removed:,} removed")
    return f"Indexed {plural(summary.indexed, 'new photo')}; {', '.join(parts)} ({summary.seconds:.1f} s)."


def skipped_message(skipped: list[tuple[str, str]], total: int) -> str:
    """``1 of 2 files could not be read: broken.jpg (cannot decode).``; a few are named, the rest counted."""
    named = [f"{os.path.basename(path) or path} ({reason.split(' (')[0]})" if reason else os.path.basename(path)
             for path, reason in skipped[:MAX_NAMED]]  # the short reason; the decoder's detail names the full path
    more = len(skipped) - len(named)
    listed = ", ".join(named) + (f" and {more:,} more" if more > 0 else "")
    verb = "was" if len(skipped) == 1 else "were"
    return (f"{len(skipped):,} of {plural(total, 'file')} could not be read and {verb} skipped: {listed}."
            if skipped else "")


def results_label(kind: str, query: str, results: list[Result], shown: int, filtered: bool) -> str:
    """The line above the results: what they are, how many, how many match strongly."""
    name = os.path.basename(query)
    what = {TEXT_TO_IMAGE: ("photo", f"for “{query}”"), IMAGE_TO_TEXT: ("caption", f"for {name}"),
            IMAGE_TO_IMAGE: ("photo", f"similar to {name}")}[kind]
    strong = sum(strength(r) == STRONG for r in results)
    weak = sum(strength(r) == WEAK for r in results)
    text = f"{plural(len(results), what[0])} {what[1]}"
    if strong or weak:
        text = f"{plural(strong, 'strong match', 'strong matches')} {what[1]}"
        if weak:
            text += f" and {plural(weak, 'weak one')} (faded)"
    elif results and kind == IMAGE_TO_IMAGE:  # photos compared with a photo: no match confidence by design
        text += ", most alike first"
    elif results:  # a checkpoint without a match confidence: how sure it is cannot be told, only the ranking
        text += ", best score first (this model gives no match confidence)"
    if filtered:
        text += f"; {shown:,} shown with these filters"
    return text + "."


def library_label(folder: str, total: int, shown: int, filtered: bool, indexing: bool) -> str:
    text = f"{plural(total, 'photo')} in {os.path.basename(folder.rstrip(os.sep)) or folder}"
    if filtered:
        text += f", {shown:,} shown with these filters"
    if indexing:
        text += " (indexing: more appear as they are indexed)"
    return text + ". Type a description to search."
