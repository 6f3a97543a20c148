"""One ranking path: searches and ``evaluate`` order the same candidates the same way."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from collection_fixtures import data_dir, photos, runtime  # noqa: F401

from sfe_desktop.model.ranking import FusedScoring, rank, rank_one, rerank_depth
from sfe_desktop.search import Collection
from sfe_desktop.train.evaluate import evaluate_encoded, rerank_matrices
from sfe_desktop.model.metrics import ranks


def test_head_is_reordered_by_step2_above_a_tail_in_step1_order():
    step1 = np.array([0.5, 0.9, 0.7, 0.9, 0.1])
    step2 = {0: 0.2, 1: 0.3, 2: 0.8, 3: 0.3}
    ranked = rank_one(step1, lambda c: np.array([step2[i] for i in c]), rerank_k=3)
    # Step-1 head: 1 and 3 (0.9, tie kept in position order), then 2 (0.7); Step 2 puts 2 first, 1 before 3
    # (equal Step 2 and Step 1: position); the tail (0, 4) follows in Step-1 order with its Step-1 scores
    assert ranked.index.tolist() == [2, 1, 3, 0, 4]
    np.testing.assert_allclose(ranked.score, [0.8, 0.3, 0.3, 0.5, 0.1])
    np.testing.assert_allclose(ranked.step1, [0.7, 0.9, 0.9, 0.5, 0.1])
    assert rank_one(step1, lambda c: np.array([step2[i] for i in c]), 3, top=2).index.tolist() == [2, 1]
    assert rank_one(step1, lambda c: 1 / 0, 0).index.tolist() == [1, 3, 2, 0, 4]  # rerank_k 0: Step 1 alone


def test_ranking_key_lifts_the_head_and_keeps_its_ties_for_the_metric():
    scores = rank(np.array([[0.9, 0.8, 0.7], [0.1, 0.2, 0.3]]), lambda q, c: np.full(len(c), -5.0), 2)
    key = scores.ranking_key()
    assert scores.head.tolist() == [[True, True, False], [False, True, True]]
    assert (key[0, :2] > key[0, 2]).all() and key[0, 0] == key[0, 1]  # a Step-2 tie stays a tie
    assert (key[1, 1:] > key[1, 0]).all()
    i2t, _ = ranks(np.vstack([key[:1], np.zeros((1, 3))]), np.array([1, 0, 1]))  # caption 1 is image 0's
    assert i2t[0] == 1  # its tie with caption 0 counts against the query, as in every metric of this project


def test_rerank_depth_is_the_checkpoints_unless_overridden(runtime):
    cfg = runtime.cfg
    assert runtime.rerank_k == rerank_depth(cfg) == cfg.rerank_k
    assert rerank_depth(cfg, 3) == 3 and rerank_depth(cfg.replace(use_step2=False), 50) == 0


@pytest.mark.parametrize("k, hub_weight", [(3, 0.0), (None, 0.0), (3, 1.5)])
def test_evaluate_ranks_the_collections_photos_as_search_text_does(photos, runtime, k, hub_weight, monkeypatch):
    monkeypatch.setattr(runtime.model, "fusion", replace(runtime.model.fusion, hub_weight=hub_weight))
    captions = ["a red dog", "the blue car near a tree", "a green ball on the grass", "a white house"]
    with Collection.open(photos, runtime) as col:
        col.index()
        files = sorted((r for r in col.catalog.files().values() if r.vec_row is not None), key=lambda r: r.path)
        paths = [str(photos / r.path.decode()) for r in files]
        images = col.state.features(files)
        assert images.bridge is not None  # the tiny model has a label bridge: the fused path is the one compared
        assert (images.hub != 0).any() == (hub_weight > 0)  # the index keeps each photo's hubness
        texts = runtime.encode_texts(captions)
        depth = rerank_depth(runtime.cfg, k)
        _, t2i = rerank_matrices(runtime.model, images, texts, FusedScoring.of(runtime.model, images, texts), depth)
        searched = [col.search_text(c, top=len(paths), rerank_k=k) for c in captions]
        for j, hits in enumerate(searched):
            evaluated = [paths[i] for i in np.lexsort((np.arange(len(paths)), -t2i[:, j]))]
            assert [h.path for h in hits] == evaluated
        # the recall evaluate reports is the recall of these searches (caption j describes photo 2j)
        cap_img = np.arange(len(captions)) * 2
        result = evaluate_encoded(runtime.model, images, texts, cap_img, rerank_k=k)
        rank_of = [[h.path for h in hits].index(paths[cap_img[j]]) for j, hits in enumerate(searched)]
        for r in (1, 5, 10):
            assert result["rerank"][f"t2i_r{r}"] == pytest.approx(100 * np.mean(np.array(rank_of) < r))


def test_paired_counts_the_queries_each_ranking_finds_and_tests_the_split():
    from sfe_desktop.model.metrics import paired

    a = np.array([0, 0, 3, 0, 7, 12, 0])  # 0-based ranks of the correct item, query by query
    b = np.array([0, 5, 0, 9, 2, 0, 0])
    c = paired(a, b, 1)
    assert (c["a"], c["b"], c["only_a"], c["only_b"]) == (4, 4, 2, 2)
    assert c["p"] == pytest.approx(1.0)  # 2 against 2: an even split
    c = paired(a, b, 10)
    assert (c["a"], c["b"], c["only_a"], c["only_b"]) == (6, 7, 0, 1) and c["p"] == pytest.approx(1.0)
    c = paired(np.array([0, 0, 0, 0, 0, 9]), np.array([4, 4, 4, 4, 4, 0]), 1)  # 5 against 1
    assert c["p"] == pytest.approx(2 * (1 + 6) / 2 ** 6)
    many = paired(np.zeros(20), np.full(20, 5), 1)  # 20 to 0: far from chance
    assert many["only_a"] == 20 and many["p"] == pytest.approx(2 / 2 ** 20)
    assert paired(a, a, 1)["p"] == 1.0
