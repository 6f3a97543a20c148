"""The vector index chosen by collection size: exact below FLAT_MAX, compressed (IVF-SQ8) above, whose shortlist
is re-scored exactly; indexes saved by earlier versions still open."""
from __future__ import annotations

import faiss
import numpy as np
import pytest

from sfe_desktop.catalog import FileRow
from sfe_desktop.index import vectors
from sfe_desktop.index.synthetic import ClusteredVectors
from sfe_desktop.model.features import ImageFeatures
from sfe_desktop.search.state import FAISS_FILE, IndexFormat, IndexState

DIM, BRIDGE = 32, 16
FMT = IndexFormat("synthetic", DIM, (1, 1), 32, DIM + BRIDGE + 1)  # the last column: the photos' hubness
GEN = ClusteredVectors((DIM, BRIDGE), latent=8, topics=20, groups=10)
RECALL_BOUND = 0.97  # recall@50 of the compressed index (after exact re-scoring) against exact search


def write(state: IndexState, start: int, n: int, batch: int = 250) -> None:
    """Index ``n`` synthetic photos as an index run's batches would."""
    for s in range(start, start + n, batch):
        k = min(batch, start + n - s)
        g, b = GEN.photos(s, k)
        rows = [FileRow(None, f"IMG_{i:06d}.jpg".encode(), 1000, i, f"{i:040x}", 40, 30, None, "ok", None, None)
                for i in range(s, s + k)]
        state.append(rows, ImageFeatures(g, np.zeros((k, 1, DIM), np.float16), b))


def open_state(tmp_path) -> IndexState:
    (tmp_path / "photos").mkdir(exist_ok=True)
    return IndexState.open(tmp_path / "photos", tmp_path / "index", FMT)


def exact_top(state: IndexState, q: np.ndarray, k: int) -> list[tuple[bytes, float]]:
    """Reference: every indexed photo scored with numpy, best first, ties by path."""
    rows = state.indexed()
    scores = state.store.read_globals(np.array([r.vec_row for r in rows])) @ q
    return sorted(((r.path, float(s)) for r, s in zip(rows, scores)), key=lambda h: (-h[1], h[0]))[:k]


def hits(state: IndexState, q: np.ndarray, k: int) -> list[tuple[bytes, float]]:
    return [(r.path, s) for r, s in state.nearest(q[None], k)]


@pytest.fixture
def small_flat_max(monkeypatch):
    monkeypatch.setattr(vectors, "FLAT_MAX", 500)


def test_compressed_index_agrees_with_exact_search(tmp_path, small_flat_max):
    state = open_state(tmp_path)
    with state.writing():
        state.reset()
        write(state, 0, 4000)  # passes FLAT_MAX during the run: the kind changes then, not at the end
        assert state.vector_count() == (4000, "ivf-sq8")
        state.finish_run()
    recalls = []
    for q in GEN.queries(30):
        got, want = hits(state, q, 50), exact_top(state, q, 50)
        recalls.append(len({p for p, _ in got} & {p for p, _ in want}) / 50)
        reference = dict(exact_top(state, q, 4000))
        assert [s for _, s in got] == pytest.approx([reference[p] for p, _ in got], abs=1e-5)  # exact scores
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
    print(f'recall@50 mean {np.mean(recalls):.4f} min {min(recalls):.2f}')
    assert np.mean(recalls) >= RECALL_BOUND and min(recalls) >= 0.9, recalls
    q = GEN.queries(1, seed=5)[0]
    before = hits(state, q, 20)
    state.close()
    again = open_state(tmp_path)  # saved compressed, opened as it was
    assert again.vector_count() == (4000, "ivf-sq8")
    assert hits(again, q, 20) == before
    again.close()


def test_switching_kinds_keeps_a_small_collections_results(tmp_path, monkeypatch):
    monkeypatch.setattr(vectors, "FLAT_MAX", 1000)
    state = open_state(tmp_path)
    queries = GEN.queries(10, seed=1)
    with state.writing():
        state.reset()
        write(state, 0, 600)
        assert state.vector_count() == (600, "flat")
        before = [hits(state, q, 20) for q in queries]
        for got, want in zip(before, (exact_top(state, q, 20) for q in queries)):
            assert [p for p, _ in got] == [p for p, _ in want]
        monkeypatch.setattr(vectors, "FLAT_MAX", 300)  # the same photos are now "many": an index run compresses
        state.sync_vectors()
        assert state.vector_count() == (600, "ivf-sq8")
        state.vindex._ivf.nprobe = state.vindex._ivf.nlist  # every cell visited: only the codes are approximate
        compressed = [hits(state, q, 20) for q in queries]
        for got, want in zip(compressed, before):
            assert [p for p, _ in got] == [p for p, _ in want]
            assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)
        monkeypatch.setattr(vectors, "FLAT_MAX", 1000)  # few again: exact again, the very same results
        state.sync_vectors()
        assert state.vector_count() == (600, "flat")
        assert [hits(state, q, 20) for q in queries] == before
    state.close()


@pytest.mark.parametrize("old_kind", ["flat", "hnsw"])
def test_an_index_saved_by_the_previous_version_opens(tmp_path, small_flat_max, old_kind):
    state = open_state(tmp_path)
    with state.writing():
        state.reset()
        write(state, 0, 400 if old_kind == "flat" else 1200)
    live = np.array(state.catalog.live())
    base = (faiss.IndexFlatIP(FMT.vector_dim) if old_kind == "flat"
            else faiss.IndexHNSWFlat(FMT.vector_dim, 32, faiss.METRIC_INNER_PRODUCT))
    old = faiss.IndexIDMap2(base)  # what the previous version wrote: IndexIDMap2 over flat or HNSW
    old.add_with_ids(state.store.read_globals(live[:, 1]), live[:, 0])
    state.catalog.close()
    faiss.write_index(old, str(tmp_path / "index" / FAISS_FILE))

    reopened = open_state(tmp_path)  # a searcher keeps the old kind: no rebuild on open
    assert reopened.vector_count() == (len(live), old_kind)
    q = GEN.queries(1, seed=2)[0]
    got = hits(reopened, q, 10)
    assert [p for p, _ in got] == [p for p, _ in exact_top(reopened, q, 10)]
    with reopened.writing():  # the next index run brings it to the kind its size wants, and saves it
        reopened.finish_run()
    want = "flat" if old_kind == "flat" else "ivf-sq8"
    assert reopened.vector_count() == (len(live), want)
    reopened.close()
    again = open_state(tmp_path)
    assert again.vector_count() == (len(live), want) and [p for p, _ in hits(again, q, 10)] == [p for p, _ in got]
    again.close()


def test_opening_checks_the_saved_index_against_the_catalog(tmp_path, monkeypatch):
    """Opening compares a digest of the ids instead of reading every catalog row: a saved index in step with the
    catalog is taken as it is, one a crash left behind (same count, other ids) is brought in line."""
    monkeypatch.setattr(vectors, "FLAT_MAX", 1000)
    state = open_state(tmp_path)
    with state.writing():
        state.reset()
        write(state, 0, 300)
        state.finish_run()
    state.close()
    calls = []
    monkeypatch.setattr(IndexState, "sync_vectors", lambda self, live=None: calls.append(live))
    in_step = open_state(tmp_path)
    assert calls == [] and in_step.vector_count() == (300, "flat")
    # as if killed after a batch's commit and before the index was saved: one photo gone, another in its place
    first = in_step.catalog.live()[0]
    row = FileRow(None, b"IMG_new.jpg", 1000, 1, "f" * 40, 40, 30, None, "ok", None, first[1])
    in_step.catalog.commit([row], [first[0]])
    in_step.catalog.close()
    monkeypatch.undo()
    monkeypatch.setattr(vectors, "FLAT_MAX", 1000)
    synced = open_state(tmp_path)
    live = np.array(synced.catalog.live())
    assert len(live) == 300 and sorted(synced.vindex.ids().tolist()) == sorted(live[:, 0].tolist())
    synced.close()
