"""Hubness: a candidate's score loses its hubness (querybank normalisation over the training memory), in the
vector index (one more column) and in Step 2 alike, with a weight calibration picks on a val split."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from collection_fixtures import data_dir, runtime  # noqa: F401

from sfe_desktop.model.calibrate import HUB_FLOOR_PERCENTILE, HUB_WEIGHTS, fit_hubness
from sfe_desktop.model.features import ImageFeatures, TextFeatures, index_vectors, split_index_vectors
from sfe_desktop.model.fusion import Fusion
from sfe_desktop.model.metrics import recall
from sfe_desktop.model.ranking import FusedScoring


def _unit(rng, n, d):
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_index_vectors_carry_the_hubness_as_their_last_column():
    rng = np.random.default_rng(0)
    g, b, h = _unit(rng, 5, 8), _unit(rng, 5, 3), rng.normal(size=5).astype(np.float32)
    v = index_vectors(g, b, h)
    assert v.shape == (5, 8 + 3 + 1)
    g2, b2, h2 = split_index_vectors(v, 8)
    np.testing.assert_array_equal(g2, g)
    np.testing.assert_array_equal(b2, b)
    np.testing.assert_array_equal(h2, h)
    assert (index_vectors(g, b)[:, -1] == 0).all()  # hubness not known: no correction
    assert index_vectors(g, None).shape == (5, 8) and split_index_vectors(g, 8)[1:] == (None, None)


def test_the_query_vector_makes_the_fused_score_less_the_weighted_hubness():
    rng = np.random.default_rng(1)
    f = Fusion(sigma_step1=0.2, sigma_step2=0.3, sigma_bridge=0.1, hub_weight=1.5)
    gq, bq, w = _unit(rng, 3, 8), _unit(rng, 3, 4), np.array([0.1, 1.0, 3.1])  # in domain, 30 % novel, novel
    gc, bc, hc = _unit(rng, 6, 8), _unit(rng, 6, 4), rng.normal(size=6)
    alpha = np.array([1.5, 1.5 * 0.7, 0.0])  # the hub weight fades with the query's novelty (floor 0.1, gain 3)
    np.testing.assert_allclose(f.hub_weights(w), alpha)
    want = gq @ gc.T / 0.2 + w[:, None] * (bq @ bc.T) / 0.1 - alpha[:, None] * hc[None, :] / 0.2
    got = f.query_vectors(gq, bq, w) @ index_vectors(gc, bc, hc).T
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    plain = f.query_vectors(gq, bq, w, hub=False) @ index_vectors(gc, bc, hc).T  # photos searching photos
    np.testing.assert_allclose(plain, want + alpha[:, None] * hc[None, :] / 0.2, rtol=1e-5, atol=1e-5)
    s2, bcos = rng.normal(size=6), rng.normal(size=6)
    np.testing.assert_allclose(f.step2(s2, bcos, 1.0, hc), s2 / 0.3 + 1.0 * bcos / 0.1 - 1.05 * hc / 0.2)
    np.testing.assert_allclose(replace(f, hub_weight=0.0).step2(s2, bcos, 1.0, hc), s2 / 0.3 + 1.0 * bcos / 0.1)


def test_a_vector_near_the_bank_is_more_of_a_hub_than_one_far_from_it(runtime):
    model = runtime.model
    captions = model.hubness(torch.zeros(1, runtime.dim), "image")  # builds the caption bank
    bank = model._hub_banks["text"]
    centre = torch.nn.functional.normalize(bank.mean(0, keepdim=True), dim=-1)
    h = model.hubness(torch.cat([centre, -centre]), "image")
    assert h[0] > h[1] + 0.1
    assert captions.shape == (1,) and torch.isfinite(h).all()


def _hub_scene(runtime):
    """Four photos, two captions each, and a fifth photo that is near every caption (a hub: the direction every
    caption shares) and has none of them."""
    rng = np.random.default_rng(2)
    d = runtime.dim
    axes = np.eye(d, dtype=np.float32)
    texts_g = np.repeat(axes[:4], 2, 0) + 1.2 * axes[4] + 0.05 * rng.normal(size=(8, d))
    texts_g /= np.linalg.norm(texts_g, axis=1, keepdims=True)
    images_g = axes[:5].copy()  # photo i is caption 2i's and 2i+1's; photo 4 is the hub
    r = runtime.cfg.bridge_dim
    images = ImageFeatures(images_g, np.zeros((5, 1, d), np.float16), np.zeros((5, r), np.float32),
                           hub=np.array([0, 0, 0, 0, 1.0], np.float32))
    texts = TextFeatures(texts_g.astype(np.float32), np.zeros((8, 1, d), np.float16), np.ones((8, 1), bool),
                         bridge=np.zeros((8, r), np.float32), hub=np.zeros(8, np.float32))
    return images, texts, np.repeat(np.arange(4), 2)


def test_the_hub_weight_pushes_a_hub_photo_down_and_calibration_finds_it(runtime, monkeypatch):
    model = runtime.model
    images, texts, cap_img = _hub_scene(runtime)
    base = replace(model.fusion or Fusion(), hub_weight=0.0, floor=0.0, gain=0.0)

    def t2i_r1(weight):
        monkeypatch.setattr(model, "fusion", replace(base, hub_weight=weight))
        return recall(FusedScoring.of(model, images, texts).t2i.T, cap_img)["t2i_r1"]

    assert t2i_r1(0.0) < 50 and t2i_r1(2.0) == 100  # the hub tops most captions' lists until it pays its hubness
    hubs = {"image": images.hub, "text": texts.hub}
    monkeypatch.setattr(model, "hubness", lambda v, kind: torch.as_tensor(hubs[kind][:len(v)]))
    monkeypatch.setattr(model, "fusion", base)
    fitted = fit_hubness(model, base, images, texts, cap_img)
    assert fitted.hub_weight in HUB_WEIGHTS and fitted.hub_weight > 0
    assert fitted.hub_floor_image == np.percentile(images.hub, HUB_FLOOR_PERCENTILE)
    assert fitted.hub_floor_text == np.percentile(texts.hub, HUB_FLOOR_PERCENTILE)
    assert model.fusion is base  # calibration leaves the model's fusion as it found it


def test_below_the_floor_every_candidate_counts_the_same_hubness():
    """An anti-hub (a photo unlike every training caption) must not gain on the in-domain photos for being one."""
    h = np.array([-0.2, 0.05, 0.1, 0.3], np.float32)
    np.testing.assert_array_equal(Fusion().clip_hubness(h, "image"), h)  # older checkpoints: no floor
    f = Fusion(hub_floor_image=0.1, hub_floor_text=0.0)
    np.testing.assert_allclose(f.clip_hubness(h, "image"), [0.1, 0.1, 0.1, 0.3])
    np.testing.assert_allclose(f.clip_hubness(h, "text"), [0.0, 0.05, 0.1, 0.3])


@pytest.mark.parametrize("kind", ["image", "text"])
def test_encoded_candidates_carry_their_hubness_when_the_fusion_uses_it(runtime, monkeypatch, kind):
    model = runtime.model
    monkeypatch.setattr(model, "fusion", replace(model.fusion, hub_weight=1.0, hub_floor_image=-1.0, hub_floor_text=-1.0))
    if kind == "image":
        pixels = torch.rand(2, 3, runtime.image_size, runtime.image_size, generator=torch.Generator().manual_seed(4))
        feats = runtime.encode_images(pixels)
        assert runtime.encode_images(pixels, hub=False).hub is None  # a query photo needs none
    else:
        feats = runtime.encode_texts(["a red dog", "a blue car"], hub=True)
        assert runtime.encode_texts(["a red dog"]).hub is None  # a query text needs none
    raw = model.hubness(torch.from_numpy(feats.global_), kind).numpy()
    np.testing.assert_allclose(feats.hub, raw, atol=1e-6)
    assert feats.index_vectors()[:, -1].tolist() == pytest.approx(feats.hub.tolist())
    floor = float(raw.mean())  # between the two: the lower one counts as the floor
    monkeypatch.setattr(model, "fusion", replace(model.fusion, hub_weight=1.0, **{f"hub_floor_{kind}": floor}))
    again = runtime.encode_images(pixels) if kind == "image" else runtime.encode_texts(["a red dog", "a blue car"],
                                                                                         hub=True)
    np.testing.assert_allclose(again.hub, np.maximum(raw, floor), atol=1e-6)
    assert (again.hub == np.float32(floor)).sum() == 1


def test_the_heatmap_windows_leave_the_hubness_out(runtime, monkeypatch):
    """A window of the photo is not a search candidate: its hubness is an offset that does not depend on the text,
    and would move the heat whatever the words."""
    model = runtime.model
    pixels = torch.rand(3, runtime.image_size, runtime.image_size, generator=torch.Generator().manual_seed(3))
    text = runtime.encode_texts(["a red dog near a tree"])
    maps = []
    for weight in (0.0, 2.0):
        monkeypatch.setattr(model, "fusion", replace(model.fusion, hub_weight=weight))
        assert (runtime.encode_images(pixels[None]).hub != 0).any() == (weight > 0)
        maps.append(runtime.region(text, pixels))
    np.testing.assert_allclose(maps[0], maps[1], atol=1e-6)


def test_scores_are_standardised_for_the_querys_bridge_weight():
    """A novel query's bridge weight spreads its fused scores wider; read raw, the confidence called most of its
    results sure matches. Against random pairs searched with the same weight, every weight's scores have mean 0 and
    spread 1, and one query's order is kept."""
    rng = np.random.default_rng(5)
    n, rho = 200_000, 0.3
    c = rng.normal(size=n)
    b = rho * c + np.sqrt(1 - rho ** 2) * rng.normal(size=n)
    s1, sb, hub = 0.1 + 0.05 * c, 0.2 + 0.1 * b, rng.uniform(0.1, 0.2, size=n)
    f = Fusion(sigma_step1=0.05, sigma_bridge=0.1, hub_weight=1.5, null_pairs=n, null_step1=2.0, null_bridge=2.0,
               null_rho=rho, null_hub_image=float(hub.mean() / 0.05), null_hub_sd_image=float(hub.std() / 0.05))
    for w in (0.1, 1.0, 3.1):
        fused = s1 / 0.05 + w * sb / 0.1 - f.hub_weights(w) * hub / 0.05
        z = f.standardise(fused, w, "image")
        assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02
        assert (np.diff(z[np.argsort(fused)]) >= 0).all()
    np.testing.assert_array_equal(Fusion().standardise([1.0, 5.0], 3.1, "image"), [1.0, 5.0])  # not fitted


def test_step2_scores_are_standardised_with_their_own_null():
    """The Step-2 score has its own mean and correlation with the bridge on random pairs; a re-scored candidate's
    score keeps a share of its fused Step-1 score, and the standard score counts both."""
    rng = np.random.default_rng(6)
    n, rho, rho1, rho12 = 200_000, 0.5, 0.2, 0.6
    c, e1, e2 = rng.normal(size=(3, n))
    s2n = rho12 * c + np.sqrt(1 - rho12 ** 2) * e1  # Step 2 and Step 1 correlated
    s1n = c
    b = 0.3 * s1n + 0.4 * s2n + 0.5 * e2
    b = (b - b.mean()) / b.std()
    s2, s1, sb, hub = 0.6 + 0.2 * s2n, 0.1 + 0.05 * s1n, 0.2 + 0.1 * b, rng.uniform(0.1, 0.2, size=n)
    f = Fusion(sigma_step1=0.05, sigma_step2=0.2, sigma_bridge=0.1, hub_weight=1.5, null_pairs=n,
               null_step1=2.0, null_rho=float(np.corrcoef(s1, sb)[0, 1]), null_bridge=2.0,
               null_step2=3.0, null_rho2=float(np.corrcoef(s2, sb)[0, 1]), null_rho12=float(np.corrcoef(s1, s2)[0, 1]),
               null_hub_image=float(hub.mean() / 0.05), null_hub_sd_image=float(hub.std() / 0.05))
    for keep, floor2 in ((0.0, -1.0), (0.75, -1.0), (0.25, 0.3)):  # floor2 -1: the bridge weighs as in Step 1
        fk = replace(f, step1_keep=keep, step2_floor=floor2)
        for w in (0.1, 3.1):
            w2 = w if floor2 < 0 else w - f.floor + floor2
            fused1 = s1 / 0.05 + w * sb / 0.1 - f.hub_weights(w) * hub / 0.05
            fused2 = fk.step2(s2, sb, w, hub, fused1)
            np.testing.assert_allclose(fused2, s2 / 0.2 + w2 * sb / 0.1 - f.hub_weights(w) * hub / 0.05 + keep * fused1)
            z = fk.standardise(fused2, w, "image", step=2)
            assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02, (keep, floor2, w, z.mean(), z.std())
    assert abs(f.standardise(f.step2(s2, sb, 0.1, hub), 0.1, "image").mean()) > 0.5  # the Step-1 null does not fit
