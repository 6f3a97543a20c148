"""Incremental indexing, bad input, crash/cancel resume and checkpoint mismatch."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from collection_fixtures import data_dir, make_image, photos, runtime  # noqa: F401

from sfe_desktop.errors import IndexStateError
from sfe_desktop.search import Collection


def index(root, rt, **kw):
    with Collection.open(root, rt, batch_size=kw.pop("batch_size", 3)) as col:
        return col.index(**kw), col.info()


def indexed_paths(root, rt) -> set[str]:
    with Collection.open(root, rt) as col:
        return {r.path for r in col.search_text("a photo", top=100, rerank_k=0)}


def test_first_run_then_nothing_to_do(photos, runtime):
    seen = []
    summary, info = index(photos, runtime, progress=seen.append)
    assert (summary.indexed, summary.skipped, summary.total, summary.cancelled) == (8, 0, 8, False)
    assert info["indexed"] == info["vectors"] == 8 and info["checkpoint_id"] == runtime.checkpoint_id
    assert seen[-1].done == seen[-1].total == 8 and seen[-1].rate > 0
    assert (photos / ".sfe-index" / "vectors.faiss").is_file()
    again, _ = index(photos, runtime)
    assert (again.indexed, again.reused, again.removed, again.total) == (0, 0, 0, 8)
    assert summary.unchanged == 0 and again.unchanged == 8  # the photos found as they were are counted
    assert summary.searchable == again.searchable == 8  # what searches can return, not what the run did


def test_add_change_delete_rename_copy(photos, runtime):
    index(photos, runtime)
    make_image(photos / "new.jpg", 50)                       # added
    make_image(photos / "p1.jpg", 51, size=(70, 40))          # changed content
    os.remove(photos / "p2.jpg")                              # deleted
    os.rename(photos / "p3.jpg", photos / "trip" / "moved.jpg")  # moved
    (photos / "copy.jpg").write_bytes((photos / "p4.jpg").read_bytes())  # copied
    os.utime(photos / "p5.jpg", ns=(1, 1))                    # touched only
    summary, info = index(photos, runtime)
    assert summary.indexed == 2  # new.jpg and p1.jpg
    assert summary.reused == 3   # moved, copy, touched
    assert summary.removed == 1
    assert info["indexed"] == info["vectors"] == 9
    paths = indexed_paths(photos, runtime)
    assert str(photos / "trip" / "moved.jpg") in paths and str(photos / "p2.jpg") not in paths
    with Collection.open(photos, runtime) as col:
        hit = col.similar(photos / "p1.jpg", top=9)
        assert all(r.path != str(photos / "p1.jpg") for r in hit) and len(hit) == 8
        changed = [r for r in col.search_text("x", top=20, rerank_k=0) if r.path.endswith("p1.jpg")][0]
        assert (changed.width, changed.height) == (70, 40)


def test_bad_input_zoo_is_skipped_with_reasons(photos, runtime, monkeypatch):
    (photos / "zero.jpg").write_bytes(b"")
    (photos / "text.png").write_bytes(b"this is not a picture")
    good = (photos / "p0.jpg").read_bytes()
    (photos / "truncated.jpg").write_bytes(good[: len(good) // 3])
    os.symlink("missing.jpg", photos / "broken.jpg")
    os.symlink("self.jpg", photos / "self.jpg")                # a link to itself: loop
    os.symlink("..", photos / "trip" / "up")                   # directory loop
    (photos / os.fsdecode(b"caf\xe9-\xff.jpg")).write_bytes(good)  # not UTF-8
    (photos / "locked").mkdir()
    make_image(photos / "locked" / "x.jpg", 3)
    make_image(photos / "bomb.png", 4, size=(200, 150))
    from sfe_desktop.data import images
    monkeypatch.setattr(images, "MAX_PIXELS", 20_000)          # 30 000 px: refused as a bomb

    real_scandir = os.scandir

    def scandir(path):
        if os.fsdecode(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    summary, info = index(photos, runtime)
    assert not summary.cancelled
    with Collection.open(photos, runtime) as col:
        reasons = dict(col.skipped())
    assert reasons["zero.jpg"] == "empty file"
    assert "cannot decode" in reasons["text.png"]
    assert "broken symlink" in reasons["broken.jpg"]
    assert "symlink loop" in reasons["self.jpg"]
    assert "permission denied" in reasons["locked"]
    assert "decompression bomb" in reasons["bomb.png"]
    assert summary.skipped == len(reasons) >= 6
    # the truncated JPEG is either decoded (Pillow pads it) or skipped, never fatal
    assert summary.indexed + summary.reused + summary.skipped == summary.total
    odd = [p for p in indexed_paths(photos, runtime) if "caf" in p]
    assert len(odd) == 1 and os.path.exists(odd[0])


def test_resume_after_cancel(photos, runtime):
    cancel = threading.Event()

    def progress(p):
        if p.done >= 3:
            cancel.set()

    summary, info = index(photos, runtime, progress=progress, cancel=cancel, batch_size=3)
    assert summary.cancelled and summary.indexed == 3 and info["vectors"] == 3
    rest, info = index(photos, runtime)
    assert rest.indexed == 5 and not rest.cancelled and info["vectors"] == 8


def test_resume_after_crash_mid_run(photos, runtime, monkeypatch):
    calls = {"n": 0}
    real = runtime.encode_images

    def crashing(batch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed")
        return real(batch)

    monkeypatch.setattr(runtime, "encode_images", crashing)
    col = Collection.open(photos, runtime, batch_size=3)
    with pytest.raises(RuntimeError):
        col.index()
    col.catalog.close()  # no clean close: the faiss file is never written
    monkeypatch.setattr(runtime, "encode_images", real)
    assert not (photos / ".sfe-index" / "vectors.faiss").exists()
    with Collection.open(photos, runtime) as col:
        assert col.info()["vectors"] == 3  # rebuilt from the catalog and the row files
        summary = col.index()
        assert summary.indexed == 5 and col.info()["vectors"] == 8


def test_garbage_rows_after_crash_are_overwritten(photos, runtime):
    index(photos, runtime)
    store = photos / ".sfe-index" / "global.f32"
    with open(store, "ab") as f:  # a batch written but never committed
        f.write(np.ones(runtime.dim * 3, np.float32).tobytes())
    make_image(photos / "late.jpg", 77)
    summary, info = index(photos, runtime)
    assert summary.indexed == 1 and info["vectors"] == 9
    with Collection.open(photos, runtime) as col:
        top = col.similar(photos / "late.jpg", top=1)
        assert top[0].score < 0.9999 or top[0].path != str(photos / "late.jpg")


def test_corrupt_faiss_file_is_rebuilt(photos, runtime):
    index(photos, runtime)
    (photos / ".sfe-index" / "vectors.faiss").write_bytes(b"garbage")
    with Collection.open(photos, runtime) as col:
        assert col.info()["vectors"] == 8
        assert len(col.search_text("a dog", top=5)) == 5


def test_other_checkpoint_needs_reencode(photos, runtime):
    from sfe_desktop.model.runtime import tiny_runtime

    index(photos, runtime)
    other = tiny_runtime(1)
    with Collection.open(photos, other) as col:
        assert "tiny-0" in col.info()["stale"]
        with pytest.raises(IndexStateError, match="reencode"):
            col.search_text("a dog")
        with pytest.raises(IndexStateError, match="checkpoint"):
            col.index()
        summary = col.index(reencode=True)
        assert summary.indexed == 8 and col.info()["checkpoint_id"] == "tiny-1"
        assert len(col.search_text("a dog", top=3)) == 3


def test_index_dir_elsewhere_and_read_only_fallback(photos, runtime, tmp_path, monkeypatch, data_dir):
    summary, info = index(photos, runtime)
    with Collection.open(photos, runtime, index_dir=tmp_path / "idx") as col:
        col.index()
        assert col.info()["indexed"] == 8 and (tmp_path / "idx" / "catalog.sqlite").exists()
    import sfe_desktop.settings as settings

    monkeypatch.setattr(settings, "writable", lambda d: False)
    (tmp_path / "other").mkdir()
    where = settings.default_index_dir(tmp_path / "other")  # read-only and never indexed: the data dir
    assert str(where).startswith(str(data_dir)) and where != settings.default_index_dir(tmp_path)
    assert settings.default_index_dir(photos) == photos / ".sfe-index"  # read-only, indexed: used as it is


def test_a_second_process_cannot_index_the_same_folder_at_once(photos, runtime):
    import subprocess
    import sys

    with Collection.open(photos, runtime) as col:
        holder = subprocess.Popen(  # another process holds the folder's lock, as a running index would
            [sys.executable, "-c", "import sys, time; from sfe_desktop.index.lock import FolderLock; "
             "assert FolderLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)",
             str(col.index_dir)], stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "locked"
            with pytest.raises(IndexStateError, match=f"another process \\(pid {holder.pid}\\)"):
                col.index()
        finally:
            holder.kill()
            holder.wait()
        assert col.index().indexed == 8  # the OS dropped the dead holder's lock


def search_snapshot(root, rt, index_dir=None):
    with Collection.open(root, rt, index_dir) as col:
        hits = col.search_text("a red dog", top=100)  # Step 2 reads the patch rows
        return [(h.path, h.score) for h in hits], col.next_row, col.store.rows()


def same_hits(a, b) -> bool:
    """The same photos in the same order with the same scores (to float32 rounding: photos encoded in batches
    of other sizes differ in the last bits, which the fused score's scale makes visible; a score near 0, as the
    hubness correction makes some, needs the absolute bound)."""
    return [p for p, _ in a] == [p for p, _ in b] and np.allclose([s for _, s in a], [s for _, s in b], rtol=1e-4,
                                                                  atol=1e-4)


def churn(photos):
    """Change three photos and delete one: four of the eleven vector rows become unused."""
    for i, name in enumerate(["p0.jpg", "p1.jpg", "p3.jpg"]):
        make_image(photos / name, 70 + i, size=(60, 50))
    os.remove(photos / "p4.jpg")


def test_unused_vector_rows_are_compacted_away(photos, runtime, tmp_path):
    index(photos, runtime)
    churn(photos)
    summary, info = index(photos, runtime)
    assert summary.compacted == 4 and info["indexed"] == 7
    after, next_row, stored = search_snapshot(photos, runtime)
    assert next_row == stored == 7  # the files shrank to the rows in use
    with Collection.open(photos, runtime, tmp_path / "fresh") as col:  # the same folder indexed from scratch
        col.index()
    fresh, _, _ = search_snapshot(photos, runtime, tmp_path / "fresh")
    assert same_hits(after, fresh) and len(after) == 7
    assert not list((photos / ".sfe-index").glob("*.compact"))


@pytest.mark.parametrize("killed", ["before the catalog changed", "after the catalog changed"])
def test_a_compaction_killed_half_way_is_discarded_or_finished(photos, runtime, killed, monkeypatch):
    index(photos, runtime)
    churn(photos)
    with Collection.open(photos, runtime, batch_size=3) as col:
        monkeypatch.setattr(col.state, "compact", lambda *a, **k: 0)  # index without compacting ...
        col.index()
        expected = [(h.path, h.score) for h in col.search_text("a red dog", top=100)]
        live = np.unique([r for _, r in col.catalog.live()])
        col.store.write_compacted(live)  # ... then do its first steps by hand and "die"
        if killed == "after the catalog changed":
            col.catalog.renumber_rows({int(o): n for n, o in enumerate(live)}, {"next_row": len(live), "compacting": 1})
    after, next_row, stored = search_snapshot(photos, runtime)  # open repairs
    assert same_hits(after, expected)
    assert not list((photos / ".sfe-index").glob("*.compact"))
    assert (next_row, stored) == ((7, 7) if killed == "after the catalog changed" else (11, 11))
