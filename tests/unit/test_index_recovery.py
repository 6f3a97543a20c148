"""A reader never deletes rows (forced interleaving with an index run); a damaged catalog is detected on open or
at the start of a run, moved aside with a one-line notice and rebuilt from the photos; a read-only folder with a
complete index is searched as it is; the index folder deleted during a run is a one-line error."""
from __future__ import annotations

import os
import sqlite3
import stat

import numpy as np
import pytest
from collection_fixtures import data_dir, make_image, photos, runtime  # noqa: F401

from sfe_desktop.catalog import db as catalog_db
from sfe_desktop.errors import IndexDamagedError, IndexStateError
from sfe_desktop.search import Collection


def searchable(root, rt, **kw) -> dict[str, list[float]]:
    """path -> stored global vector of every indexed photo (what a fresh index is compared with)."""
    with Collection.open(root, rt, **kw) as col:
        rows = {p: r for p, r in col.catalog.files().items() if r.status == "ok"}
        order = sorted(rows)
        vecs = col.store.read_globals(np.array([rows[p].vec_row for p in order], dtype=np.int64))
        return dict(zip((p.decode() for p in order), vecs.tolist()))


class _HookedConnection:
    """A catalog connection that runs ``hook`` once, right before the first read of the live rows (after
    ``next_row`` was read: where an index run committing in between made the old code delete rows)."""

    def __init__(self, conn: sqlite3.Connection, hook):
        self._conn, self._hook = conn, hook

    def execute(self, sql, *args):
        if self._hook is not None and sql.startswith(("SELECT id, vec_row FROM files", "SELECT COUNT(*), SUM(id)")):
            hook, self._hook = self._hook, None
            hook()
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_opening_during_an_index_run_never_deletes_rows(photos, runtime, monkeypatch):
    with Collection.open(photos, runtime, batch_size=2) as writer:
        writer.index()
        for i in range(5):
            make_image(photos / f"new{i}.jpg", 100 + i)
        ran = []

        def index_meanwhile():  # an index run commits 5 new rows between the reader's two reads
            ran.append(writer.index())

        real_open = catalog_db.Catalog.open

        def hooked_open(path, read_only=False):
            cat = real_open(path, read_only)
            cat.conn = _HookedConnection(cat.conn, index_meanwhile)
            return cat

        monkeypatch.setattr(catalog_db.Catalog, "open",
                            classmethod(lambda cls, p, read_only=False: hooked_open(p, read_only)))
        with Collection.open(photos, runtime) as reader:
            assert ran and ran[0].indexed == 5          # the interleaving did happen
            # the reader's digest (8 files) is older than the index file the run saved (13): it syncs up to the
            # committed rows and drops none
            assert reader.info()["vectors"] == 13 and len(reader.search_text("a photo", top=20)) == 13
        monkeypatch.undo()
        assert writer.info()["indexed"] == writer.info()["vectors"] == 13
    with Collection.open(photos, runtime) as again:
        again.index()
        assert again.info()["indexed"] == again.info()["vectors"] == 13
        assert len(again.search_text("a photo", top=50, rerank_k=0)) == 13


def _break(index_dir, sql: str) -> None:
    conn = sqlite3.connect(index_dir / "catalog.sqlite")
    conn.execute(sql)
    conn.commit()
    conn.close()


@pytest.mark.parametrize("damage", [
    "overwrite page 2",
    "overwrite 16 bytes of the header",
    "UPDATE meta SET value = '-5' WHERE key = 'next_row'",
    "UPDATE files SET vec_row = -1 WHERE id = (SELECT MIN(id) FROM files)",
    "UPDATE files SET vec_row = 100000 WHERE id = (SELECT MIN(id) FROM files)",
    "UPDATE files SET status = 'maybe' WHERE id = (SELECT MIN(id) FROM files)",
    "UPDATE files SET vec_row = NULL WHERE id = (SELECT MAX(id) FROM files)",
    "UPDATE files SET vec_row = 'x' WHERE id = (SELECT MAX(id) FROM files)",
    "UPDATE files SET vec_row = 0",
])
def test_a_damaged_catalog_is_moved_aside_and_rebuilt(photos, runtime, damage):
    with Collection.open(photos, runtime, batch_size=3) as col:
        col.index()
    expected = searchable(photos, runtime)
    index_dir = photos / ".sfe-index"
    if damage.startswith("overwrite"):
        with open(index_dir / "catalog.sqlite", "r+b") as f:
            page = 4096
            f.seek(page if "page 2" in damage else 0)
            f.write(b"\xff" * (page if "page 2" in damage else 16))
    else:
        _break(index_dir, damage)
    with Collection.open(photos, runtime, batch_size=3) as col:   # a small catalog: every check on open
        notice = col.notice
        assert notice is not None and "damaged" in notice and "\n" not in notice
        summary = col.index()
        assert summary.indexed == 8 and col.info()["indexed"] == col.info()["vectors"] == 8
    assert "moved to" in notice and "rebuilds it from the photos" in notice
    aside = [p for p in photos.iterdir() if p.name.startswith(".sfe-index.damaged-")]
    assert len(aside) == 1 and (aside[0] / "catalog.sqlite").is_file()  # kept for inspection, never deleted
    assert searchable(photos, runtime) == expected                         # the same vectors as before


def test_a_damaged_read_only_index_says_where_to_index_instead(photos, runtime, monkeypatch):
    with Collection.open(photos, runtime) as col:
        col.index()
    _break(photos / ".sfe-index", "UPDATE meta SET value = '-5' WHERE key = 'next_row'")
    import sfe_desktop.settings as settings

    monkeypatch.setattr(settings, "writable", lambda d: False)
    with pytest.raises(IndexDamagedError, match="read-only.*--index-dir"):
        Collection.open(photos, runtime)


def test_a_read_only_folder_with_a_complete_index_is_searched_as_it_is(photos, runtime):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere: a read-only folder cannot be made")
    with Collection.open(photos, runtime) as col:
        col.index()
        before = [r.path for r in col.search_text("a photo", top=8, rerank_k=0)]
    modes = {p: p.stat().st_mode for p in [photos, photos / ".sfe-index", *(photos / ".sfe-index").iterdir()]}
    try:
        for p, mode in modes.items():
            os.chmod(p, stat.S_IMODE(mode) & ~0o222)
        with Collection.open(photos, runtime) as col:
            assert col.read_only and col.state.index_dir == photos / ".sfe-index"
            assert [r.path for r in col.search_text("a photo", top=8, rerank_k=0)] == before
            with pytest.raises(IndexStateError, match="read-only"):
                col.index()
    finally:
        for p, mode in modes.items():
            os.chmod(p, mode)


def test_a_read_only_catalog_connection_is_searched_as_it_is(photos, runtime, monkeypatch):
    """The same with the folder reported read-only (as root, where chmod does not stop writes)."""
    with Collection.open(photos, runtime) as col:
        col.index()
        before = [r.path for r in col.search_text("a photo", top=8, rerank_k=0)]
    import sfe_desktop.settings as settings

    monkeypatch.setattr(settings, "writable", lambda d: False)
    assert settings.default_index_dir(photos) == photos / ".sfe-index"
    stamp = os.stat(photos / ".sfe-index" / "catalog.sqlite").st_mtime_ns
    with Collection.open(photos, runtime) as col:
        assert col.read_only and col.info()["read_only"]
        assert [r.path for r in col.search_text("a photo", top=8, rerank_k=0)] == before
        with pytest.raises(IndexStateError, match="read-only"):
            col.index()
    assert os.stat(photos / ".sfe-index" / "catalog.sqlite").st_mtime_ns == stamp


def test_the_index_folder_deleted_during_a_run_is_a_one_line_error(photos, runtime, monkeypatch):
    import shutil

    from sfe_desktop.search import state as state_mod

    real_append = state_mod.IndexState.append
    calls = []

    def append(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            while self.index_dir.exists():  # the thumbnail writer may add a file while rmtree walks the folder
                shutil.rmtree(self.index_dir, ignore_errors=True)
        return real_append(self, *args, **kwargs)

    monkeypatch.setattr(state_mod.IndexState, "append", append)
    with Collection.open(photos, runtime, batch_size=2) as col:
        with pytest.raises(IndexStateError) as err:
            col.index()
    message = str(err.value)
    assert "\n" not in message and str(photos / ".sfe-index") in message
    assert not (photos / ".sfe-index" / "vectors.faiss").exists()  # closing wrote no vectors into a new folder
    monkeypatch.undo()
    with Collection.open(photos, runtime) as col:   # a new folder, built again from the photos
        assert col.index().indexed == 8


def test_a_file_size_limit_is_a_one_line_error(photos, runtime, monkeypatch):
    import errno

    from sfe_desktop.index import store as store_mod

    def write(self, start, data):
        raise OSError(errno.EFBIG, "File too large")

    monkeypatch.setattr(store_mod._RowFile, "write", write)
    with Collection.open(photos, runtime) as col:
        with pytest.raises(IndexStateError, match=r"File too large: the file-size limit \(ulimit -f\) was reached"):
            col.index()


_SLOW_INDEX = """
import sys, time
from sfe_desktop.model.runtime import tiny_runtime
from sfe_desktop.search import Collection
rt = tiny_runtime(0)
real = rt.encode_images
def slow(batch):
    time.sleep(0.05)
    return real(batch)
rt.encode_images = slow
with Collection.open(sys.argv[1], rt, batch_size=1, workers=1) as col:
    col.index()
"""


def test_kill_9_during_index_runs_loses_nothing(photos, runtime, tmp_path):
    """An index process killed (SIGKILL) in the middle of its runs, twice: the next run finishes and the index
    equals a fresh one, photo for photo and vector for vector."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import sfe_desktop

    for i in range(6):
        make_image(photos / f"more{i}.jpg", 200 + i)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(sfe_desktop.__file__).parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    catalog = photos / ".sfe-index" / "catalog.sqlite"
    for target in (2, 7):   # photos stored before the kill
        proc = subprocess.Popen([sys.executable, "-c", _SLOW_INDEX, str(photos)], env=env)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                if catalog.exists():
                    with sqlite3.connect(f"file:{catalog}?mode=ro", uri=True) as conn:
                        try:
                            done = conn.execute("SELECT COUNT(*) FROM files WHERE status = 'ok'").fetchone()[0]
                        except sqlite3.OperationalError:
                            done = 0
                    if done >= target:
                        break
                time.sleep(0.01)
            assert proc.poll() is None, "the index run ended before it could be killed"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    with Collection.open(photos, runtime, batch_size=1) as col:   # batches of one, as the killed runs
        summary = col.index()
        assert 0 < summary.indexed < 14 and col.info()["indexed"] == col.info()["vectors"] == 14
    with Collection.open(photos, runtime, tmp_path / "fresh", batch_size=1) as col:
        col.index()
    kept, fresh = searchable(photos, runtime), searchable(photos, runtime, index_dir=tmp_path / "fresh")
    assert sorted(kept) == sorted(fresh)   # the same photos, each with its own vector (encoded in another process:
    for path, vector in fresh.items():     # equal up to float rounding of its thread count, which the centred
        # bridge's normalisation magnifies by up to 1 / 0.03 for the tiny model's nearly flat class probabilities)
        np.testing.assert_allclose(kept[path], vector, rtol=0, atol=1e-5)


def test_damage_only_the_full_check_sees_is_found_at_the_start_of_a_run(photos, runtime, monkeypatch):
    """A large catalog gets only the range checks on open; the run's full check finds the rest, moves the folder
    aside under the run's lock and rebuilds it in the same run."""
    from sfe_desktop.search import state as state_mod

    with Collection.open(photos, runtime, batch_size=3) as col:
        col.index()
    expected = searchable(photos, runtime)
    _break(photos / ".sfe-index", "UPDATE files SET vec_row = 0")     # every photo serves the first's vector
    monkeypatch.setattr(state_mod, "FULL_CHECK_BYTES", 0)
    with Collection.open(photos, runtime, batch_size=3) as col:
        assert col.notice is None
        summary = col.index()
        assert "photos of different content share vector row 0" in col.notice and "moved to" in col.notice
        assert summary.indexed == 8 and col.info()["indexed"] == col.info()["vectors"] == 8
        assert len(col.search_text("a photo", top=20, rerank_k=0)) == 8
    assert len([p for p in photos.iterdir() if p.name.startswith(".sfe-index.damaged-")]) == 1
    assert searchable(photos, runtime) == expected


_LIMITED_INDEX = """
import resource, sys
from sfe_desktop.model.runtime import SFERuntime, tiny_runtime
rt = tiny_runtime(0)
SFERuntime.load = classmethod(lambda cls, checkpoint=None, device="auto": rt)
from sfe_desktop import cli
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
sys.exit(cli.main(["index", sys.argv[1], "-q", "--batch-size", "4"]))
"""


@pytest.mark.skipif(os.name != "posix", reason="ulimit -f is POSIX")
def test_a_real_file_size_limit_is_a_one_line_error(photos, runtime):
    """``ulimit -f`` in a child process: whichever file reaches the limit first (SQLite's log or a row file), the
    run ends with one line naming the limit, and a run without the limit finishes the index."""
    import subprocess
    import sys
    from pathlib import Path

    import sfe_desktop

    for i in range(40):
        make_image(photos / f"more{i}.jpg", 300 + i)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(sfe_desktop.__file__).parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _LIMITED_INDEX, str(photos)], env=env, capture_output=True,
                          text=True, timeout=300)
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1 and err[0].startswith("error: "), done.stderr[-2000:]
    assert "file-size limit (ulimit -f)" in err[0]
    with Collection.open(photos, runtime) as col:
        col.index()
        assert col.info()["indexed"] == col.info()["vectors"] == 48
