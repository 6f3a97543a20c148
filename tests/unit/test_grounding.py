"""Explanations: the heatmap is what the score uses, words are grounded in the ImageNet class maps of the label
bridge, and the match confidence behaves like one (tiny model)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from sfe_desktop.model.build import TINY_CLASSES
from sfe_desktop.model.calibrate import nonsense_queries
from sfe_desktop.model.explain import WINDOWS, WORD_CANDIDATES, photo_word_classes, class_map, crop_windows, region_map, window_coverage, word_class_maps
from sfe_desktop.model.features import ImageFeatures
from sfe_desktop.model.fusion import Confidence
from sfe_desktop.model.ranking import rank_one
from sfe_desktop.model.runtime import tiny_runtime


@pytest.fixture(scope="module")
def rt():
    return tiny_runtime(0)


@pytest.fixture(scope="module")
def corpus_images(rt):
    """The tiny runtime's synthetic corpus photos, encoded (caption 3i..3i+2 describe photo i)."""
    gen = torch.Generator().manual_seed(0)
    pixels = torch.rand(24, 3, rt.image_size, rt.image_size, generator=gen)
    return rt.encode_images(pixels, logits=True)


def test_the_heatmap_points_at_the_patches_the_score_depends_on(rt, corpus_images):
    """Filling the heatmap's top patches with the photo's mean patch lowers the Step-2 score, far more than filling
    as many random patches (averaged over pairs and draws; filling the coldest patches raises it)."""
    rng = np.random.default_rng(0)
    top_drops, random_drops = [], []
    for i in range(12):
        image = corpus_images[i]
        text = rt.encode_texts([rt.corpus.captions[3 * i]])
        heat = rt.explain(text, image, grounding="attention").heatmap
        n = len(heat)
        k = max(1, n // 8)
        base = float(rt.rerank_text(text, image)[0])

        def drop(cells) -> float:
            patches = image.patches.astype(np.float32).copy()
            patches[0, cells] = patches[0].mean(0)
            return base - float(rt.rerank_text(text, ImageFeatures(image.global_, patches.astype(np.float16)))[0])

        top_drops.append(drop(np.argsort(-heat)[:k]))
        random_drops.append(np.mean([drop(rng.choice(n, k, replace=False)) for _ in range(5)]))
    assert np.mean(top_drops) > 0 and np.mean(top_drops) > 5 * abs(np.mean(random_drops))


def test_a_word_that_names_a_class_maps_to_it(rt):
    _, share, named = word_class_maps(rt.model, TINY_CLASSES, np.zeros((4, len(TINY_CLASSES)), np.float32),
                                      rt.class_names)
    assert [c.name for c in named] == TINY_CLASSES and (share > 0).all()


def test_a_word_names_the_candidate_class_the_photo_shows():
    """"dog" is spelt like "dogsled" but a photo of a retriever shows a retriever: among the word's nearest class
    prompts it names the one the photo shows; a photo that shows none of them leaves the text's own weights."""
    classes = 60
    cos = torch.linspace(0.0, 0.3, classes)[None].repeat(1, 1)
    cos[0, 0], cos[0, 1] = 0.60, 0.55          # 0: "dogsled" (nearest in spelling), 1: "golden retriever"
    shows_retriever = torch.full((9, classes), -4.0)
    shows_retriever[:, 1] = 6.0
    named = photo_word_classes(cos, shows_retriever)
    assert int(named.argmax()) == 1 and abs(float(named.sum()) - 1) < 1e-5
    assert int((named > 0).sum()) <= WORD_CANDIDATES
    unrelated = torch.full((9, classes), -4.0)
    unrelated[:, classes - 30] = 6.0            # a class far from the word's candidates
    prior = photo_word_classes(cos, unrelated)
    assert int(prior.argmax()) == 0 and abs(float(prior.sum()) - 1) < 1e-5


def test_family_words_name_their_members_in_imagenet():
    """"dog" (or "dogs", "puppy") names ImageNet's 118 breeds; every class a family lists exists in the class list
    the app reads (a misspelt name would drop out silently); other words name no family."""
    from sfe_desktop.model import class_groups
    from torchvision.models import ResNet50_Weights  # the category names the app reads (build.class_names)

    names = list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])
    listed = {n for spans in class_groups.RANGES.values() for span in spans for n in span}
    listed |= {n for group in class_groups.NAMES.values() for n in group}
    assert listed <= set(names), sorted(listed - set(names))
    dogs = class_groups.members("dog", names)
    assert len(dogs) == 118 and names[dogs[0]] == "Chihuahua" and "golden retriever" in {names[i] for i in dogs}
    assert class_groups.members("dogs", names) == class_groups.members("puppies", names) == dogs
    assert "dogsled" not in {names[i] for i in dogs}
    assert {names[i] for i in class_groups.members("bike", names)} >= {"mountain bike"}
    assert class_groups.members("dogsled", names) == () == class_groups.members("man", names)
    assert class_groups.members("dog", ["dog", "cat"]) == ()  # another classifier's list: no family


def test_a_family_word_names_the_member_the_photo_shows_or_the_family():
    """"dog" is nearest to "dogsled" among the prompts, but as a family word its candidates are the breeds: a photo
    of a retriever names the retriever; a photo that shows no breed spreads the word over all of them."""
    classes = 60
    cos = torch.linspace(0.0, 0.3, classes)[None].repeat(1, 1)
    cos[0, 0] = 0.60                           # 0: "dogsled", the nearest prompt
    breeds = list(range(5, 15))                # the family's members: none among the word's 25 nearest prompts
    shows = torch.full((9, classes), -4.0)
    shows[:, 8] = 6.0
    named = photo_word_classes(cos, shows, [breeds])
    assert int(named.argmax()) == 8 and abs(float(named.sum()) - 1) < 1e-5 and float(named[0, 0]) == 0
    sled = torch.full((9, classes), -4.0)
    sled[:, 0] = 6.0                           # the photo shows a dogsled and no breed
    spread = photo_word_classes(cos, sled, [breeds])
    np.testing.assert_allclose(spread[0, breeds].numpy(), 0.1, atol=1e-6)
    assert float(spread.sum()) == pytest.approx(1.0) and float(spread[0, 0]) == 0
    plain = photo_word_classes(cos, shows, [()])  # a word of no family: its nearest prompts, as before
    np.testing.assert_allclose(plain.numpy(), photo_word_classes(cos, shows).numpy())


def test_heat_sits_where_the_named_class_dominates(rt, corpus_images):
    """A photo whose top-left quadrant is all "car" (stubbed classifier output): the word "car" is hottest there,
    in the class map and in the explanation's drawn row."""
    h, w = rt.grid
    logits = np.zeros((h * w, len(TINY_CLASSES)), np.float32)
    quadrant = [r * w + c for r in range(h // 2) for c in range(w // 2)]
    logits[quadrant, TINY_CLASSES.index("car")] = 8.0
    logits[:, TINY_CLASSES.index("tree")] += 2.0  # the rest of the photo: something else
    cmap = class_map(torch.from_numpy(logits), torch.eye(len(TINY_CLASSES))[[TINY_CLASSES.index("car")]])[0].numpy()
    assert cmap[quadrant].sum() > 0.99 and abs(cmap.sum() - 1) < 1e-5
    img = corpus_images[0]
    stubbed = ImageFeatures(img.global_, img.patches, img.bridge, logits[None].astype(np.float16))
    ex = rt.explain(rt.encode_texts(["a car"]), stubbed)
    row = ex.attention[ex.words.index("car")]
    assert ex.grounding[ex.words.index("car")] > 0 and int(np.argmax(row)) in quadrant
    assert row[quadrant].sum() > 0.5 and ex.word_classes[ex.words.index("car")].name == "car"
    attention_only = rt.explain(rt.encode_texts(["a car"]), stubbed, grounding="attention")
    assert row[quadrant].sum() > attention_only.attention[ex.words.index("car")][quadrant].sum()


def test_each_window_is_cut_where_its_coverage_says(rt):
    """A photo whose channels are its x and y coordinates: each window's crop centre is the window's centre, and
    its coverage of the grid cells adds up to its area."""
    size, (h, w) = rt.image_size, rt.grid
    ramp = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    pixels = torch.stack([ramp.expand(size, size), ramp[:, None].expand(size, size), torch.zeros(size, size)])
    crops, cover = crop_windows(pixels), window_coverage(rt.grid)
    assert crops.shape == (len(WINDOWS), 3, size, size) and cover.shape == (len(WINDOWS), h * w)
    for (top, left, side), crop, row in zip(WINDOWS, crops, cover):
        assert abs(float(crop[0].mean()) - (left + side / 2)) < 2 / size
        assert abs(float(crop[1].mean()) - (top + side / 2)) < 2 / size
        assert abs(row.sum() - side * side * h * w) < 1e-3 and row.min() >= 0 and row.max() <= 1 + 1e-6
        centre = int((top + side / 2) * h) * w + int((left + side / 2) * w)
        assert row[centre] == pytest.approx(1.0)


def test_the_region_follows_the_best_scoring_windows(rt):
    h, w = rt.grid
    cover = window_coverage(rt.grid)
    flat = region_map(np.ones(len(WINDOWS)), cover)
    assert abs(flat.sum() - 1) < 1e-5 and np.allclose(flat, cover.sum(0) / cover.sum())
    bottom_right = [k for k, (top, left, side) in enumerate(WINDOWS) if (top, left, side) == (0.5, 0.5, 0.5)][0]
    scores = np.zeros(len(WINDOWS))
    scores[bottom_right] = 1.0
    heat = region_map(scores, cover)
    assert np.allclose(heat, cover[bottom_right] / cover[bottom_right].sum(), atol=1e-3)
    assert heat.reshape(h, w)[h // 2:, w // 2:].sum() > 0.99 and abs(heat.sum() - 1) < 1e-5  # tiny grid: 4 x 4


def test_regions_grounding_weights_each_word_by_the_region(rt, corpus_images, monkeypatch):
    """With "regions" grounding the drawn rows are the word rows weighted by where the whole text matches (here a
    stubbed region: the top-left quadrant); without the photo's pixels the rows stay as "mixed" draws them."""
    h, w = rt.grid
    region = np.full(h * w, 1e-4, np.float32)
    quadrant = [r * w + c for r in range(h // 2) for c in range(w // 2)]
    region[quadrant] = 1.0
    region /= region.sum()
    calls = []
    monkeypatch.setattr(rt, "region", lambda text, pixels: calls.append(pixels.shape) or region)
    text, image = rt.encode_texts(["a red dog near a tree"]), corpus_images[0]
    pixels = torch.rand(3, rt.image_size, rt.image_size)
    ex = rt.explain(text, image, pixels=pixels)
    mixed = rt.explain(text, image, grounding="mixed")
    assert calls == [pixels.shape]
    assert np.allclose(ex.attention.sum(1), 1, atol=1e-4) and np.allclose(ex.heatmap.sum(), 1, atol=1e-4)
    assert ex.heatmap[quadrant].sum() > 0.95 and int(np.argmax(ex.heatmap)) in quadrant
    assert ex.heatmap[quadrant].sum() > mixed.heatmap[quadrant].sum()
    assert rt.explain(text, image).heatmap.tolist() == mixed.heatmap.tolist()  # no pixels, no photo: no region


def test_regions_grounding_runs_the_model_on_the_windows(rt, corpus_images):
    text, image = rt.encode_texts(["a red dog"]), corpus_images[0]
    pixels = torch.rand(3, rt.image_size, rt.image_size)
    region = rt.region(text, pixels)
    assert region.shape == (rt.grid[0] * rt.grid[1],) and np.isfinite(region).all() and abs(region.sum() - 1) < 1e-5
    ex = rt.explain(text, image, pixels=pixels)
    assert np.isfinite(ex.heatmap).all() and abs(ex.heatmap.sum() - 1) < 1e-4
    with pytest.raises(ValueError, match="grounding mode"):
        rt.explain(text, image, grounding="nonsense")


def test_confidence_is_a_probability_that_rises_with_the_score():
    conf = Confidence(a=2.0, c=-3.0, b=1.5, d=-0.5)
    scores = np.linspace(-5, 5, 41)
    p = conf(scores, 0.5)
    assert ((p >= 0) & (p <= 1)).all() and (np.diff(p) > 0).all()
    assert ((conf(np.array([-1e9, 1e9]), 0.0) >= 0) & (conf(np.array([-1e9, 1e9]), 0.0) <= 1)).all()


def test_a_true_pair_is_more_confident_than_nonsense_against_its_best_photo(rt, corpus_images):
    assert rt.model.confidence is not None and rt.model.confidence.a >= 0 and rt.model.confidence.b >= 0
    true = [rt.pair_confidence(rt.encode_texts([rt.corpus.captions[3 * i]]), corpus_images[i]) for i in range(8)]
    nonsense = [max(rt.pair_confidence(rt.encode_texts([q]), corpus_images[i]) for i in range(len(corpus_images)))
                for q in nonsense_queries(4, seed=7)]
    assert all(0 <= c <= 1 for c in true + nonsense)
    assert min(true) > max(nonsense)


def test_a_searchs_confidence_falls_as_its_shown_order_does(rt, corpus_images):
    """Results are shown in Step-2 order (the head) above the rest in Step-1 order. The confidence of a re-scored
    result reads its Step-2 score, so it falls down the head; a result below the head never reads surer than the
    least sure result of the head."""
    conf_of = rt.model.confidence
    assert conf_of.has_step2 and conf_of.a2 >= 0
    text = rt.encode_texts([rt.corpus.captions[0]])
    w = float(rt.query_weights(text, "text")[0])
    step1 = rt.query_vectors(text, [w])[0] @ corpus_images.index_vectors().T
    familiar = rt.nearest_memory(text.global_, "text")[0]

    def rescore(c):
        sub = corpus_images[c]
        return rt.fused_step2(rt.rerank_text(text, sub), text.bridge[0], sub.bridge, w, sub.hub, step1[c])

    ranked = rank_one(step1, rescore, 8, None)
    assert ranked.head[:8].all() and not ranked.head[8:].any()
    # Step 2 reorders the head here, so the Step-1 confidence would not fall down the shown list
    assert (np.diff(ranked.step1[:8]) > 0).any()
    conf = rt.confidence(ranked.step1, familiar, w, ranked=ranked)
    assert ((conf >= 0) & (conf <= 1)).all()
    assert (np.diff(conf) <= 1e-12).all()
    head = conf_of(rt.fusion.standardise(ranked.score[:8], w, "image", step=2), familiar, step=2)
    np.testing.assert_allclose(conf[:8], head)
    tail = conf_of(rt.fusion.standardise(ranked.step1[8:], w, "image"), familiar)
    np.testing.assert_allclose(conf[8:], np.minimum(tail, head.min()))
    # the explanation's confidence of a pair is the search's when Step 2 re-scored it
    first = int(ranked.index[0])
    assert rt.pair_confidence(text, corpus_images[first]) == pytest.approx(conf[0], abs=1e-9)


def test_a_confidence_without_a_step2_fit_reads_step1(rt, corpus_images, monkeypatch):
    """Checkpoints calibrated before the Step-2 part (a2 = c2 = 0) keep their Step-1 confidence."""
    monkeypatch.setattr(rt.model, "confidence", replace(rt.model.confidence, a2=0.0, c2=0.0))
    text = rt.encode_texts([rt.corpus.captions[0]])
    w = float(rt.query_weights(text, "text")[0])
    step1 = rt.query_vectors(text, [w])[0] @ corpus_images.index_vectors().T
    ranked = rank_one(step1, lambda c: -step1[c], 8, None)  # any re-scoring
    familiar = rt.nearest_memory(text.global_, "text")[0]
    np.testing.assert_allclose(rt.confidence(ranked.step1, familiar, w, ranked=ranked),
                               rt.model.confidence(rt.fusion.standardise(ranked.step1, w, "image"), familiar))
