"""The patch codec (4-bit codes, float16 offset and step per group) and the store's two patch formats: the codec
round-trips within its bound, an index written before the codec (``patches.f16``) opens and searches as before and
is rewritten by its next compaction (crash-safe), and an index made with the codec ranks like float16."""
from __future__ import annotations

import numpy as np
import pytest
from collection_fixtures import data_dir, make_image, photos, runtime  # noqa: F401

import sfe_desktop.index.store as store_module
from sfe_desktop.index.codec import PatchCodec, patch_codec
from sfe_desktop.model.features import ImageFeatures
from sfe_desktop.search import Collection
from sfe_desktop.train.evaluate import stored_patches

QUERIES = ["a red dog", "the cat is blue", "a white boat near a tree", "black ball"]
SCORE_TOL = 0.1  # largest change of a photo's final score allowed by the codec on the tiny model (0.05 seen)


def sample(seed: int, n: int = 6, n_patches: int = 5, dim: int = 64) -> np.ndarray:
    """Patches of very different scales: per-photo, per-patch and per-dimension, plus constant and zero groups."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, n_patches, dim)) * rng.uniform(0.01, 50, (n, 1, 1)) * rng.uniform(0.1, 3, (1, 1, dim))
    x[0, 0] = 0.0
    x[0, 1] = 2.5
    x[1, 2] += 100.0
    return x.astype(np.float16)


def naive_roundtrip(x: np.ndarray, group: int) -> np.ndarray:
    """Reference: one group at a time in float64 (offset = min rounded down to float16, step rounded up)."""
    out = np.zeros(x.shape)
    for idx in np.ndindex(*x.shape[:-1]):
        for a in range(0, x.shape[-1], group):
            v = x[idx][a:a + group].astype(np.float64)
            off = np.float16(v.min())
            if float(off) > v.min():
                off = np.nextafter(off, np.float16(-np.inf))
            step = np.float16((v.max() - float(off)) / 15)
            if float(off) + 15 * float(step) < v.max():
                step = np.nextafter(step, np.float16(np.inf))
            q = np.clip(np.rint((v - float(off)) / float(step)), 0, 15) if step > 0 else np.zeros(group)
            out[idx][a:a + group] = float(off) + q * float(step)
    return out


@pytest.mark.parametrize("group", [16, 64])
def test_codec_round_trips_within_its_bound(group):
    codec = PatchCodec(5, 64, group)
    x = sample(group)
    rows = codec.encode(x)
    assert rows.shape == (len(x), codec.row_bytes) and rows.dtype == np.uint8
    assert codec.row_bytes == 5 * 64 // 2 + 5 * (64 // group) * 4
    y = codec.decode(rows)
    err, bound = np.abs(y - x.astype(np.float32)), codec.max_abs_error(rows)
    assert (err <= bound + 1e-6 * np.abs(x.astype(np.float32))).all()
    assert (err / np.maximum(bound, 1e-30)).max() > 0.8  # the bound is not slack
    assert np.array_equal(y[0, 0], np.zeros(64)) and np.array_equal(y[0, 1], np.full(64, 2.5))  # exact
    assert np.allclose(y, naive_roundtrip(x, group), rtol=0, atol=1e-5 * np.abs(x).max())
    assert np.array_equal(codec.encode(y), rows)  # decoded values encode to the same bytes
    assert np.array_equal(codec.roundtrip(x, chunk=4), y)


def test_the_default_models_patches_fit_12_kb_and_odd_widths_keep_float16():
    codec = patch_codec(81, 256)
    assert codec.group == 64 and codec.row_bytes == 11_664 <= 12_288 < 81 * 256 * 2
    assert patch_codec(16, 32).group == 32 and patch_codec(4, 96).group == 48
    assert patch_codec(4, 9) is None
    with pytest.raises(ValueError):
        PatchCodec(4, 30, 4)


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e6])
def test_codec_refuses_what_it_cannot_bound(bad):
    x = np.zeros((1, 5, 64), np.float32)
    x[0, 3, 7] = bad
    with pytest.raises(ValueError, match="finite"):
        PatchCodec(5, 64).encode(x)


def search(col: Collection) -> dict:
    return {q: [(h.path, h.score) for h in col.search_text(q, top=10)] for q in QUERIES}


def index_float16(root, rt, monkeypatch, index_dir=None) -> dict:
    """Index ``root`` as a version before the codec did (``patches.f16``); its searches."""
    with monkeypatch.context() as m:
        m.setattr(store_module, "patch_codec", lambda *a, **k: None)
        with Collection.open(root, rt, index_dir) as col:
            col.index()
            assert col.store.codec is None
            return search(col)


def close_rankings(a: dict, b: dict, tol: float = SCORE_TOL) -> bool:
    """Per query: each photo's score moves by at most ``tol``, so a photo enters the top 10 only when its float16
    score was within ``2 tol`` of the 10th, and two photos swap only when their float16 scores were within ``2 tol``."""
    for q in a:
        fa, fb = dict(a[q]), dict(b[q])
        if any(abs(fa[p] - s) > tol for p, s in fb.items() if p in fa):
            return False
        if len(set(fa) & set(fb)) < len(fa) - 1:  # at most one photo changes at the edge of 10
            return False
        order = [p for p, _ in b[q] if p in fa]
        if any(fa[x] < fa[y] - 2 * tol for i, x in enumerate(order) for y in order[i + 1:]):
            return False
    return True


def test_an_old_float16_index_searches_the_same_then_migrates(photos, runtime, monkeypatch):
    before = index_float16(photos, runtime, monkeypatch)
    index_dir = photos / ".sfe-index"
    old = (index_dir / "patches.f16").read_bytes()
    with Collection.open(photos, runtime) as col:  # this version: reads patches.f16 as it is
        assert col.store.legacy and not (index_dir / "patches.q4").exists()
        assert search(col) == before
        summary = col.index()  # nothing to encode; the compaction at its end rewrites the patches
        assert summary.indexed == 0 and not col.store.legacy
        after = search(col)
    assert not (index_dir / "patches.f16").exists() and not list(index_dir.glob("*.compact"))
    rows = len(old) // (runtime.grid[0] * runtime.grid[1] * runtime.dim * 2)
    assert (index_dir / "patches.q4").stat().st_size == rows * patch_codec(16, runtime.dim).row_bytes
    assert close_rankings(before, after)
    with Collection.open(photos, runtime) as col:
        assert search(col) == after


@pytest.mark.parametrize("killed", ["before the catalog changed", "after the catalog changed"])
def test_a_migration_killed_half_way_is_discarded_or_finished(photos, runtime, monkeypatch, killed):
    before = index_float16(photos, runtime, monkeypatch)
    index_dir = photos / ".sfe-index"
    with Collection.open(photos, runtime) as col, col.state.writing():
        live = np.unique([r for _, r in col.catalog.live()])
        col.store.write_compacted(live)  # the compaction's first step, then "die"
        assert (index_dir / "patches.q4.compact").exists()
        if killed == "after the catalog changed":
            col.catalog.renumber_rows({int(o): n for n, o in enumerate(live)}, {"next_row": len(live), "compacting": 1})
    with Collection.open(photos, runtime) as col:  # open repairs
        assert not list(index_dir.glob("*.compact"))
        if killed == "before the catalog changed":
            assert col.store.legacy and search(col) == before
        else:
            assert not col.store.legacy and not (index_dir / "patches.f16").exists()
            assert close_rankings(before, search(col))


def test_a_collection_indexed_with_the_codec_ranks_like_float16(tmp_path, runtime, monkeypatch):
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(16):
        make_image(root / f"p{i:02d}.jpg", 100 + i)
    float16 = index_float16(root, runtime, monkeypatch, tmp_path / "f16")
    with Collection.open(root, runtime, tmp_path / "q4") as col:
        col.index()
        assert col.store.codec is not None and not col.store.legacy
        coded = search(col)
    assert (tmp_path / "q4" / "patches.q4").exists() and not (tmp_path / "q4" / "patches.f16").exists()
    assert close_rankings(float16, coded)
    assert any(dict(float16[q]) != dict(coded[q]) for q in QUERIES)  # the patches were coded (scores moved)


def test_evaluate_reads_patches_as_the_index_stores_them():
    images = ImageFeatures(np.ones((6, 4), np.float32), sample(3))
    codec = patch_codec(5, 64)
    assert np.array_equal(stored_patches(images).patches, codec.decode(codec.encode(images.patches)))
    assert stored_patches(images, "float16") is images
    odd = ImageFeatures(np.ones((2, 4), np.float32), np.ones((2, 5, 9), np.float16))
    assert stored_patches(odd) is odd  # no codec for an odd width: the store keeps float16
    with pytest.raises(ValueError):
        stored_patches(images, "int8")
