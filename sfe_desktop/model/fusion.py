"""How a search scores a pair from the trained model and the label bridge (:mod:`sfe_desktop.model.bridge`), and
how sure it is of a match. Plain numbers, fitted on a validation split (:mod:`sfe_desktop.model.calibrate`) and
kept in the checkpoint's ``config.json``.

Fusion (:class:`Fusion`): Step-1 and Step-2 scores are mixed with the bridge's cosine, each divided by its
spread on in-domain pairs, with a weight that grows with how *novel* the query side is. Novelty is the
cosine of an item to its nearest neighbour in the training memory, against that cosine's in-domain
distribution (k-NN out-of-distribution detection); the thresholds come from the validation split alone.

Hubness: a few photos (and captions) sit near every query and top many lists whatever is asked. Each candidate's
score loses ``hub_weight`` times its *hubness* (:meth:`~sfe_desktop.model.sfe.SFEModel.hubness`: how close it is,
softly, to the training captions when it is a photo, to the training photos when it is a caption), in units of
the Step-1 spread: querybank normalisation (Bogolin et al., CVPR 2022) with the training memory as the bank. The
weight fades as the query grows novel (the bank is the training domain's). The hubness is a property of the
candidate alone, so the index stores it as one more column of its vector.

A photo unlike every training caption (a texture, a cat close up) is an *anti-hub*: its hubness is low, so the
correction, which lowers every other photo more, would lift it above the in-domain photos and make it look like a
match. The hubness is therefore clipped from below at a low percentile of the validation candidates'
(``hub_floor_*``): below that, every candidate loses the same.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
import torch

HUB_BETA = 10.0  # sharpness of the soft maximum in a candidate's hubness


class _Numbers:
    """A frozen dataclass of plain numbers kept in a checkpoint's ``config.json``."""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None):
        """From ``config.json`` data; unknown keys are ignored, missing ones keep their default."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: float(v) for k, v in (data or {}).items() if k in known})


@dataclass(frozen=True)
class Fusion(_Numbers):
    """How the trained model's scores and the bridge's are mixed (stored in the checkpoint's ``config.json``).

    ``sigma_*``: standard deviation of each score over random in-domain pairs (so each counts in its own
    units); ``novelty_image`` / ``novelty_text``: the 5th percentile of the in-domain nearest-memory cosine of
    photos and captions (below it an item counts as novel, fully so ``width`` lower); ``floor``: the bridge's
    weight for in-domain queries, ``gain``: what full novelty adds.
    """

    sigma_step1: float = 1.0
    sigma_step2: float = 1.0
    sigma_bridge: float = 1.0
    novelty_image: float = -1.0
    novelty_text: float = -1.0
    width: float = 0.1
    floor: float = 0.1
    gain: float = 3.0
    hub_weight: float = 0.0  # how much of a candidate's hubness its Step-1 score loses (0: none, older checkpoints)
    hub_floor_image: float = -1.0  # the least hubness a photo candidate counts with (-1: no floor, older checkpoints)
    hub_floor_text: float = -1.0   # the same for a caption candidate
    step1_keep: float = 0.0  # how much of its fused Step-1 score a candidate that Step 2 re-scores keeps (0: none)
    step2_floor: float = -1.0  # the bridge's weight for in-domain queries in a fused Step-2 score (-1: ``floor``)
    # random in-domain pairs, for standardise(): the means of the Step-1 cosine and the bridge's cosine (each in
    # units of its spread), their correlation, and the mean and spread of photo and caption candidates' hubness
    # (units of sigma_step1); null_pairs 0: not fitted (older checkpoints), scores are not standardised
    null_pairs: float = 0.0
    null_step1: float = 0.0
    null_bridge: float = 0.0
    null_rho: float = 0.0
    null_hub_image: float = 0.0
    null_hub_text: float = 0.0
    null_hub_sd_image: float = 0.0
    null_hub_sd_text: float = 0.0
    # the same for the Step-2 score (in units of sigma_step2): its mean and its correlation with the bridge's cosine
    null_step2: float = 0.0
    null_rho2: float = 0.0
    null_rho12: float = 0.0  # the correlation of the Step-1 and Step-2 scores

    def clip_hubness(self, hubness, kind: str) -> np.ndarray:
        """Candidates' hubness of ``kind`` ("image" or "text") as scores count it: at least the floor."""
        floor = self.hub_floor_image if kind == "image" else self.hub_floor_text
        return np.maximum(np.asarray(hubness, np.float32), np.float32(floor))

    def novelty(self, nearest: np.ndarray, kind: str) -> np.ndarray:
        """0 (in-domain) .. 1 (novel) from the cosine of items to their nearest training-memory item."""
        hi = self.novelty_image if kind == "image" else self.novelty_text
        return np.clip((hi - np.asarray(nearest, np.float64)) / self.width, 0.0, 1.0)

    def weight(self, novelty) -> np.ndarray:
        """The bridge's weight (in units of its spread) for a query of this novelty."""
        return self.floor + self.gain * np.asarray(novelty, np.float64)

    def query_weights(self, nearest_query: np.ndarray, kind: str, nearest_candidates: np.ndarray | None = None
                      ) -> np.ndarray:
        """(Q,) bridge weights of queries of ``kind`` ("image" or "text"), from their nearest-memory cosines. A
        text query also counts as novel as the photos it searches (the median of ``nearest_candidates``): a
        caption of an everyday thing searching clip-art is out of the model's domain all the same."""
        nov = self.novelty(nearest_query, kind)
        if kind == "text" and nearest_candidates is not None and len(nearest_candidates):
            nov = np.maximum(nov, self.novelty(np.median(nearest_candidates), "image"))
        return self.weight(nov)

    def step2_weights(self, weights) -> np.ndarray:
        """The bridge's weights in a fused Step-2 score for queries whose Step-1 bridge weights are ``weights``: the
        same growth with novelty from ``step2_floor`` (Step 2 reads the bridge beside a score of its own, and
        calibration chooses how much it leans on it in domain)."""
        weights = np.asarray(weights, np.float64)
        return weights if self.step2_floor < 0 else weights - self.floor + self.step2_floor

    def hub_weights(self, weights) -> np.ndarray:
        """The hub weight for queries whose bridge weights are ``weights``: ``hub_weight`` for an in-domain query,
        fading to 0 as the query grows novel (the bank of likely queries is Flickr8k's; a novel query is not one
        of them, and the bridge speaks for it instead)."""
        novelty = np.clip((np.asarray(weights, np.float64) - self.floor) / max(self.gain, 1e-9), 0.0, 1.0)
        return self.hub_weight * (1.0 - novelty)

    def query_vectors(self, global_: np.ndarray, bridge: np.ndarray | None, weights, hub: bool = True) -> np.ndarray:
        """(Q, d + r + 1) float32 query vectors whose inner product with index vectors (the Step-1 vector, the
        bridge vector and the hubness side by side, :func:`~sfe_desktop.model.features.index_vectors`) is the
        fused Step-1 score: the model's cosine and the bridge's, each in units of its spread, the bridge's weighted
        per query (``weights`` (Q,)), less the candidate's hubness times the query's :meth:`hub_weights` (``hub``
        False: not, for photos searching photos). Searches hand these to the vector index; evaluation multiplies them out the
        same way."""
        g = np.asarray(global_, np.float32) / np.float32(self.sigma_step1)
        if bridge is None:
            return g
        w = np.asarray(weights, np.float32).reshape(-1, 1)
        h = (-self.hub_weights(w) / self.sigma_step1 if hub else np.zeros_like(w)).astype(np.float32)
        return np.concatenate([g, w * np.asarray(bridge, np.float32) / np.float32(self.sigma_bridge), h], 1)

    def standardise(self, scores, weights, kind: str, step: int = 1) -> np.ndarray:
        """Fused Step-``step`` scores of queries with bridge weights ``weights`` (broadcast against ``scores``)
        against candidates of ``kind``, as standard scores against random in-domain pairs searched with the same
        weight: a novel query's bridge weight (up to ``floor + gain``) spreads its scores wider, and a confidence
        read from the raw score would call most of its results sure matches. A Step-2 score is the one
        :meth:`step2` gives, with its share of Step 1 (``step1_keep``). Unchanged where not fitted."""
        scores = np.asarray(scores, np.float64)
        if not self.null_pairs:
            return scores
        w = np.asarray(weights, np.float64)
        hub, hub_sd = ((self.null_hub_image, self.null_hub_sd_image) if kind == "image"
                       else (self.null_hub_text, self.null_hub_sd_text))
        # the score is c2 * Step 2 + c1 * Step 1 (each in its units) + wb * bridge - g * alpha * hubness
        c2, c1 = (0.0, 1.0) if step == 1 else (1.0, self.step1_keep)
        g = c1 + c2
        wb = c1 * w + c2 * self.step2_weights(w)
        alpha = self.hub_weights(w)
        mean = c2 * self.null_step2 + c1 * self.null_step1 + wb * self.null_bridge - g * alpha * hub
        var = (c2 * c2 + c1 * c1 + 2 * c1 * c2 * self.null_rho12 + wb ** 2
               + 2 * wb * (c2 * self.null_rho2 + c1 * self.null_rho) + (g * alpha * hub_sd) ** 2)
        return (scores - mean) / np.sqrt(var)

    def step1(self, queries, candidates, weights) -> np.ndarray:
        """(Q, N) fused Step-1 scores of encoded ``queries`` against encoded ``candidates`` (image or text
        features), as the vector index computes them for a search."""
        return self.query_vectors(queries.global_, queries.bridge, weights) @ candidates.index_vectors().T

    def step2(self, step2: np.ndarray, bridge_cos: np.ndarray | None, weights, hub: np.ndarray | None = None,
              step1: np.ndarray | None = None) -> np.ndarray:
        """Fused Step-2 scores of pairs (any shape): as :meth:`step1` (the bridge weighed by :meth:`step2_weights`),
        ``weights`` broadcast against them, the candidates' ``hub`` (None: not known) weighed as in Step 1, plus
        ``step1_keep`` times the pairs' fused Step-1 scores ``step1`` (as :meth:`step1` gives them; None: not
        added)."""
        out = np.asarray(step2, np.float64) / self.sigma_step2
        if step1 is not None and self.step1_keep:
            out = out + self.step1_keep * np.asarray(step1, np.float64)
        if bridge_cos is not None:
            out = out + self.step2_weights(weights) * np.asarray(bridge_cos) / self.sigma_bridge
        if hub is not None and self.hub_weight:
            out = out - self.hub_weights(weights) * np.asarray(hub, np.float64) / self.sigma_step1
        return out


def nearest_cosine(vectors: np.ndarray, memory: torch.Tensor, chunk: int = 4096) -> np.ndarray:
    """(N,) the cosine of each of ``vectors`` (N, d) to its nearest row of ``memory`` (M, d), both L2-normalised;
    -1 when the memory is empty."""
    vectors = np.asarray(vectors, np.float32)
    if memory.shape[0] == 0 or not len(vectors):
        return np.full(len(vectors), -1.0, np.float32)
    mem = memory.float().cpu()
    out = [(torch.from_numpy(np.ascontiguousarray(vectors[a:a + chunk])) @ mem.t()).max(1).values.numpy()
           for a in range(0, len(vectors), chunk)]
    return np.concatenate(out).astype(np.float32)


@dataclass(frozen=True)
class Confidence(_Numbers):
    """P(true match) = sigmoid(a * score + c) * sigmoid(b * familiarity + d): ``score`` the pair's fused Step-1
    score as a standard score (:meth:`Fusion.standardise`; does the photo fit the text?), ``familiarity`` the
    query text's cosine to its nearest training caption (is the text a description at all? a string of nonsense
    has none near, yet its best photo can score high). A pair that Step 2 re-scored (a search's head, the results
    a person sees) reads its fused Step-2 score instead, through ``a2`` and ``c2`` (both 0: not fitted, older
    checkpoints), so the confidence falls as the shown order does. ``a``, ``a2`` and ``b`` are kept non-negative,
    so the confidence rises with the score."""

    a: float = 0.0
    c: float = 0.0
    b: float = 0.0
    d: float = 0.0
    a2: float = 0.0
    c2: float = 0.0

    @property
    def has_step2(self) -> bool:
        return bool(self.a2 or self.c2)

    def __call__(self, score, familiarity, step: int = 1) -> np.ndarray:
        def sigmoid(z):
            return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))

        a, c = (self.a, self.c) if step == 1 else (self.a2, self.c2)
        return (sigmoid(a * np.asarray(score, np.float64) + c)
                * sigmoid(self.b * np.asarray(familiarity, np.float64) + self.d))
