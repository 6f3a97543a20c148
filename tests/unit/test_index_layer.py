"""faiss wrapper (flat vs compressed IVF-SQ8, HNSW of earlier versions), row store, atomic writes, catalog migrations and the scanner."""
from __future__ import annotations

import os
import sqlite3

import numpy as np
import pytest

from sfe_desktop.catalog import SCHEMA_VERSION, Catalog, scan
from sfe_desktop.catalog.db import MIGRATIONS
from sfe_desktop.errors import IndexStateError
from sfe_desktop.index import VectorIndex, VectorStore, atomic_write, vectors


def _unit(n, d, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_flat_up_to_the_limit_then_compressed(monkeypatch, tmp_path):
    monkeypatch.setattr(vectors, "FLAT_MAX", 50)
    x = _unit(800, 16)
    small = VectorIndex.build(16, np.arange(50), x[:50])
    big = VectorIndex.build(16, np.arange(800) + 100, x)
    assert small.kind == "flat" and small.exact and big.kind == "ivf-sq8" and not big.exact
    scores, ids = small.search(x[7], 3)
    assert ids[0, 0] == 7 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert big.search(x[7], big.shortlist(1))[1][0, 0] == 107 and big.shortlist(10) > 10
    assert sorted(big.ids().tolist()) == list(range(100, 900))
    big.save(tmp_path / "v.faiss")
    again = VectorIndex.load(tmp_path / "v.faiss", 16)
    assert again.kind == "ivf-sq8" and len(again) == 800 and not again.needs_rebuild()
    assert np.array_equal(again.search(x[:5], 20)[1], big.search(x[:5], 20)[1])
    with pytest.raises(IndexStateError):
        VectorIndex.load(tmp_path / "v.faiss", 8)


def test_hnsw_index_of_an_earlier_version_loads_and_is_replaced(monkeypatch, tmp_path):
    """What versions before the compressed index saved above FLAT_MAX: IndexIDMap2(IndexHNSWFlat)."""
    import faiss

    monkeypatch.setattr(vectors, "FLAT_MAX", 50)
    x = _unit(80, 16)
    old = faiss.IndexIDMap2(faiss.IndexHNSWFlat(16, 32, faiss.METRIC_INNER_PRODUCT))
    old.add_with_ids(x, np.arange(80) + 100)
    faiss.write_index(old, str(tmp_path / "v.faiss"))
    again = VectorIndex.load(tmp_path / "v.faiss", 16)
    assert again.kind == "hnsw" and again.exact and len(again) == 80 and not again.can_remove()
    assert again.search(x[7], 1)[1][0, 0] == 107
    assert again.needs_rebuild()  # an index run turns it into the compressed kind


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "f.bin"
    target.write_bytes(b"old")

    def fail(tmp):
        open(tmp, "wb").write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["f.bin"]


def test_row_store(tmp_path):
    store = VectorStore(tmp_path, 8, 4)
    g, p = _unit(5, 8), np.random.default_rng(1).standard_normal((5, 4, 8)).astype(np.float16)
    store.write(0, g[:3], p[:3])
    store.write(3, g[3:], p[3:])
    assert store.rows() == 5
    assert np.array_equal(store.read_globals([4, 1]), g[[4, 1]])
    assert store.codec is not None and (tmp_path / "patches.q4").stat().st_size == 5 * store.codec.row_bytes
    assert np.array_equal(store.read_patches([2]), store.codec.decode(store.codec.encode(p[[2]])))  # as coded
    store.write(1, g[:1], p[:1])  # overwrite in place (garbage rows after a crash)
    assert np.array_equal(store.read_globals([1]), g[[0]]) and store.rows() == 5


def test_row_reads_in_any_order_map_nothing_and_refuse_missing_rows(tmp_path):
    """Rows come back in the order asked (runs of consecutive rows read at once), and reading maps no page of the
    file into the process (a memory map's read-around made gigabytes resident at a million photos)."""
    store = VectorStore(tmp_path, 8, 4)
    g, p = _unit(12, 8), np.random.default_rng(2).standard_normal((12, 4, 8)).astype(np.float16)
    store.write(0, g, p)
    order = [5, 6, 7, 2, 3, 11, 0, 6, 6]
    assert np.array_equal(store.read_globals(order), g[order])
    assert np.array_equal(store.read_patches(order), store.codec.decode(store.codec.encode(p[order])))
    assert store.read_globals([]).shape == (0, 8)
    with open("/proc/self/maps") as maps:
        mapped = maps.read()
    assert str(tmp_path / "global.f32") not in mapped and str(tmp_path / "patches.q4") not in mapped
    with pytest.raises(IndexError, match="holds 12 rows"):
        store.read_globals([3, 12])


def test_catalog_migrates_old_schema_and_refuses_newer(tmp_path):
    path = tmp_path / "c.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
    conn.close()
    cat = Catalog.open(path)
    assert cat.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert cat.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert cat.add_captions(["a"], "x") == 1
    cat.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(IndexStateError, match="schema version"):
        Catalog.open(path)


def test_scanner_skips_index_folder_hidden_and_other_files(tmp_path):
    (tmp_path / ".sfe-index").mkdir()
    (tmp_path / ".sfe-index" / "t.jpg").write_bytes(b"x")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "u.JPG").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "a.jpeg").write_bytes(b"x")
    os.symlink(tmp_path / "elsewhere", tmp_path / "link")
    rels = [e.rel for e in scan(tmp_path, skip=[tmp_path / "elsewhere"])]
    assert rels == [b"a.jpeg"]
    rels = [e.rel for e in scan(tmp_path)]
    assert rels == [b"a.jpeg", b"elsewhere/u.JPG"]  # the link to an already seen folder is not walked twice


def test_a_memory_mapped_compressed_index_searches_then_changes_in_memory(monkeypatch, tmp_path):
    monkeypatch.setattr(vectors, "FLAT_MAX", 50)
    x = _unit(900, 16)
    VectorIndex.build(16, np.arange(800), x[:800]).save(tmp_path / "v.faiss")
    in_ram = VectorIndex.load(tmp_path / "v.faiss", 16, mmap=False)
    mapped = VectorIndex.load(tmp_path / "v.faiss", 16, mmap=True)
    assert mapped.mapped and not in_ram.mapped
    assert np.array_equal(mapped.search(x[:5], 20)[1], in_ram.search(x[:5], 20)[1])
    assert np.array_equal(np.sort(mapped.ids()), np.arange(800))
    mapped.remove([3, 4])
    mapped.add(np.arange(800, 900), x[800:])  # copied into memory first: the mapped cells are read-only
    assert not mapped.mapped and len(mapped) == 898
    mapped.save(tmp_path / "v.faiss")  # the cells themselves, not a reference to the mapped file
    again = VectorIndex.load(tmp_path / "v.faiss", 16, mmap=False)
    assert len(again) == 898 and np.array_equal(np.sort(again.ids()), np.setdiff1d(np.arange(900), [3, 4]))
    assert again.search(x[850], 1)[1][0, 0] == 850
