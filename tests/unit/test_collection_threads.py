"""Searching, explaining and thumbnails on other threads while an index run adds (or resets) vectors."""
from __future__ import annotations

import threading

from collection_fixtures import data_dir, make_image, runtime  # noqa: F401

from sfe_desktop.errors import SFEError
from sfe_desktop.search import Collection


def _query_until(col, done: threading.Event, errors: list, counts: dict, allow_reset: bool = False) -> None:
    """Search, explain and ask for thumbnails in a loop until ``done``; record any failure."""
    while True:
        finished = done.is_set()
        try:
            hits = col.search_text("a red dog", top=5, rerank_k=5)
            counts["searches"] += 1
            counts["max_hits"] = max(counts["max_hits"], len(hits))
            for hit in hits[:2]:
                assert hit.path and hit.score == hit.score  # a real path, not NaN
                col.thumbnail(hit)
                e = col.explain(hit)
                assert e.attention.shape[1] == col.n_patches
            col.info()
        except SFEError as exc:  # the one expected error: a reset dropped the rows between two steps
            if not (allow_reset and "reset" in str(exc)):
                errors.append(exc)
        except Exception as exc:  # noqa: BLE001 - any other failure is a bug
            errors.append(exc)
        if finished:
            return


def _run_concurrently(col, index_kwargs: dict, allow_reset: bool = False):
    errors: list = []
    counts = {"searches": 0, "max_hits": 0}
    done = threading.Event()
    summary: list = []

    def index():
        try:
            summary.append(col.index(**index_kwargs))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            done.set()

    searchers = [threading.Thread(target=_query_until, args=(col, done, errors, counts, allow_reset))
                 for _ in range(2)]
    indexer = threading.Thread(target=index)
    indexer.start()
    for t in searchers:
        t.start()
    indexer.join(120)
    for t in searchers:
        t.join(120)
    assert not errors, errors
    return summary[0], counts


def _collection(tmp_path, runtime, n: int) -> Collection:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(n):
        make_image(folder / f"p{i:02d}.jpg", i)
    return Collection.open(folder, runtime, batch_size=4, workers=2)


def test_search_while_indexing(tmp_path, runtime):
    with _collection(tmp_path, runtime, 48) as col:
        summary, counts = _run_concurrently(col, {})
        assert summary.indexed == 48 and not summary.cancelled
        assert counts["searches"] >= 2 and counts["max_hits"] == 5
        assert col.info()["vectors"] == 48
        assert len(col.search_text("a red dog", top=100, rerank_k=0)) == 48


def test_search_while_reencoding(tmp_path, runtime):
    with _collection(tmp_path, runtime, 24) as col:
        col.index()
        summary, counts = _run_concurrently(col, {"reencode": True}, allow_reset=True)
        assert summary.indexed == 24 and counts["searches"] >= 2
        assert len(col.search_text("a red dog", top=100, rerank_k=0)) == 24
