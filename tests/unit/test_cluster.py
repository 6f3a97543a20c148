"""Indexing on a Dask cluster (the ``cluster`` extra): a LocalCluster of 2 workers on this machine encodes shards
with the tiny model; the merged index searches as a one-process index of the same photos does. Skipped where Dask
is not installed, except the test of the one-line error that says how to install it."""
from __future__ import annotations

import os
import shutil
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from collection_fixtures import data_dir, photos, runtime  # noqa: F401

from sfe_desktop.errors import SFEError
from sfe_desktop.search import Collection

QUERIES = ("a red dog", "the tree is green", "a blue car near a house")


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    # thread workers: two workers of one process start in a second on 2 shared cores (processes: see the CLI test)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        yield c


def counted_tiny(log: str, seed: int = 0):
    """tiny_runtime(seed), noting each load in ``log`` (how often workers load the model)."""
    from sfe_desktop.model.runtime import tiny_runtime

    with open(log, "a") as f:
        f.write(f"{os.getpid()}\n")
    return tiny_runtime(seed)


def worker_model(tmp_path, key: str | None = None):
    from sfe_desktop.search.cluster import WorkerModel

    log = tmp_path / "loads.txt"
    return WorkerModel(factory=partial(counted_tiny, str(log)), key=key or f"tiny-0-{tmp_path.name}"), log


def twin(photos: Path, tmp_path: Path) -> Path:
    """A copy of the photo folder (same names, bytes and times) to index the other way."""
    other = tmp_path / "twin"
    shutil.copytree(photos, other, ignore=shutil.ignore_patterns(".sfe-index"))
    return other


def results(root: Path, rt) -> dict:
    """What searches of ``root`` give: per query the (relative path, score) list, the similar photos of p0, the
    skipped files, and the indexed and vector counts."""
    with Collection.open(root, rt) as col:
        out = {q: [(os.path.relpath(r.path, root), r.score) for r in col.search_text(q, top=20)] for q in QUERIES}
        out["similar"] = [(os.path.relpath(r.path, root), r.score) for r in col.similar(root / "p0.jpg", top=20)]
        info = col.info()
        out["counts"] = (info["indexed"], info["vectors"], info["skipped"])
        out["skipped"] = sorted(col.skipped())
        rows = [col.state.row_of(root / p) for p, _ in out["similar"]]
        out["thumbs"] = all(col.thumbs.path_for(r.hash).is_file() for r in rows)  # written while indexing
    return out


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key in QUERIES or key == "similar":
            assert [p for p, _ in a[key]] == [p for p, _ in b[key]], key
            # batches of another size (1 a shard against 3) round the backbone's float sums differently
            np.testing.assert_allclose([s for _, s in a[key]], [s for _, s in b[key]], rtol=1e-4, atol=1e-4)
        else:
            assert a[key] == b[key], key


def one_process(photos: Path, rt) -> dict:
    with Collection.open(photos, rt, batch_size=3) as col:
        col.index()
    return results(photos, rt)


def test_sharded_index_searches_as_one_process_index(photos, runtime, client, tmp_path):
    (photos / "bad.jpg").write_bytes(b"not a photo")  # a skipped file travels through a shard too
    os.utime(photos / "bad.jpg", (1e9, 1e9))  # not modified just before a scan (such a file is looked at again)
    other = twin(photos, tmp_path)
    model, log = worker_model(tmp_path)
    with Collection.open(other, runtime, batch_size=3) as col:
        # one photo a shard: 9 shards, more than the coordinator keeps submitted at once (8), so it tops up
        summary, done = col.index_on_cluster(client, model, shard_size=1)
        assert (summary.indexed, summary.skipped, summary.total, summary.cancelled) == (8, 1, 9, False)
        assert len(done) == 9 and sum(d.encoded for d in done) == 8 and all(d.seconds > 0 for d in done)
        assert shards_left(col) == []  # each shard is deleted once merged
        again, done = col.index_on_cluster(client, model, shard_size=3)  # nothing changed: nothing to encode
        assert (again.indexed, again.unchanged, done) == (0, 8, [])
    loads = log.read_text().split()
    assert 1 <= len(loads) <= 2  # once per worker (both threads of one process here share it), not per shard
    assert_same(results(other, runtime), one_process(photos, runtime))


def shards_left(col) -> list[str]:
    root = col.index_dir / "shards"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def write_shard(root: Path, runtime, model, name: str, rels: set[bytes]) -> Path:
    """Encode the photos ``rels`` of ``root`` into a shard of its index folder, as a worker does."""
    from sfe_desktop.catalog import content_hash, scan
    from sfe_desktop.search.cluster import ShardTask, encode_shard
    from sfe_desktop.search.state import IndexFormat

    entries = [e for e in scan(root) if e.rel in rels]
    files = tuple((e.rel, e.size, e.mtime_ns, e.error, e.ino, content_hash(root / os.fsdecode(e.rel))) for e in entries)
    task = ShardTask(str(root), str(root / ".sfe-index" / "shards"), name, files, model,
                     IndexFormat.of(runtime).meta(), 2, 1)
    return Path(encode_shard(task).path)


def test_a_half_written_shard_is_ignored_and_its_photos_encoded_again(photos, runtime, client, tmp_path, caplog):
    other = twin(photos, tmp_path)
    model, _ = worker_model(tmp_path)
    write_shard(other, runtime, model, "a-000000", {b"p0.jpg", b"p1.jpg", b"trip/a.png"})
    broken = write_shard(other, runtime, model, "a-000001", {b"p2.jpg", b"p3.jpg"})
    with open(broken / "patches.npy", "r+b") as f:  # cut short, as a copy interrupted on the way to the NAS would be
        f.truncate(os.path.getsize(broken / "patches.npy") // 2)
    unfinished = other / ".sfe-index" / "shards" / ".tmp-a-000002-0badf00d"  # a worker killed while writing
    unfinished.mkdir()
    (unfinished / "global.npy").write_bytes(b"\x93NUMPY half")
    with Collection.open(other, runtime) as col:  # never indexed: nothing is merged before a run records the model
        assert col.info()["indexed"] == 0
        summary, done = col.index_on_cluster(client, model, shard_size=3)
        assert summary.indexed == 8  # 3 from the finished shard, 5 encoded now (2 of them were in the broken one)
        assert sum(d.encoded for d in done) == 5
        assert shards_left(col) == []
    assert "shard a-000001 cannot be read" in caplog.text
    assert_same(results(other, runtime), one_process(photos, runtime))


def snapshot(col) -> tuple:
    """Everything a merge may change: the catalog's rows and meta, the row files, the faiss ids."""
    files = {p: r for p, r in col.catalog.files().items()}
    meta = col.catalog.meta()
    rows = col.store.rows()
    return (files, meta, rows, col.store.read_globals(np.arange(rows)).tobytes(), sorted(col.state.vindex.ids()),
            col.catalog.captions())


def test_merging_a_shard_twice_changes_nothing(photos, runtime, tmp_path):
    from sfe_desktop.search.shards import merge_shards

    other = twin(photos, tmp_path)
    model, _ = worker_model(tmp_path)
    everything = {os.fsencode(os.path.relpath(os.path.join(d, f), other)) for d, _, fs in os.walk(other) for f in fs}
    shard = write_shard(other, runtime, model, "b-000000", everything)
    kept = tmp_path / "kept-shard"
    shutil.copytree(shard, kept)
    with Collection.open(other, runtime) as col:
        with col.state.writing():
            col.state.begin_run(False)  # a run starts: the model is recorded, then its shards merge
            first = merge_shards(col.state)
            col.state.finish_run()
        assert (first.shards, first.encoded, first.left) == (1, 8, 0) and shards_left(col) == []
        before = snapshot(col)
        shutil.copytree(kept, shard)  # as if the process died between the commit and the delete
        with col.state.writing():
            second = merge_shards(col.state)
            col.state.finish_run()
        assert (second.shards, second.encoded, second.skipped, second.left) == (1, 0, 0, 8)
        assert snapshot(col) == before and shards_left(col) == []
    shutil.copytree(kept, shard)
    with Collection.open(other, runtime) as col:  # the app merges what it finds on open: nothing new here either
        assert snapshot(col)[:5] == before[:5] and shards_left(col) == []
    assert_same(results(other, runtime), one_process(photos, runtime))


def test_a_photo_changed_after_its_shard_was_written_is_left_to_the_next_run(photos, runtime, client, tmp_path):
    from collection_fixtures import make_image

    model, _ = worker_model(tmp_path)
    with Collection.open(photos, runtime) as col:
        col.index()
    write_shard(photos, runtime, model, "c-000000", {b"p4.jpg", b"p5.jpg"})
    make_image(photos / "p4.jpg", 99, size=(30, 20))  # changed on disk after the worker read it
    os.remove(photos / "p5.jpg")
    with Collection.open(photos, runtime) as col:  # merges the shard it finds: neither photo is taken from it
        assert shards_left(col) == []
        p4 = col.catalog.by_path(b"p4.jpg")
        assert (p4.width, p4.height) == (64, 48) and col.catalog.by_path(b"p5.jpg") is not None  # as indexed
        summary, _ = col.index_on_cluster(client, model)
        assert (summary.indexed, summary.removed) == (1, 1)
        p4 = [r for r in col.library() if r.path.endswith("p4.jpg")][0]
        assert (p4.width, p4.height) == (30, 20)


def test_the_cli_indexes_on_a_local_cluster_of_two_processes(photos, runtime, tmp_path, capsys):
    pytest.importorskip("distributed")
    from sfe_desktop import cli
    from sfe_desktop.model.checkpoint import save_checkpoint

    ckpt = save_checkpoint(runtime.model, tmp_path / "ckpt", runtime.meta, runtime.corpus)  # workers load it
    other = twin(photos, tmp_path)
    assert cli.main(["index", str(other), "--checkpoint", str(ckpt), "--cluster", "local:2", "--shard-size", "4",
                     "-q"]) == 0
    out = capsys.readouterr().out
    assert "8 indexed" in out and "2 shards on" in out and "photos/s per worker" in out
    assert cli.main(["search", str(other), "a red dog", "--checkpoint", str(ckpt), "--top", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_without_dask_the_error_says_how_to_install_it(photos, runtime, monkeypatch, capsys):
    from sfe_desktop import cli

    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    with Collection.open(photos, runtime) as col:
        with pytest.raises(SFEError, match=r"pip install 'sfe-desktop\[cluster\]'"):
            col.index_on_cluster("local:2")
        assert col.info()["indexed"] == 0
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "distributed" else object())
    assert cli.main(["index", str(photos), "--cluster", "local:2"]) == 2
    err = capsys.readouterr().err
    assert "sfe-desktop[cluster]" in err and len(err.strip().splitlines()) == 1
