"""Retrieval in the three directions, ordering, stability, captions and explanations."""
from __future__ import annotations

import numpy as np
import pytest
from collection_fixtures import data_dir, make_image, photos, runtime  # noqa: F401

from sfe_desktop.errors import SFEError
from sfe_desktop.search import Collection, Result


@pytest.fixture
def col(photos, runtime):
    (photos / "p0.txt").write_text("my grandmother's purple bicycle\n")
    with Collection.open(photos, runtime) as c:
        c.index()
        yield c


def test_text_search_is_ordered_and_stable(col):
    first = col.search_text("a red dog", top=5)
    assert [r.rank for r in first] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for a, b in zip(first, first[1:]))
    assert first == col.search_text("a red dog", top=5)
    assert all(r.direction == "text->image" and r.query == "a red dog" and r.width == 64 for r in first)
    step1 = col.search_text("a red dog", top=8, rerank_k=0)
    assert all(r.score == r.step1 for r in step1)
    assert all(a.step1 >= b.step1 for a, b in zip(step1, step1[1:]))
    assert {r.path for r in step1} == {r.path for r in col.search_text("a red dog", top=8, rerank_k=8)}
    partial = col.search_text("a red dog", top=8, rerank_k=3)
    assert len(partial) == 8 and len({r.path for r in partial}) == 8


def test_date_taken_from_exif(col, photos):
    hit = [r for r in col.search_text("x", top=8, rerank_k=0) if r.path == str(photos / "p2.jpg")][0]
    assert hit.date_taken == "2021-07-03T10:11:12"


def test_empty_query_is_an_error(col):
    with pytest.raises(SFEError):
        col.search_text("   ")


def test_image_to_texts_uses_corpus_user_and_sidecar_captions(col, photos, tmp_path):
    captions = col.search_image(photos / "p1.jpg", top=5)
    assert len(captions) == 5 and all(r.caption and r.path is None for r in captions)
    assert all(a.score >= b.score for a, b in zip(captions, captions[1:]))
    f = tmp_path / "mine.csv"
    f.write_text("caption\nzebra crossing at night\n=cmd\n", encoding="utf-8")
    assert col.add_captions(f) == 2
    assert col.add_captions(f) == 0
    everything = {r.caption for r in col.search_image(photos / "p1.jpg", top=1000)}
    assert {"zebra crossing at night", "my grandmother's purple bicycle"} <= everything


def test_similar_inside_and_outside(col, photos, tmp_path):
    inside = col.similar(photos / "p3.jpg", top=3)
    assert len(inside) == 3 and str(photos / "p3.jpg") not in {r.path for r in inside}
    outside = tmp_path / "query.jpg"
    outside.write_bytes((photos / "p3.jpg").read_bytes())
    hits = col.similar(outside, top=1)
    assert hits[0].path == str(photos / "p3.jpg") and hits[0].score > 0.999
    assert hits[0].step1 == pytest.approx(1.0, abs=1e-3)  # the copy: the model's cosine, as alike as can be


def test_similar_photos_are_ranked_by_the_models_cosine_which_the_app_shows(col, photos):
    """Each result carries the two photos' cosine, which the app shows as how alike they are (the same the comparison
    panel gives), and the results come most alike first by it (the fused score, with the bridge weighed in, had put
    a 16 % photo above a 24 % one)."""
    from sfe_desktop.qt.models.results_model import badge, match_line

    hits = col.similar(photos / "p3.jpg", top=5)
    assert [r.step1 for r in hits] == sorted((r.step1 for r in hits), reverse=True)
    for r in hits:
        assert r.step1 == pytest.approx(col.compare(r).cosine, abs=1e-4)
        assert badge(r) == f"{max(r.step1, 0):.0%}" and match_line(r).startswith(f"{max(r.step1, 0):.0%} alike")


def test_similar_photos_are_compared(col, photos, tmp_path):
    """A copy of a photo compares as the same photo (cosine 1, every class it shows shared); another photo compares
    by a lower cosine, the model's own (the fused search score is in other units; the tiny random model's photos
    are all alike)."""
    copy = tmp_path / "copy.jpg"
    copy.write_bytes((photos / "p3.jpg").read_bytes())
    same = col.compare(col.similar(copy, top=1)[0])
    assert same.cosine == pytest.approx(1.0, abs=1e-3) and same.query_classes == same.result_classes
    assert [c.name for c in same.shared] == [c.name for c in same.query_classes if c.weight >= 0.02][:5]
    assert same.shared and same.grid == tuple(col.runtime.grid)  # where each shows the first shared class
    assert same.query_map.shape == (same.grid[0] * same.grid[1],) and abs(float(same.query_map.sum()) - 1) < 1e-5
    np.testing.assert_allclose(same.query_map, same.result_map, atol=1e-5)
    where = same.to_dict()["where"]
    assert where["class"] == same.shared[0].name and len(where["query"]) == len(same.query_map)
    other = col.compare(col.similar(photos / "p3.jpg", top=1)[0])
    assert -1.0 <= other.cosine < same.cosine
    assert set(other.to_dict()) == {"cosine", "shared", "query_classes", "result_classes"} | (
        {"where"} if other.shared else set())
    with pytest.raises(SFEError, match="similar-photos"):
        col.compare(col.search_text("a blue car", top=1)[0])


def test_explain_without_new_search(col, photos, monkeypatch):
    result = col.search_text("a blue car", top=1)[0]
    calls = []
    monkeypatch.setattr(col.runtime, "encode_texts", lambda t: calls.append(t))  # must not be needed
    e = col.explain(result)
    assert not calls
    assert e.grid == col.runtime.grid and e.attention.shape[1] == col.runtime.grid[0] * col.runtime.grid[1]
    monkeypatch.undo()
    cap = col.search_image(photos / "p0.jpg", top=1)[0]
    assert col.explain(cap).words
    with pytest.raises(SFEError):
        col.explain(Result(1, 1.0, 1.0, "image->image", "q", path=str(photos / "p1.jpg")))


def test_explained_photo_is_named_in_the_explanation(col, photos):
    """The explanation names the explained photo's file, and so does its graph node (the GUI opens it on click)."""
    hit = col.search_text("a blue car", top=1)[0]
    e = col.explain(hit)
    node = e.neighbours.node("result")
    assert e.photo == hit.path and node.kind == "image" and node.path == hit.path and node.label == "result photo"
    query = photos / "p0.jpg"
    cap = col.search_image(query, top=1)[0]
    e = col.explain(cap)
    node = e.neighbours.node("result")  # image->text: the image side of the pair is the query photo
    assert e.photo == str(query) and node.path == str(query) and node.label == "query photo"
    assert all(n.path is None for n in e.neighbours.nodes if n.id != "result")


def test_thumbnails_cached(col, photos):
    thumb = col.thumbnail(photos / "p0.jpg")
    assert thumb is not None and thumb.is_file() and thumb.suffix == ".jpg"


def test_date_taken_falls_back_to_the_file_time_and_says_so(col, photos):
    import os

    from sfe_desktop.catalog.metadata import file_time

    hits = {r.path: r for r in col.search_text("x", top=8, rerank_k=0)}
    exif = hits[str(photos / "p2.jpg")]
    assert (exif.date_taken, exif.date_source) == ("2021-07-03T10:11:12", "exif")
    no_exif = hits[str(photos / "trip" / "a.png")]
    assert no_exif.date_source == "file"
    assert no_exif.date_taken == file_time(os.stat(photos / "trip" / "a.png").st_mtime_ns)


def test_library_lists_every_photo_newest_first_then_by_name(col, photos):
    import os

    os.utime(photos / "trip" / "a.png", ns=(0, 2_000_000_000_000_000_000))  # 2033: newer than every EXIF date
    os.utime(photos / "trip" / "b.webp", ns=(0, 1_000_000_000_000_000_000))  # 2001: older than them
    col.index()
    library = col.library()
    names = [os.path.relpath(r.path, photos) for r in library]
    assert names == ["trip/a.png", "p5.jpg", "p4.jpg", "p3.jpg", "p2.jpg", "p1.jpg", "p0.jpg", "trip/b.webp"]
    assert [r.rank for r in library] == list(range(1, 9))
    assert all(r.direction == "library" and r.query == "" for r in library)
    same_day = [r for r in library if r.date_source == "exif"]
    assert [r.date_taken for r in same_day] == sorted((r.date_taken for r in same_day), reverse=True)


def test_photo_to_caption_vectors_are_cached_on_disk_per_checkpoint(col, photos, monkeypatch, data_dir):
    """A runtime loaded from a checkpoint folder computes the corpus vectors once; a new process (a new
    collection here) reads them from the cache, keyed by the checkpoint's hash; a damaged file is recomputed."""
    import numpy as np

    from sfe_desktop.search.corpus_cache import cache_files

    runtime = col.runtime
    monkeypatch.setattr(runtime, "source", photos, raising=False)
    computed = runtime.caption_corpus()
    calls = []
    monkeypatch.setattr(runtime, "caption_corpus", lambda progress=None, cancel=None: calls.append(1) or computed)
    first = Collection.open(photos, runtime)
    try:
        ranked = first.search_image(photos / "p1.jpg", top=5)
    finally:
        first.close()
    texts_file, vectors_file = cache_files(runtime.checkpoint_id)
    assert calls == [1] and texts_file.parent == data_dir / "cache" and vectors_file.is_file()
    assert np.array_equal(np.load(vectors_file), computed[1])
    second = Collection.open(photos, runtime)
    try:
        assert second.search_image(photos / "p1.jpg", top=5) == ranked and calls == [1]  # read, not computed
        vectors_file.write_bytes(b"garbage")
        third = Collection.open(photos, runtime)
        assert third.search_image(photos / "p1.jpg", top=5) == ranked and calls == [1, 1]
        third.close()
    finally:
        second.close()
    monkeypatch.setattr(runtime, "checkpoint_id", "another-checkpoint")
    assert cache_files("another-checkpoint") != (texts_file, vectors_file)


@pytest.mark.parametrize("direction", ["text", "image"])
def test_a_rescored_result_keeps_the_fusions_share_of_its_step1_score(col, photos, runtime, monkeypatch, direction):
    """A re-scored candidate's score is its fused Step-2 score plus ``step1_keep`` times its fused Step-1 score:
    with a large share the re-scored order is the Step-1 order, and the score grows by the share's part."""
    from dataclasses import replace

    from sfe_desktop.model.calibrate import KEEP_WEIGHTS, STEP2_FLOORS

    assert runtime.fusion.step1_keep in KEEP_WEIGHTS  # chosen when the tiny model was calibrated
    assert runtime.fusion.step2_floor in STEP2_FLOORS  # chosen with it

    def search(keep):
        monkeypatch.setattr(runtime.model, "fusion", replace(runtime.fusion, step1_keep=keep))
        col.searcher.clear_cache()
        if direction == "text":
            return col.search_text("a red dog", top=8, rerank_k=8)
        return col.search_image(photos / "p1.jpg", top=8, rerank_k=8)

    none, heavy = search(0.0), search(1000.0)
    assert [r.step1 for r in heavy] == sorted((r.step1 for r in heavy), reverse=True)
    by_item = {(r.path, r.caption): r.score for r in none}
    for r in heavy:
        assert r.score == pytest.approx(by_item[(r.path, r.caption)] + 1000.0 * r.step1, rel=1e-5, abs=1e-6)
