"""The one ranking path of every search and of ``evaluate``.

A query's candidates are ordered by their Step-1 score; the first ``rerank_k`` of them (the *head*) are
re-scored by Step 2 and placed, in Step-2 order, above the rest (the *tail*), which keeps its Step-1 order and
scores. Text -> photos, photo -> captions, similar photos (``rerank_k`` 0: Step 1 alone) and ``evaluate`` (every
image and caption of a split as the query in turn) all go through :func:`rank`; ``rerank_k`` is the checkpoint's
(:attr:`ModelConfig.rerank_k`) unless a caller overrides it.

Ties: Step-1 order breaks ties by candidate position, so a caller fixes the tie order by the order in which it
passes candidates (search passes them sorted by path). In the head, equal Step-2 scores fall back to Step 1, then
position. The metric (``model.metrics``) counts remaining ties against the query.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .fusion import Fusion, nearest_cosine
from .config import ModelConfig
from .features import ImageFeatures, TextFeatures
from .sfe import SFEModel

PairScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (query rows, candidate rows) -> Step-2 scores
Progress = Callable[[int, int], None]


def rerank_depth(cfg: ModelConfig, override: int | None = None) -> int:
    """How many Step-1 candidates Step 2 re-scores: ``override`` when given, else the checkpoint's
    ``rerank_k``; 0 for a model without Step 2."""
    if not cfg.use_step2:
        return 0
    return max(0, int(cfg.rerank_k if override is None else override))


def _side(values: np.ndarray, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """``values[rows]`` as float32 on ``device``; a side of one row is broadcast without copies."""
    if len(values) == 1:
        return torch.from_numpy(np.ascontiguousarray(values)).to(device).float().expand(len(rows), *values.shape[1:])
    return torch.from_numpy(np.ascontiguousarray(values[rows])).to(device).float()


@torch.no_grad()
def step2_scores(model: SFEModel, texts: TextFeatures, images: ImageFeatures, text_rows, image_rows,
                 chunk: int = 512, progress: Progress | None = None) -> np.ndarray:
    """Step-2 scores (P,) float32 of the aligned pairs ``(texts[text_rows[p]], images[image_rows[p]])``.

    A chunk's texts are cut to its longest text, rounded up to 8 tokens (padding costs time; a few distinct sizes
    keep the process's heap from fragmenting over hundreds of thousands of pairs)."""
    text_rows, image_rows = np.asarray(text_rows, dtype=np.int64), np.asarray(image_rows, dtype=np.int64)
    dev = model.device
    out = np.empty(len(text_rows), np.float32)
    for a in range(0, len(text_rows), chunk):
        t, i = text_rows[a:a + chunk], image_rows[a:a + chunk]
        mask = texts.mask if len(texts) == 1 else texts.mask[t]
        width = min(mask.shape[1], -(-max(1, int(mask.sum(1).max())) // 8) * 8)
        words = texts.words[:, :width]
        mask = torch.from_numpy(np.ascontiguousarray(mask[:, :width])).to(dev)
        out[a:a + len(t)] = model.pair_scores(
            _side(words, t, dev), mask.expand(len(t), -1), _side(images.patches, i, dev),
            _side(texts.global_, t, dev), _side(images.global_, i, dev)).float().cpu().numpy()
        if progress:
            progress(min(a + chunk, len(text_rows)), len(text_rows))
    return out


def text_to_images(model: SFEModel, texts: TextFeatures, images: ImageFeatures, **kwargs) -> PairScorer:
    """Scorer of text queries (rows of ``texts``) against image candidates (rows of ``images``)."""
    return lambda q, c: step2_scores(model, texts, images, q, c, **kwargs)


def image_to_texts(model: SFEModel, images: ImageFeatures, texts: TextFeatures, **kwargs) -> PairScorer:
    """Scorer of image queries (rows of ``images``) against caption candidates (rows of ``texts``)."""
    return lambda q, c: step2_scores(model, texts, images, c, q, **kwargs)


@dataclass
class FusedScoring:
    """Step-1 score matrices of a set of images against a set of texts, both ways, with the label bridge fused in
    as a search fuses it (:class:`~sfe_desktop.model.bridge.Fusion`: each query's bridge weight from its novelty),
    and the matching Step-2 rescorers. Without a bridge (or a fusion) the plain cosines."""

    i2t: np.ndarray                      # (I, T) image queries against texts
    t2i: np.ndarray                      # (T, I) text queries against images
    fusion: Fusion | None = None
    bridge_cos: np.ndarray | None = None  # (I, T)
    w_image: np.ndarray | None = None     # (I,) bridge weight of each image query
    w_text: np.ndarray | None = None      # (T,) ... of each text query
    hub_image: np.ndarray | None = None   # (I,) hubness of each image as a candidate
    hub_text: np.ndarray | None = None    # (T,) ... of each text

    @classmethod
    def of(cls, model: SFEModel, images: ImageFeatures, texts: TextFeatures) -> "FusedScoring":
        cos = images.global_ @ texts.global_.T
        fusion = model.fusion
        if fusion is None or images.bridge is None or texts.bridge is None:
            return cls(cos, cos.T)
        near_img = nearest_cosine(images.global_, model.mem_img)
        w_img = fusion.query_weights(near_img, "image")
        w_txt = fusion.query_weights(nearest_cosine(texts.global_, model.mem_txt), "text", near_img)
        bcos = images.bridge @ texts.bridge.T
        return cls(fusion.step1(images, texts, w_img), fusion.step1(texts, images, w_txt), fusion, bcos, w_img, w_txt,
                   images.hub, texts.hub)

    def rescore_i2t(self, scorer: PairScorer) -> PairScorer:
        """``scorer`` (image query rows, text candidate rows) -> Step-2 scores, fused like :attr:`i2t`."""
        if self.fusion is None:
            return scorer
        return lambda q, c: self.fusion.step2(scorer(q, c), self.bridge_cos[q, c], self.w_image[q],
                                              None if self.hub_text is None else self.hub_text[c], self.i2t[q, c])

    def rescore_t2i(self, scorer: PairScorer) -> PairScorer:
        if self.fusion is None:
            return scorer
        return lambda q, c: self.fusion.step2(scorer(q, c), self.bridge_cos[c, q], self.w_text[q],
                                              None if self.hub_image is None else self.hub_image[c], self.t2i[q, c])


@dataclass
class Scores:
    """Scores of Q queries against N candidates after :func:`rank`."""

    step1: np.ndarray   # (Q, N) Step-1 cosine
    score: np.ndarray   # (Q, N) float64 final score: Step 2 in the head, Step 1 in the tail
    head: np.ndarray    # (Q, N) bool, the candidates Step 2 re-scored

    def ranking_key(self) -> np.ndarray:
        """(Q, N) float64 whose order per row is the ranking: the head lifted above the whole tail, ties kept."""
        tail_best = np.where(self.head, -np.inf, self.score).max(1, initial=-np.inf)
        head_worst = np.where(self.head, self.score, np.inf).min(1, initial=np.inf)
        lift = np.maximum(tail_best - head_worst + 1.0, 0.0)  # 0 for a row that is all head or all tail
        return self.score + self.head * lift[:, None]


def head_of(step1: np.ndarray, k: int) -> np.ndarray:
    """(Q, min(k, N)) positions of each query's best ``k`` candidates by Step 1, ties by position."""
    return np.argsort(-np.asarray(step1), axis=1, kind="stable")[:, :k]


def rank(step1: np.ndarray, rescore: PairScorer, rerank_k: int) -> Scores:
    """Re-score each query's Step-1 head of ``rerank_k`` candidates with ``rescore(query rows, candidate rows)``
    and place it above the tail. ``step1`` (Q, N)."""
    step1 = np.atleast_2d(np.asarray(step1))
    score = step1.astype(np.float64)
    head = np.zeros(step1.shape, dtype=bool)
    if rerank_k > 0 and step1.size:
        top = head_of(step1, rerank_k)
        queries = np.repeat(np.arange(len(step1)), top.shape[1])
        score[queries, top.ravel()] = np.asarray(rescore(queries, top.ravel()), dtype=np.float64)
        head[queries, top.ravel()] = True
    return Scores(step1, score, head)


@dataclass
class Ranked:
    """One query's ranking: candidate positions best first, with their final and Step-1 scores."""

    index: np.ndarray
    score: np.ndarray
    step1: np.ndarray
    head: np.ndarray | None = None  # bool: re-scored by Step 2 (``score`` is then the Step-2 score)


def rank_one(step1: np.ndarray, rescore: Callable[[np.ndarray], np.ndarray], rerank_k: int,
             top: int | None = None) -> Ranked:
    """:func:`rank` for one query; ``rescore(candidate positions)`` gives their Step-2 scores. Returns the best
    ``top`` (all when None) in order."""
    step1 = np.asarray(step1, dtype=np.float64).reshape(-1)
    scores = rank(step1[None], lambda _, c: rescore(c), rerank_k)
    key = scores.ranking_key()[0]
    order = np.lexsort((np.arange(len(step1)), -step1, -key))[:top]
    return Ranked(order, scores.score[0, order], step1[order], scores.head[0, order])
