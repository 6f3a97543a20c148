"""Any sequence of file changes between index runs gives the index a fresh run would build (Hypothesis).

Random rounds of create / modify / touch / delete / rename / swap / rotate (3-cycle) / copy / truncate, in the
folder and in and out of subfolders, each round followed by an incremental index run: with files just written
(which a run hashes again) or with old modification times (which it trusts when size and inode match too). After
each run the incremental index must equal a fresh index of the same folder: the same catalog rows (status, reason,
hash, metadata), bit-identical vectors, the same sidecar captions, faiss holding exactly the indexed files, and the
same top 20 for a few queries.
"""
from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import numpy as np
from collection_fixtures import make_image
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sfe_desktop.model.runtime import tiny_runtime
from sfe_desktop.search import Collection

NAMES = ["a.png", "b.png", "c.jpg", "sub/d.png", "sub/e.jpg", "sub/deep/f.png", "g.png"]
QUERIES = ["a red dog", "the blue house", "cat"]
RUNTIME = tiny_runtime(0)
PICK = st.integers(0, 50)  # which existing file (modulo their number)
OPS = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(NAMES), st.integers(0, 12), st.booleans()),
    st.tuples(st.just("modify"), PICK, st.integers(0, 12)),
    st.tuples(st.just("touch"), PICK),
    st.tuples(st.just("delete"), PICK),
    st.tuples(st.just("rename"), PICK, st.sampled_from(NAMES)),
    st.tuples(st.just("swap"), PICK, PICK),
    st.tuples(st.just("rotate"), PICK, PICK, PICK),
    st.tuples(st.just("copy"), PICK, st.sampled_from(NAMES)),
    st.tuples(st.just("truncate"), PICK, st.integers(0, 3)),
)


_CLOCK = itertools.count()


def written(path: Path, backdate: bool) -> None:
    """After a write: with ``backdate``, a modification time of its own, years ago, so that the next run trusts
    size, mtime and inode (the fast path) instead of hashing a file modified around its scan."""
    if backdate:
        t = (1_500_000_000 + next(_CLOCK)) * 1_000_000_000
        os.utime(path, ns=(t, t))


def photo(root: Path, name: str, seed: int, sidecar: bool = False, backdate: bool = False) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    make_image(path, seed, size=(40 + seed % 3 * 8, 32), fmt="PNG")  # a few seeds give the same bytes: copies
    written(path, backdate)
    if sidecar:
        path.with_name(path.name + ".txt").write_text(f"a photo of thing {seed}\n", encoding="utf-8")


def present(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.suffix in (".png", ".jpg")
                  and ".sfe-index" not in p.parts and not p.name.startswith("."))


def apply(root: Path, op: tuple, backdate: bool) -> None:
    files = present(root)
    kind, *args = op
    if kind == "create":
        photo(root, args[0], args[1], args[2], backdate)
        return
    if not files:
        return
    at = [root / files[i % len(files)] for i in args if isinstance(i, int) and not isinstance(i, bool)]
    if kind == "modify":
        photo(root, files[args[0] % len(files)], args[1], backdate=backdate)
    elif kind == "touch":
        st_ = at[0].stat()
        os.utime(at[0], ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000_000))
    elif kind == "delete":
        at[0].unlink()
    elif kind in ("rename", "copy"):
        target = root / args[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        if target != at[0]:
            (os.rename if kind == "rename" else shutil.copyfile)(at[0], target)
            if kind == "copy":
                written(target, backdate)
    elif kind == "swap" and at[0] != at[1]:
        tmp = root / "swap.tmp"
        os.rename(at[0], tmp)
        os.rename(at[1], at[0])
        os.rename(tmp, at[1])
    elif kind == "rotate" and len({*at}) == 3:
        a, b, c = at
        tmp = root / "rotate.tmp"
        os.rename(c, tmp)
        os.rename(b, c)
        os.rename(a, b)
        os.rename(tmp, a)
    elif kind == "truncate":
        os.truncate(at[0], at[0].stat().st_size * args[1] // 4)
        written(at[0], backdate)


def same_results(a: dict, b: dict) -> bool:
    """Searches of two indexes agree: the same paths in the same order, scores within 1e-4 relative (the fused
    score divides by small spreads, which makes float32 rounding of the query's novelty visible)."""
    return a.keys() == b.keys() and all(
        [p for p, _ in a[q]] == [p for p, _ in b[q]]
        and np.allclose([s for _, s in a[q]], [s for _, s in b[q]], rtol=1e-4, atol=1e-4) for q in a)


def snapshot(col: Collection) -> dict:
    """What an index holds, independent of row ids and vector row numbers."""
    rows = col.catalog.files()
    ok = {p: r for p, r in rows.items() if r.status == "ok"}
    ordered = sorted(ok)
    vec = np.asarray([ok[p].vec_row for p in ordered], dtype=np.int64)
    glob = col.store.read_globals(vec) if len(vec) else np.zeros((0, col.runtime.dim), np.float32)
    patches = col.store.read_patches(vec) if len(vec) else None
    faiss_ids = sorted(col.state.vindex.ids().tolist())
    assert faiss_ids == sorted(r.id for r in ok.values()), "faiss holds exactly the indexed files"
    return {
        "rows": {p: (r.status, r.reason, r.hash, r.size, r.mtime_ns, r.ino, r.width, r.height, r.date_taken)
                 for p, r in rows.items()},
        "globals": dict(zip(ordered, glob.tolist())),
        "patches": dict(zip(ordered, patches.tolist())) if patches is not None else {},
        "captions": sorted(t for t in col.catalog.captions() if t[1].startswith("sidecar:")),
        "search": {q: [(r.path, r.score) for r in col.search_text(q, top=20)] for q in QUERIES} if ok else {},
    }


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@example(start=[("a.png", 0, False)], rounds=[[("truncate", 0, 0)], [("touch", 0)]], backdate=False)  # found by it
@example(start=[("a.png", 0, False)], rounds=[[("create", "a.png", 0, True)]], backdate=False)  # found by it too
@example(start=[("a.png", 0, False)], rounds=[[("truncate", 0, 1)]], backdate=False)  # a batch with nothing to encode
@example(start=[("sub/deep/f.png", 0, False), ("a.png", 0, True)],  # a sidecar appears next to a photo that
         rounds=[[("rename", 1, "a.png"), ("create", "sub/deep/f.png", 11, True), ("swap", 1, 0)]],  # comes back
         backdate=False)                                                                        # unchanged
@given(start=st.lists(st.tuples(st.sampled_from(NAMES), st.integers(0, 12), st.booleans()), min_size=2, max_size=5),
       rounds=st.lists(st.lists(OPS, min_size=1, max_size=6), min_size=1, max_size=3), backdate=st.booleans())
def test_any_change_sequence_equals_a_fresh_index(tmp_path_factory, start, rounds, backdate):
    base = tmp_path_factory.mktemp("prop")
    root = base / "photos"
    root.mkdir()
    for name, seed, sidecar in start:
        photo(root, name, seed, sidecar, backdate)
    with Collection.open(root, RUNTIME, batch_size=1, workers=2) as col:
        col.index()
    for n, ops in enumerate(rounds):
        for op in ops:
            apply(root, op, backdate)
        with Collection.open(root, RUNTIME, batch_size=1, workers=2) as col:
            col.index()
            incremental = snapshot(col)
        with Collection.open(root, RUNTIME, base / f"fresh{n}", batch_size=1, workers=2) as col:
            col.index()
            fresh = snapshot(col)
        assert set(incremental["rows"]) == {p.encode() for p in present(root)}
        for key in fresh:
            if key == "search":  # same photos in the same order; fused scores equal to float32 rounding
                assert same_results(incremental[key], fresh[key]), f"{key} differs after round {n}: {ops}"
            else:
                assert incremental[key] == fresh[key], f"{key} differs after round {n}: {ops}"


def test_the_issues_rotation_and_swap_of_look_alike_files(tmp_path):
    """The two sequences of issue 12, with files of one size and one modification time (only the inode tells
    them apart): a rotation of three names, then a swap of two; nothing is encoded again, nothing removed, and
    every path serves its own photo's vector."""
    root = tmp_path / "photos"
    root.mkdir()
    for name, seed in (("a.bmp", 1), ("b.bmp", 2), ("c.bmp", 3)):
        make_image(root / name, seed, size=(40, 32), fmt="BMP")   # BMP: the same size in bytes for each
        os.utime(root / name, ns=(1_500_000_000 * 10**9,) * 2)
    with Collection.open(root, RUNTIME) as col:
        col.index()
    expected = snapshot_by_content(root)
    rotation = (("c", "t"), ("b", "c"), ("a", "b"), ("t", "a"))
    swap = (("a", "t"), ("b", "a"), ("t", "b"))
    for moves, reused in ((rotation, 3), (swap, 2)):
        for src, dst in moves:
            os.rename(root / f"{src}.bmp", root / f"{dst}.bmp")
        with Collection.open(root, RUNTIME) as col:
            summary = col.index()
            assert (summary.indexed, summary.reused, summary.removed) == (0, reused, 0)
            assert col.info()["indexed"] == col.info()["vectors"] == 3
            assert snapshot_by_content(root, col) == expected


def snapshot_by_content(root: Path, col: Collection | None = None) -> dict:
    """content bytes -> stored global vector: what each photo serves, wherever it now lives."""
    if col is None:
        with Collection.open(root, RUNTIME) as col:
            return snapshot_by_content(root, col)
    rows = col.catalog.files()
    out = {}
    for path, row in rows.items():
        vector = col.store.read_globals(np.array([row.vec_row], dtype=np.int64))[0]
        out[(root / path.decode()).read_bytes()] = vector.tolist()
    return out


def test_a_sidecar_added_or_edited_later_is_read(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    photo(root, "a.png", 1, backdate=True)
    with Collection.open(root, RUNTIME) as col:
        col.index()
        assert col.catalog.captions() == []
    (root / "a.png.txt").write_text("a red kite\n", encoding="utf-8")
    with Collection.open(root, RUNTIME) as col:
        assert col.index().indexed == 0
        assert col.catalog.captions() == [("a red kite", "sidecar:a.png")]
    (root / "a.png.txt").write_text("a blue kite\n", encoding="utf-8")
    with Collection.open(root, RUNTIME) as col:
        col.index()
        assert col.catalog.captions() == [("a blue kite", "sidecar:a.png")]
    (root / "a.png.txt").unlink()
    with Collection.open(root, RUNTIME) as col:
        col.index()
        assert col.catalog.captions() == []
