"""Calibration on a validation split: how the model's scores and the bridge's are fused (:class:`Fusion`), and a
match confidence (:class:`Confidence`) a person can read.

Both are fitted once, when a checkpoint is written, from the Step-1 features of the validation images and
captions, and stored in the checkpoint's ``config.json``.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import torch

from .fusion import Confidence, Fusion, nearest_cosine
from .features import ImageFeatures, TextFeatures, candidate_hubness
from .metrics import recall_both_ways
from .sfe import SFEModel

NOVELTY_PERCENTILE = 5.0  # in-domain items below this percentile of nearest-memory cosine start counting as novel


def nonsense_queries(n: int, seed: int = 0) -> list[str]:
    """Strings of random letters ("xqzv plorf blargh"): queries that match nothing."""
    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    return [" ".join("".join(rng.choice(letters, int(rng.integers(3, 9)))) for _ in range(int(rng.integers(1, 5))))
            for _ in range(n)]


def _pairs_sample(n_rows: int, n_cols: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.integers(n_rows, size=size), rng.integers(n_cols, size=size)


HUB_WEIGHTS = tuple(np.round(np.arange(0.0, 2.01, 0.25), 2))  # the hub weights calibration chooses from
# candidates less hubby than this percentile of the val candidates count as this percentile's (Fusion.clip_hubness):
# chosen on pictures unlike Flickr8k (README); costs about 1 Step-1 rSum on val against no floor
HUB_FLOOR_PERCENTILE = 10.0


def fit_hubness(model: SFEModel, fusion: Fusion, images: ImageFeatures, texts: TextFeatures, cap_img) -> Fusion:
    """``fusion`` with the hubness floors (:data:`HUB_FLOOR_PERCENTILE` of the val candidates') and the hub weight
    that gives the best Step-1 rSum on a val split, both ways, searched as
    :class:`~sfe_desktop.model.ranking.FusedScoring` searches (the smallest on ties)."""
    from .ranking import FusedScoring

    hubs = {kind: model.hubness(torch.from_numpy(feats.global_), kind).numpy()
            for kind, feats in (("image", images), ("text", texts))}
    fusion = replace(fusion, hub_floor_image=float(np.percentile(hubs["image"], HUB_FLOOR_PERCENTILE)),
                     hub_floor_text=float(np.percentile(hubs["text"], HUB_FLOOR_PERCENTILE)))
    images = replace(images, hub=fusion.clip_hubness(hubs["image"], "image"))
    texts = replace(texts, hub=fusion.clip_hubness(hubs["text"], "text"))
    fusion = replace(fusion, null_hub_image=float(np.mean(images.hub) / fusion.sigma_step1),
                     null_hub_text=float(np.mean(texts.hub) / fusion.sigma_step1),
                     null_hub_sd_image=float(np.std(images.hub) / fusion.sigma_step1),
                     null_hub_sd_text=float(np.std(texts.hub) / fusion.sigma_step1))
    cap_img = np.asarray(cap_img)
    saved, best = model.fusion, (-1.0, 0.0)
    try:
        for weight in HUB_WEIGHTS:
            model.fusion = replace(fusion, hub_weight=float(weight))
            scoring = FusedScoring.of(model, images, texts)
            rsum = recall_both_ways(scoring.i2t, scoring.t2i.T, cap_img)["rsum"]
            best = max(best, (rsum, -float(weight)))
    finally:
        model.fusion = saved
    return replace(fusion, hub_weight=-best[1])


def fit_fusion(model: SFEModel, images: ImageFeatures, texts: TextFeatures, sample: int = 20_000,
               seed: int = 0, cap_img=None) -> Fusion:
    """Spreads of the three scores over random in-domain pairs and the novelty thresholds, from a val split;
    with ``cap_img`` (caption ``j`` describes image ``cap_img[j]``) also the hubness floors and weight
    (:func:`fit_hubness`)."""
    rng = np.random.default_rng(seed)
    i, t = _pairs_sample(len(images), len(texts), sample, rng)
    s1 = (images.global_[i] * texts.global_[t]).sum(1)
    sb = (images.bridge[i] * texts.bridge[t]).sum(1)
    k = min(4000, sample)
    from .ranking import step2_scores

    s2 = step2_scores(model, texts, images, t[:k], i[:k]) if model.cfg.use_step2 else s1[:k]
    near_img = nearest_cosine(images.global_, model.mem_img)
    near_txt = nearest_cosine(texts.global_, model.mem_txt)
    fusion = Fusion(sigma_step1=float(np.std(s1)), sigma_step2=float(np.std(s2)), sigma_bridge=float(np.std(sb)),
                    novelty_image=float(np.percentile(near_img, NOVELTY_PERCENTILE)),
                    novelty_text=float(np.percentile(near_txt, NOVELTY_PERCENTILE)),
                    null_pairs=float(sample), null_step1=float(np.mean(s1) / np.std(s1)),
                    null_bridge=float(np.mean(sb) / np.std(sb)), null_rho=float(np.corrcoef(s1, sb)[0, 1]),
                    null_step2=float(np.mean(s2) / np.std(s2)), null_rho2=float(np.corrcoef(s2, sb[:k])[0, 1]),
                    null_rho12=float(np.corrcoef(s1[:k], s2)[0, 1]))
    if cap_img is None:
        return fusion
    fusion = fit_hubness(model, fusion, images, texts, cap_img)
    return fit_keep(model, fusion, images, texts, cap_img) if model.cfg.use_step2 else fusion


KEEP_WEIGHTS = tuple(np.round(np.arange(0.0, 1.51, 0.25), 2))  # the shares of Step 1 calibration chooses from
STEP2_FLOORS = (0.1, 0.15, 0.2, 0.25, 0.3)  # the in-domain bridge weights in Step 2 it chooses from
KEEP_HEAD = 20  # Step-1 candidates re-scored per val query while choosing (the shipped depth gave the same choice)


def fit_keep(model: SFEModel, fusion: Fusion, images: ImageFeatures, texts: TextFeatures, cap_img) -> Fusion:
    """``fusion`` with the share of the fused Step-1 score that a re-scored candidate keeps (``step1_keep``) and
    the bridge's in-domain weight in Step 2 (``step2_floor``): the pair of :data:`KEEP_WEIGHTS` and
    :data:`STEP2_FLOORS` that gives the best re-ranked rSum on a val split, both ways, each query's Step-1 top
    :data:`KEEP_HEAD` re-scored (the smallest on ties, share first). Step 2 runs once; each pair only re-weighs."""
    from .ranking import FusedScoring, image_to_texts, rank, text_to_images

    saved = model.fusion
    model.fusion = fusion
    try:
        images = replace(images, hub=candidate_hubness(model, images.global_, "image"))
        texts = replace(texts, hub=candidate_hubness(model, texts.global_, "text"))
        scoring = FusedScoring.of(model, images, texts)
    finally:
        model.fusion = saved
    memo: dict[str, np.ndarray] = {}

    def once(name, scorer):
        return lambda q, c: memo[name] if name in memo else memo.setdefault(name, scorer(q, c))

    i2t_s2, t2i_s2 = once("i2t", image_to_texts(model, images, texts)), once("t2i", text_to_images(model, texts, images))
    cap_img, best = np.asarray(cap_img), (-1.0, 0.0, 0.0)
    for keep in KEEP_WEIGHTS:
        for floor in STEP2_FLOORS:
            sc = replace(scoring, fusion=replace(fusion, step1_keep=float(keep), step2_floor=float(floor)))
            i2t = rank(sc.i2t, sc.rescore_i2t(i2t_s2), KEEP_HEAD).ranking_key()
            t2i = rank(sc.t2i, sc.rescore_t2i(t2i_s2), KEEP_HEAD).ranking_key()
            best = max(best, (recall_both_ways(i2t, t2i.T, cap_img)["rsum"], -float(keep), -float(floor)))
    return replace(fusion, step1_keep=-best[1], step2_floor=-best[2])


@torch.enable_grad()  # callers may run under no_grad
def _logistic(x: np.ndarray, y: np.ndarray, steps: int = 500, lr: float = 0.1) -> tuple[float, float]:
    """Logistic regression of labels ``y`` on one feature ``x`` (classes balanced) with a non-negative slope;
    returns (slope, bias)."""
    xt = torch.as_tensor(x, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.float64)
    mu, sd = xt.mean(), xt.std().clamp(min=1e-6)
    z = (xt - mu) / sd
    w = torch.where(yt > 0, 0.5 / yt.mean(), 0.5 / (1 - yt.mean()))
    coef = torch.zeros((), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([coef, bias], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = (w * torch.nn.functional.binary_cross_entropy_with_logits(z * coef + bias, yt, reduction="none")).mean()
        loss.backward()
        opt.step()
        with torch.no_grad():
            coef.clamp_(min=0)
    slope = float(coef.detach() / sd)
    return slope, float(bias.detach()) - slope * float(mu)


def confidence_samples(model: SFEModel, images: ImageFeatures, texts: TextFeatures, cap_img,
                       encode_texts: Callable[[list[str]], TextFeatures], n_nonsense: int = 500,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(features (n, 3): fused Step-1 score (standardised), query familiarity and fused Step-2 score
    (standardised; the Step-1 one for a model without Step 2), labels (n,), nonsense (n,) bool) of true pairs,
    random pairs and nonsense queries against their best photo by Step 1, for fitting and measuring
    :class:`Confidence`."""
    from .ranking import step2_scores

    fusion = model.fusion or Fusion()
    cap_img = np.asarray(cap_img)
    rng = np.random.default_rng(seed)
    near_img = nearest_cosine(images.global_, model.mem_img)

    def scored(tx: TextFeatures, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fused Step-1 score of each text against image ``rows`` (or its best image when None), familiarity,
        fused Step-2 score of the same pair)."""
        near = nearest_cosine(tx.global_, model.mem_txt)
        w = fusion.query_weights(near, "text", near_img) if tx.bridge is not None else np.zeros(len(tx))
        full = fusion.step1(tx, images, w)
        rows = full.argmax(1) if rows is None else rows
        fused1 = full[np.arange(len(tx)), rows]
        s1 = fusion.standardise(fused1, w, "image")
        if not model.cfg.use_step2:
            return s1, near, s1
        s2 = step2_scores(model, tx, images, np.arange(len(tx)), rows)
        bridge = None if tx.bridge is None else (tx.bridge * images.bridge[rows]).sum(1)
        s2 = fusion.step2(s2, bridge, w, None if images.hub is None else images.hub[rows], fused1)
        return s1, near, fusion.standardise(s2, w, "image", step=2)

    pos = scored(texts, cap_img)
    neg = scored(texts, (cap_img + rng.integers(1, len(images), size=len(cap_img))) % len(images))
    non = scored(encode_texts(nonsense_queries(n_nonsense, seed)), None)
    x = np.concatenate([np.stack(p, 1) for p in (pos, neg, non)])
    y = np.concatenate([np.ones(len(pos[0])), np.zeros(len(neg[0]) + len(non[0]))])
    nonsense = np.arange(len(y)) >= len(pos[0]) + len(neg[0])
    return x, y, nonsense


def fit_confidence(x: np.ndarray, y: np.ndarray, nonsense: np.ndarray) -> Confidence:
    """The score parts (Step 1, and Step 2 from ``x``'s third column) from true against random pairs, the
    familiarity part from true pairs against nonsense."""
    a, c = _logistic(x[~nonsense, 0], y[~nonsense])
    b, d = _logistic(x[(y > 0) | nonsense, 1], y[(y > 0) | nonsense])
    a2, c2 = _logistic(x[~nonsense, 2], y[~nonsense])
    return Confidence(a=a, c=c, b=b, d=d, a2=a2, c2=c2)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count half)."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(avg, counts)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def calibrate(model: SFEModel, images: ImageFeatures, texts: TextFeatures, cap_img,
              encode: Callable[[list[str]], TextFeatures]) -> dict:
    """Fit the fusion (with a bridge) and the match confidence on a validation split's encoded ``images`` and
    ``texts`` (caption ``j`` describes image ``cap_img[j]``) and set them on ``model``; ``encode`` encodes the
    nonsense queries. Returns the confidence's ROC AUC on those samples, for the checkpoint's record."""
    if model.cfg.bridge_dim and images.bridge is not None:
        model.fusion = fit_fusion(model, images, texts, cap_img=cap_img)
        # the candidates' hubness as searches will see it (the features were encoded before this fusion)
        images = replace(images, hub=candidate_hubness(model, images.global_, "image"))
        texts = replace(texts, hub=candidate_hubness(model, texts.global_, "text"))
    x, y, nonsense = confidence_samples(model, images, texts, cap_img, encode)
    model.confidence = fit_confidence(x, y, nonsense)
    return {"confidence_auc_val": round(auc(model.confidence(x[:, 0], x[:, 1]), y), 4),
            "confidence_step2_auc_val": round(auc(model.confidence(x[:, 2], x[:, 1], step=2), y), 4)}
